// util/atomic_file.h: content, file mode (0666 less the umask, not
// mkstemp's 0600), no temporary left behind, the previous file kept when a
// write is abandoned, errors naming the path.
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
                    Catch::Contains((dir / "missing" / "b.bin").string()));
  fs::remove_all(dir);
}
