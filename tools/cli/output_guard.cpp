#include "tools/cli/output_guard.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "data/nifti_validate.h"
#include "util/interrupt.h"

namespace lk::cli {

namespace fs = std::filesystem;

bool is_temp_name(const std::string& name) { return temp_owner(name) > 0; }

void check_output_folder(const std::string& dir, const OwnsEntry& ours, bool force, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
      throw std::runtime_error(dir + ": cannot create the " + what + (ec ? " (" + ec.message() + ")" : ""));
    return;
  }
  if (!fs::is_directory(dir)) throw std::invalid_argument(dir + ": the " + what + " is a file, not a folder");
  clean_stale_temps(dir);
  std::vector<std::string> foreign;
  size_t n = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (is_temp_name(it->path().filename().string()) || ours(*it)) continue;
    if (n++ < 3) foreign.push_back(it->path().filename().string());
  }
  if (ec) throw std::runtime_error(dir + ": cannot list the " + what + " (" + ec.message() + ")");
  if (n == 0) return;
  std::string names;
  for (const std::string& f : foreign) names += (names.empty() ? "" : ", ") + f;
  if (n > foreign.size()) names += " and " + std::to_string(n - foreign.size()) + " more";
  if (force) {
    std::fprintf(stderr, "lkaseg: note: %s holds %zu entr%s lkaseg did not write (%s); --force: writing beside them\n",
                 dir.c_str(), n, n == 1 ? "y" : "ies", names.c_str());
    return;
  }
  throw std::invalid_argument(dir + ": the " + what + " holds " + std::to_string(n) + " entr" + (n == 1 ? "y" : "ies") +
                              " lkaseg did not write (" + names +
                              "); use an empty or new folder, or --force to write beside them (a file that is not "
                              "lkaseg's is never overwritten)");
}

void clean_stale_temps(const std::string& dir) {
  for (const std::string& t : remove_stale_temps(dir))
    std::fprintf(stderr, "lkaseg: removed %s (left by a killed run)\n", t.c_str());
}

void check_parent_exists(const std::string& path, const std::string& flag) {
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    throw std::invalid_argument(path + ": " + flag + "'s folder " + parent.string() + " does not exist");
  if (fs::is_directory(path)) throw std::invalid_argument(path + ": " + flag + " is a folder, not a file");
}

bool nifti_described(const std::string& path, const std::string& prefix) {
  try {
    return data::read_nifti_header(path).description.rfind(prefix, 0) == 0;
  } catch (const std::exception&) {
    return false;
  }
}

bool is_lkaseg_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), sizeof n) || n == 0 || n > (100u << 20)) return false;
  std::string header(n, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(n))) return false;
  try {
    const nlohmann::json j = nlohmann::json::parse(header);
    const std::string format = j.at("__metadata__").at("format").get<std::string>();
    return format.rfind("lkaseg-", 0) == 0;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace lk::cli
