#include "data/volume.h"

#include <algorithm>
#include <cmath>

namespace lk::data {

Affine identity_affine() {
  Affine a{};
  for (int i = 0; i < 4; ++i) a[i][i] = 1.0;
  return a;
}

Affine scaling_affine(const std::array<double, 3>& spacing) {
  Affine a = identity_affine();
  for (int i = 0; i < 3; ++i) a[i][i] = spacing[i];
  return a;
}

double affine_max_diff(const Affine& a, const Affine& b) {
  double d = 0;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) d = std::max(d, std::abs(a[r][c] - b[r][c]));
  return d;
}

bool same_grid(const Geometry& a, const Geometry& b, double tol) {
  if (a.dims != b.dims) return false;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      const double scale = c == 3 ? std::max(1.0, std::abs(b.affine[r][c])) : 1.0;
      if (!(std::abs(a.affine[r][c] - b.affine[r][c]) <= tol * scale)) return false;  // NaN fails too
    }
  return true;
}

std::string dims_str(const std::array<int64_t, 3>& dims) {
  return std::to_string(dims[0]) + "x" + std::to_string(dims[1]) + "x" + std::to_string(dims[2]);
}

}  // namespace lk::data
