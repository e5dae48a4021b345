// util/atomic_file.h: content, file mode (0666 less the umask, not
// mkstemp's 0600), no temporary left behind, the previous file kept when a
// write is abandoned, errors naming the path; TempLink.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
int leftovers(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}
}  // namespace

TEST_CASE("atomic file: content, mode from the umask, nothing left behind", "[engine]") {
  const fs::path dir = fs::temp_directory_path() / ("lkaseg_atomic_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path p = dir / "a.bin";
  lk::write_file_atomically(p.string(), "first");
  CHECK(slurp(p) == "first");
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  // The umask the process started with (ctest's: usually 022).
  const mode_t mask = ::umask(022);
  ::umask(mask);
  CHECK((st.st_mode & 0777) == (0666 & ~mask));

  {  // abandoned: the previous file stays, the temporary goes
    lk::AtomicFile f(p.string());
    f.write("second", 6);
  }
  CHECK(slurp(p) == "first");
  CHECK(leftovers(dir) == 0);

  lk::AtomicFile f(p.string());
  f.write("xxxxxxx", 7);
  f.write_at(0, "ab", 2);
  CHECK(f.size() == 7);
  f.commit();
  CHECK(slurp(p) == "abxxxxx");
  CHECK(leftovers(dir) == 0);

  CHECK_THROWS_WITH(lk::write_file_atomically((dir / "missing" / "b.bin").string(), "x"),
                    Catch::Contains((dir / "missing" / "b.bin").string()) &&
                        Catch::Contains("cannot create a temporary file: No such file or directory"));
  fs::remove_all(dir);
}

TEST_CASE("atomic file: a temporary link points at its target, has the suffix, and goes when destroyed", "[engine]") {
  const fs::path dir = fs::temp_directory_path() / ("lkaseg_templink_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path target = dir / "t.nii.gz";
  lk::write_file_atomically(target.string(), "volume");
  std::string name;
  {
    const lk::TempLink link(target.string(), (dir / "base").string(), ".nii.gz");
    name = link.name;
    CHECK(name.rfind((dir / "base.tmp.lkaseg-").string(), 0) == 0);
    CHECK(name.size() > 7);
    CHECK(name.substr(name.size() - 7) == ".nii.gz");
    CHECK(fs::is_symlink(name));
    CHECK(slurp(name) == "volume");
    const lk::TempLink other(target.string(), (dir / "base").string(), ".nii.gz");
    CHECK(other.name != name);
  }
  CHECK(!fs::exists(fs::symlink_status(name)));
  CHECK_THROWS_WITH(lk::TempLink(target.string(), (dir / "missing" / "base").string(), ".nii"),
                    Catch::Contains(target.string()) &&
                        Catch::Contains("cannot create a temporary link to it: No such file or directory"));
  fs::remove_all(dir);
}
