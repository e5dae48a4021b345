#include "data/preprocess.h"

#include "data/clahe.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace lk::data {

int32_t brats_label_to_class(int label) {
  switch (label) {
    case 0: return 0;
    case 4: return 1;  // ET
    case 2: return 2;  // ED
    case 1: return 3;  // NCR
    default: throw std::invalid_argument("BraTS label " + std::to_string(label) + " is not one of 0, 1, 2, 4");
  }
}

int brats_class_to_label(int32_t cls) {
  static const int labels[] = {0, 4, 2, 1};
  if (cls < 0 || cls > 3) throw std::invalid_argument("training class " + std::to_string(cls) + " is not in 0..3");
  return labels[cls];
}

CropBox nonzero_box(const BratsCaseData& c) {
  const auto& d = c.geom.dims;
  CropBox b{{d[0], d[1], d[2]}, {0, 0, 0}};
  for (int64_t z = 0; z < d[2]; ++z)
    for (int64_t y = 0; y < d[1]; ++y)
      for (int64_t x = 0; x < d[0]; ++x) {
        const int64_t i = c.geom.index(x, y, z);
        bool any = false;
        for (const auto& img : c.images) any = any || img[i] != 0.f;
        if (!any) continue;
        const int64_t p[3] = {x, y, z};
        for (int a = 0; a < 3; ++a) {
          b.lo[a] = std::min(b.lo[a], p[a]);
          b.hi[a] = std::max(b.hi[a], p[a] + 1);
        }
      }
  if (b.hi[0] == 0) throw std::invalid_argument(c.source.dir + ": every modality is zero everywhere (no brain)");
  return b;
}

namespace {

// Percentile by linear interpolation between order statistics (numpy's default).
double percentile(std::vector<float>& v, double pct) {
  if (v.empty()) return 0;
  const double pos = pct / 100.0 * static_cast<double>(v.size() - 1);
  const size_t k = static_cast<size_t>(pos);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  const double a = v[k];
  if (k + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(k) + 1, v.end());
  return a + (pos - static_cast<double>(k)) * (b - a);
}

// Source coordinate of output pixel o when resizing n -> m (half-pixel centres).
double src_coord(int64_t o, int64_t n, int64_t m) {
  return (static_cast<double>(o) + 0.5) * static_cast<double>(n) / static_cast<double>(m) - 0.5;
}

}  // namespace

