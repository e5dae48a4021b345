// Contrast-limited adaptive histogram equalisation (CLAHE), the optional
// per-slice, per-modality preprocessing step of SPEC.md (clip limit 2.0,
// 8x8 tiles). Our own implementation of the published algorithm; on 8-bit
// images it reproduces OpenCV's cv2.createCLAHE(clipLimit,
// tileGridSize=(tiles_x, tiles_y)).apply(img) exactly (0 grey-level
// difference on every fixture in tests/golden/clahe, made by
// tools/golden/make_clahe_fixtures.py from OpenCV 5.0).
//
// clahe_u8, step by step (bins = B, 256 for an ordinary 8-bit image):
//   1. Tile grid. If h is divisible by tiles_y and w by tiles_x, the tiles
//      cover the image. Otherwise the histograms are taken on an image padded
//      at the bottom by tiles_y - h % tiles_y rows and at the right by
//      tiles_x - w % tiles_x columns, reflect-101 border (..c b | a b c d | c
//      b..). Like OpenCV, an axis that is already divisible then still gains
//      a full tiles_* rows/columns (e.g. 64 x 100 with 8 x 8 tiles is padded
//      to 72 x 104, tiles 9 x 13). Tile size = padded size / tiles.
//   2. Per tile a histogram of B bins. Clip limit in counts:
//      L = max(int(clip_limit * tile_area / B), 1) when clip_limit > 0; with
//      clip_limit == 0 nothing is clipped (plain adaptive equalisation).
//      Every bin above L is cut to L; the excess E is redistributed: each bin
//      gets E / B (integer division), then the remainder R = E % B adds one
//      count to bins 0, s, 2s, ... (s = max(B / R, 1)) while R lasts.
//   3. LUT[v] = saturate(round(float(cdf[v]) * float(B - 1) / float(area)))
//      in float (single precision) with round-half-to-even, as OpenCV does.
//   4. Each pixel (y, x) of the original (unpadded) image is interpolated
//      bilinearly between the LUTs of its four nearest tile centres: in
//      float, fx = x * (1 / tile_w) - 0.5, tx1 = floor(fx), a = fx - tx1,
//      tx2 = tx1 + 1, both clamped to [0, tiles_x - 1] (a kept), same for y;
//      out = round((L11 * (1 - a) + L12 * a) * (1 - b) +
//                  (L21 * (1 - a) + L22 * a) * b), saturated to [0, B - 1].
//   The single-precision arithmetic of steps 3-4 (same operation order, no
//   fused multiply-add) is what makes the result exact: the same formulas in
//   double differ from OpenCV by 1 grey level on ~0.1 % of the fixture pixels
//   (218 of 236220), and so does letting the compiler fuse them into FMAs
//   (-march=native): data/CMakeLists.txt compiles clahe.cpp with
//   -ffp-contract=off.
//
// clahe_slice: CLAHE for our z-scored float slices (background exactly 0;
// brain voxels, i.e. every pixel != 0, hold negative and positive values):
//   1. brain = pixels != 0 (+0 and -0 are background and are never written);
//      a non-finite brain value throws. With no brain pixel, or all brain
//      pixels equal, the slice is left untouched.
//   2. The brain range [min, max] is mapped linearly onto the grey levels
//      0..B-1: q = round((v - min) * (B - 1) / (max - min)). Background gets
//      level 0, the level of the brain minimum: in the MR image before
//      z-scoring the background is the darkest intensity, so this creates no
//      artificial edge at the brain outline (mapping 0.0 to its own position,
//      mid-range, would). Background pixels do take part in the tile
//      histograms (a spike at level 0, clipped like any other), exactly as
//      when OpenCV's CLAHE is applied to an MR slice with a black background.
//   3. clahe_u8 on that image.
//   4. Brain pixels get an affine function of their CLAHE level chosen so that
//      their mean and (population) standard deviation equal those before
//      CLAHE: v' = (level - mean_level) * (std / std_level) + mean. This is
//      the same as mapping the levels back linearly onto [min, max] and
//      re-standardising to the old mean and std (the linear map cancels), so
//      the slice stays z-scored. A brain pixel whose new value would be
//      exactly 0.0f is set to +-FLT_MIN (the sign of the exact value) so the
//      brain mask (pixels != 0) is unchanged. If CLAHE maps every brain pixel
//      to one level (std_level == 0, only in degenerate tiny brains), the
//      slice is left untouched.
//   Deterministic and thread-safe (no static or shared state); one
//   h*w-byte buffer per call plus clahe_u8's small tables.
#pragma once

#include <cstdint>

namespace lk::data {

struct ClaheOptions {
  double clip_limit = 2.0;  // >= 0; 0 = no clipping
  int tiles_y = 8, tiles_x = 8;
  int bins = 256;  // grey levels, 2..256: input values must be < bins, output is < bins
};

// src, dst: h x w, row-major (row = y). dst may equal src (in place).
// Throws std::invalid_argument for h or w < 1, tiles < 1 or > the image size
// on that axis, clip_limit < 0 or not finite, bins outside 2..256, or a pixel
// value >= bins.
void clahe_u8(const uint8_t* src, uint8_t* dst, int64_t h, int64_t w, const ClaheOptions& o = {});

// In place on one h x w float plane; semantics above. Same argument checks
// as clahe_u8 (named clahe_slice), plus a non-finite brain value.
void clahe_slice(float* plane, int64_t h, int64_t w, const ClaheOptions& o = {});

}  // namespace lk::data
