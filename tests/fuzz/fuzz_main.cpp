// libFuzzer entry point for one target (tools/fuzz.sh builds one binary per
// target with -DLKASEG_FUZZ_TARGET="name"). `fuzz_<name> -dump_seeds=DIR`
// is not a libFuzzer flag: the first argument "--seeds DIR" writes the
// target's seeds there and exits, so the corpus starts from valid inputs.
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/fuzz/fuzz_targets.h"

namespace {
const lk::fuzz::Target& the_target() {
  static const lk::fuzz::Target& t = lk::fuzz::target(LKASEG_FUZZ_TARGET);
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (*argc >= 3 && std::strcmp((*argv)[1], "--seeds") == 0) {
    const std::string dir = (*argv)[2];
    std::filesystem::create_directories(dir);
    int i = 0;
    for (const std::string& s : the_target().seeds()) {
      std::ofstream((std::filesystem::path(dir) / ("seed_" + std::to_string(i++))).string(), std::ios::binary) << s;
    }
    std::printf("wrote %d seed(s) to %s\n", i, dir.c_str());
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    the_target().run(data, size);
  } catch (const std::logic_error& e) {
    if (!dynamic_cast<const std::invalid_argument*>(&e)) {
      std::fprintf(stderr, "fuzz target %s: %s\n", LKASEG_FUZZ_TARGET, e.what());
      std::abort();
    }
  } catch (const std::exception&) {
    // a clean refusal
  }
  return 0;
}