PreprocessedCase preprocess_case(const BratsCaseData& c, const PreprocessOptions& o) {
  if (o.size < 1) throw std::invalid_argument("preprocess: size must be >= 1");
  if (!(o.clip_lo >= 0 && o.clip_lo < o.clip_hi && o.clip_hi <= 100))
    throw std::invalid_argument("preprocess: need 0 <= clip_lo < clip_hi <= 100");
  if (o.clahe && (o.clahe_tiles < 1 || o.clahe_tiles > o.size || !(o.clahe_clip >= 0) || !std::isfinite(o.clahe_clip)))
    throw std::invalid_argument("preprocess: CLAHE needs 1 <= tiles (" + std::to_string(o.clahe_tiles) +
                                ") <= size (" + std::to_string(o.size) + ") and a finite clip limit >= 0 (" +
                                std::to_string(o.clahe_clip) + ")");
  ClaheOptions co;
  co.clip_limit = o.clahe_clip;
  co.tiles_x = co.tiles_y = o.clahe_tiles;
  PreprocessedCase p;
  p.id = c.source.id;
  p.geom = c.geom;
  p.box = nonzero_box(c);
  p.size = o.size;
  const CropBox& b = p.box;
  const int64_t W = b.extent(0), H = b.extent(1), S = o.size;

  // Per-modality normalisation statistics on the crop's non-zero voxels.
  std::array<double, kBratsChannels> lo{}, hi{}, mean{}, inv_std{};
  for (int m = 0; m < kBratsChannels; ++m) {
    std::vector<float> nz;
    for (int64_t z = b.lo[2]; z < b.hi[2]; ++z)
      for (int64_t y = b.lo[1]; y < b.hi[1]; ++y)
        for (int64_t x = b.lo[0]; x < b.hi[0]; ++x) {
          const float v = c.images[m][c.geom.index(x, y, z)];
          if (v != 0.f) nz.push_back(v);
        }
    if (nz.empty()) continue;  // an all-zero modality stays zero
    std::vector<float> work = nz;
    lo[m] = percentile(work, o.clip_lo);
    hi[m] = percentile(work, o.clip_hi);
    double s = 0, ss = 0;
    for (float v : nz) s += std::clamp<double>(v, lo[m], hi[m]);
    mean[m] = s / static_cast<double>(nz.size());
    for (float v : nz) {
      const double d = std::clamp<double>(v, lo[m], hi[m]) - mean[m];
      ss += d * d;
    }
    const double sd = std::sqrt(ss / static_cast<double>(nz.size()));
    inv_std[m] = sd > 0 ? 1.0 / sd : 0.0;
  }

  for (int64_t z = b.lo[2]; z < b.hi[2]; ++z) {
    // Keep slices with brain.
    bool brain = false;
    for (int64_t y = b.lo[1]; y < b.hi[1] && !brain; ++y)
      for (int64_t x = b.lo[0]; x < b.hi[0] && !brain; ++x)
        for (const auto& img : c.images) brain = brain || img[c.geom.index(x, y, z)] != 0.f;
    if (!brain) continue;
    p.z.push_back(z);
    // Normalised crop slice per modality, then bilinear resize.
    for (int m = 0; m < kBratsChannels; ++m) {
      std::vector<float> slice(static_cast<size_t>(W * H));
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const float v = c.images[m][c.geom.index(b.lo[0] + x, b.lo[1] + y, z)];
          slice[y * W + x] =
              v == 0.f ? 0.f : static_cast<float>((std::clamp<double>(v, lo[m], hi[m]) - mean[m]) * inv_std[m]);
        }
      for (int64_t oy = 0; oy < S; ++oy) {
        const double sy = std::clamp(src_coord(oy, H, S), 0.0, static_cast<double>(H - 1));
        const int64_t y0 = static_cast<int64_t>(sy), y1 = std::min(y0 + 1, H - 1);
        const double ly = sy - static_cast<double>(y0);
        for (int64_t ox = 0; ox < S; ++ox) {
          const double sx = std::clamp(src_coord(ox, W, S), 0.0, static_cast<double>(W - 1));
          const int64_t x0 = static_cast<int64_t>(sx), x1 = std::min(x0 + 1, W - 1);
          const double lx = sx - static_cast<double>(x0);
          const double top = (1 - lx) * slice[y0 * W + x0] + lx * slice[y0 * W + x1];
          const double bot = (1 - lx) * slice[y1 * W + x0] + lx * slice[y1 * W + x1];
          p.images.push_back(static_cast<float>((1 - ly) * top + ly * bot));
        }
      }
      if (o.clahe) clahe_slice(p.images.data() + p.images.size() - static_cast<size_t>(S * S), S, S, co);
    }
    if (!c.labels.empty()) {
      for (int64_t oy = 0; oy < S; ++oy) {
        const int64_t sy = std::min(H - 1, static_cast<int64_t>(oy * H / S));
        for (int64_t ox = 0; ox < S; ++ox) {
          const int64_t sx = std::min(W - 1, static_cast<int64_t>(ox * W / S));
          p.labels.push_back(brats_label_to_class(c.labels[c.geom.index(b.lo[0] + sx, b.lo[1] + sy, z)]));
        }
      }
    }
  }
  return p;
}

std::vector<uint8_t> map_back_labels(const PreprocessedCase& p, const std::vector<int32_t>& classes) {
  const int64_t S = p.size;
  if (static_cast<int64_t>(classes.size()) != p.slices() * S * S)
    throw std::invalid_argument("map_back_labels: " + std::to_string(classes.size()) + " values for " +
                                std::to_string(p.slices()) + " slices of " + std::to_string(S) + "x" + std::to_string(S));
  std::vector<uint8_t> out(static_cast<size_t>(p.geom.numel()), 0);
  for_each_mapped_voxel(p, [&](int64_t voxel, int64_t s, int64_t pixel) {
    out[static_cast<size_t>(voxel)] = static_cast<uint8_t>(brats_class_to_label(classes[static_cast<size_t>(s * S * S + pixel)]));
  });
  return out;
}

}  // namespace lk::data
