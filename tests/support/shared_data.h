// Where the six real BraTS 2021 cases live (../shared/data/brats2021 next to
// the repository, never inside it). Tests that use them pass
// LKASEG_SHARED_DIR as a compile definition and skip, saying so, when the
// folder is absent.
#pragma once

#include <filesystem>
#include <string>

#ifndef LKASEG_SHARED_DIR
#error "define LKASEG_SHARED_DIR for this test target"
#endif

namespace lk::test {

inline std::filesystem::path brats2021_dir() {
  return std::filesystem::path(LKASEG_SHARED_DIR) / "data" / "brats2021";
}

inline bool have_brats2021() { return std::filesystem::is_directory(brats2021_dir()); }

}  // namespace lk::test
