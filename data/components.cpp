#include "data/components.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace lk::data {

Components connected_components(const std::vector<uint8_t>& mask, const std::array<int64_t, 3>& dims) {
  const int64_t nx = dims[0], ny = dims[1], nz = dims[2];
  if (nx < 1 || ny < 1 || nz < 1 || static_cast<int64_t>(mask.size()) != nx * ny * nz)
    throw std::invalid_argument("connected_components: " + std::to_string(mask.size()) + " voxels for a " +
                                std::to_string(nx) + "x" + std::to_string(ny) + "x" + std::to_string(nz) + " grid");
  Components c;
  c.label.assign(mask.size(), 0);
  // The bounding box of the foreground: only it is scanned.
  std::array<int64_t, 3> lo{nx, ny, nz}, hi{-1, -1, -1};
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y) {
      const uint8_t* row = mask.data() + (z * ny + y) * nx;
      for (int64_t x = 0; x < nx; ++x)
        if (row[x]) {
          lo = {std::min(lo[0], x), std::min(lo[1], y), std::min(lo[2], z)};
          hi = {std::max(hi[0], x), std::max(hi[1], y), std::max(hi[2], z)};
        }
    }
  if (hi[0] < 0) return c;

  std::vector<int64_t> queue;
  for (int64_t z = lo[2]; z <= hi[2]; ++z)
    for (int64_t y = lo[1]; y <= hi[1]; ++y)
      for (int64_t x = lo[0]; x <= hi[0]; ++x) {
        const int64_t seed = (z * ny + y) * nx + x;
        if (!mask[static_cast<size_t>(seed)] || c.label[static_cast<size_t>(seed)]) continue;
        const int32_t id = static_cast<int32_t>(c.size.size() + 1);
        int64_t n = 0;
        queue.assign(1, seed);
        c.label[static_cast<size_t>(seed)] = id;
        while (!queue.empty()) {
          const int64_t v = queue.back();
          queue.pop_back();
          ++n;
          const int64_t vx = v % nx, vy = (v / nx) % ny, vz = v / (nx * ny);
          for (int64_t qz = std::max(vz - 1, lo[2]); qz <= std::min(vz + 1, hi[2]); ++qz)
            for (int64_t qy = std::max(vy - 1, lo[1]); qy <= std::min(vy + 1, hi[1]); ++qy)
              for (int64_t qx = std::max(vx - 1, lo[0]); qx <= std::min(vx + 1, hi[0]); ++qx) {
                const size_t q = static_cast<size_t>((qz * ny + qy) * nx + qx);
                if (mask[q] && !c.label[q]) {
                  c.label[q] = id;
                  queue.push_back(static_cast<int64_t>(q));
                }
              }
        }
        c.size.push_back(n);
      }
  return c;
}

}  // namespace lk::data
