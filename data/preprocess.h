// Preprocessing of a loaded BraTS case into 2-D training slices (SPEC.md,
// paper §3.1-3.2, with our readings):
//   1. crop to the 3-D bounding box of voxels non-zero in any modality;
//   2. per modality, on the non-zero voxels of the crop: clip to the
//      [lo, hi] percentiles (default 0.5, 99.5), then z-score; background
//      stays 0;
//   3. axial slices of the crop that contain brain;
//   4. each slice resized to size x size: bilinear for images (half-pixel
//      centres, as align_corners=False), nearest for labels;
//   5. optionally (clahe), CLAHE on each resized slice of each modality
//      (data/clahe.h: clahe_slice, which keeps the background, the brain's
//      mean and std; clip limit 2.0 and 8x8 tiles by default);
//   6. labels remapped to the training classes: 0 background, 1 ET (4),
//      2 ED (2), 3 NCR (1) (paper eq. 11).
// The crop box and each kept slice's z are recorded so predictions can be
// mapped back to the original grid (map_back_labels).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/brats_cases.h"

namespace lk::data {

struct PreprocessOptions {
  int64_t size = 128;
  double clip_lo = 0.5, clip_hi = 99.5;  // percentiles
  bool clahe = false;                    // SPEC.md: optional
  double clahe_clip = 2.0;               // clip limit (OpenCV's sense)
  int clahe_tiles = 8;                   // tiles per side
};

struct CropBox {
  std::array<int64_t, 3> lo{0, 0, 0}, hi{0, 0, 0};  // [lo, hi) per axis
  int64_t extent(int a) const { return hi[a] - lo[a]; }
};

struct PreprocessedCase {
  std::string id;
  Geometry geom;                 // the original grid (for writing predictions back)
  CropBox box;
  std::vector<int64_t> z;        // original z of each kept slice
  int64_t size = 0;              // slices are size x size
  std::vector<float> images;     // (slices, 4, size, size), row = y, column = x
  std::vector<int32_t> labels;   // (slices, size, size), training classes; empty without seg
  int64_t slices() const { return static_cast<int64_t>(z.size()); }
};

// BraTS label -> training class; throws on a value outside {0, 1, 2, 4}.
int32_t brats_label_to_class(int label);
int brats_class_to_label(int32_t cls);

CropBox nonzero_box(const BratsCaseData& c);
PreprocessedCase preprocess_case(const BratsCaseData& c, const PreprocessOptions& o = {});

// Training-class slices (slices, size, size) of a preprocessed case back to
// a BraTS label volume on the original grid (nearest resampling into the
// crop box; 0 outside it and on dropped slices).
std::vector<uint8_t> map_back_labels(const PreprocessedCase& p, const std::vector<int32_t>& classes);

// The nearest-neighbour map map_back_labels uses: f(voxel, slice, pixel) for
// every original-grid voxel of a kept slice inside the crop box, with its
// source `pixel` (row * size + column) of slice `slice`.
template <typename F>
void for_each_mapped_voxel(const PreprocessedCase& p, F&& f) {
  const int64_t S = p.size, W = p.box.extent(0), H = p.box.extent(1);
  for (int64_t s = 0; s < p.slices(); ++s)
    for (int64_t y = 0; y < H; ++y) {
      // The output pixel whose nearest source is y (ceil(y*S/H)) when
      // upsampling; the nearest one otherwise.
      const int64_t oy = std::min(S - 1, (y * S + H - 1) / H);
      for (int64_t x = 0; x < W; ++x) {
        const int64_t ox = std::min(S - 1, (x * S + W - 1) / W);
        f(p.geom.index(p.box.lo[0] + x, p.box.lo[1] + y, p.z[static_cast<size_t>(s)]), s, oy * S + ox);
      }
    }
}

}  // namespace lk::data
