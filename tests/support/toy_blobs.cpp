#include "tests/support/toy_blobs.h"

#include <cmath>
#include <random>
#include <vector>

namespace lk::data {

Batch make_toy_batch(int64_t n, int64_t size, uint64_t seed, uint64_t index, DType dtype) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + index);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 0.3);
  // Per-class mean intensity in each of the 4 channels (background first).
  const double contrast[4][4] = {{0.0, 0.0, 0.0, 0.0}, {1.5, -0.5, 2.0, 0.5}, {1.0, 0.8, -0.3, 1.6}, {-1.0, 1.2, 0.6, -0.8}};
  std::vector<double> img(n * 4 * size * size);
  std::vector<int32_t> lab(n * size * size, 0);
  for (int64_t b = 0; b < n; ++b) {
    const int blobs = 1 + static_cast<int>(u(rng) * 2);
    for (int k = 0; k < blobs; ++k) {
      const double cy = size * (0.25 + 0.5 * u(rng)), cx = size * (0.25 + 0.5 * u(rng));
      const double r = size * (0.10 + 0.12 * u(rng));
      for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) {
          const double d = std::hypot(y - cy, x - cx) / r;
          int32_t cls = d < 0.4 ? 3 : d < 0.7 ? 1 : d < 1.0 ? 2 : 0;  // core, rim, edema
          int32_t& l = lab[(b * size + y) * size + x];
          if (cls && (l == 0 || cls > l)) l = cls;
        }
    }
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t p = 0; p < size * size; ++p)
        img[(b * 4 + c) * size * size + p] = contrast[lab[b * size * size + p]][c] + noise(rng);
  }
  Batch b;
  b.images = Tensor::from_vector(img, {n, 4, size, size}, dtype);
  b.labels = Tensor::from_labels(lab, {n, size, size});
  return b;
}

}  // namespace lk::data
