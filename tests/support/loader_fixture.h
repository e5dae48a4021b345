// A small slice cache for the loader tests (CPU and emulated CUDA): cases of
// random z-score-like images whose slices are told apart by their content,
// with a tumour disc on some slices and none on others.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "data/slice_cache.h"

namespace lk::test {

struct LoaderFixture {
  std::filesystem::path dir;
  std::string path;
  data::PreprocessOptions po;
  data::SliceCache cache;

  // `cases` cases of `per_case` slices of side `side`; every third slice has no tumour.
  LoaderFixture(const std::string& name, int cases, int per_case, int64_t side) {
    dir = std::filesystem::temp_directory_path() / ("lkaseg_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / "slices.lkc").string();
    po.size = side;
    std::vector<data::PreprocessedCase> cs;
    std::mt19937 rng(1234);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (int c = 0; c < cases; ++c) {
      data::PreprocessedCase p;
      p.id = "case_" + std::to_string(c);
      p.geom.dims = {side, side, per_case};
      p.geom.spacing = {1.0, 1.0, 1.0};
      p.box.lo = {0, 0, 0};
      p.box.hi = {side, side, per_case};
      p.size = side;
      for (int z = 0; z < per_case; ++z) {
        p.z.push_back(z);
        for (int64_t i = 0; i < 4 * side * side; ++i) p.images.push_back(nd(rng) + static_cast<float>(c + z) * 0.01f);
        const bool tumour = (c * per_case + z) % 3 != 2;
        const double cy = side * (0.3 + 0.4 * ((c + z) % 5) / 4.0), cx = side * (0.6 - 0.2 * (z % 3) / 2.0);
        for (int64_t y = 0; y < side; ++y)
          for (int64_t x = 0; x < side; ++x) {
            const double r = std::hypot(y - cy, x - cx);
            int32_t v = 0;
            if (tumour && r < side * 0.25) v = r < side * 0.08 ? 3 : (r < side * 0.15 ? 1 : 2);
            p.labels.push_back(v);
          }
      }
      cs.push_back(std::move(p));
    }
    data::write_slice_cache(path, cs, po);
    cache = data::open_slice_cache(path, po);
  }
  ~LoaderFixture() {
    std::error_code ec;
    cache = data::SliceCache();
    std::filesystem::remove_all(dir, ec);
  }
  std::vector<int64_t> all_slices() const {
    std::vector<int64_t> v;
    for (int64_t s = 0; s < cache.slices(); ++s) v.push_back(s);
    return v;
  }
};

}  // namespace lk::test
