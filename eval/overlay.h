// Overlay figures (the paper's Figs. 8-9): FLAIR with the ground truth and
// each model's prediction, side by side, drawn on a raster image (raster.h).
//
// Overlay figure (render_overlay): a black canvas holding
//   the case id;
//   column titles: FLAIR, GROUND TRUTH, then one per prediction (its name);
//   the axial row: FLAIR alone, FLAIR + ground truth, FLAIR + each
//     prediction; captioned "AXIAL SLICE k" (k the 0-based voxel index along
//     the volume axis closest to superior);
//   the coronal row (optional), the same panels, "CORONAL SLICE j";
//   a legend strip: a swatch per label and the blend alpha.
// Orientation from the affine (radiological convention): patient left on
// the image's right, anterior up (axial), superior up (coronal). The
// in-plane voxel axes are those closest to the world (RAS+) axes; pixels are
// resampled (nearest neighbour) to square pixels of the finer in-plane
// spacing, then enlarged `zoom` times. FLAIR is windowed at the [0.5, 99.5]
// percentiles (numpy 'linear') of its non-zero (brain) voxels over the whole
// volume: grey = round(255 * clamp((v - lo) / (hi - lo), 0, 1)); black when
// hi <= lo. Labels are alpha-blended over the grey:
//   c = round((1 - alpha) * grey + alpha * colour) per channel,
// NCR (1) red (255, 0, 0), ED (2) green (0, 255, 0), ET (4) yellow
// (255, 255, 0), alpha 0.5 by default.
// Slice choice: the axial (coronal) slice with the most ground-truth tumour
// voxels (any label != 0), the lowest index on a tie; a case without tumour
// takes the slice with the most brain (FLAIR != 0) voxels, else the middle.
//
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/brats_cases.h"
#include "data/volume.h"
#include "eval/raster.h"

namespace lk::eval {

struct LabelStyle {
  Rgb ncr{255, 0, 0}, ed{0, 255, 0}, et{255, 255, 0};
  double alpha = 0.5;
  // The colour of a BraTS 2021 label (1, 2, 4); nullopt for 0 and others.
  std::optional<Rgb> colour(uint8_t label) const;
};

// How a plane of the volume is shown: the voxel axis fixed by the slice,
// the axes along the panel's columns and rows, and whether each runs
// backwards (column 0 shows the last voxel).
struct ViewAxes {
  int slice_axis = 2, col_axis = 0, row_axis = 1;
  bool flip_col = false, flip_row = false;
};
// From the affine (see the top of this file). For BraTS' affine
// diag(-1, -1, 1): axial = slice z, columns x, rows y, no flips;
// coronal = slice y, columns x, rows z flipped (superior up).
ViewAxes axial_view(const data::Affine& a);
ViewAxes coronal_view(const data::Affine& a);

// [lo, hi]: the 0.5 and 99.5 percentiles of the non-zero voxels (0, 0 when none).
std::array<double, 2> flair_window(const std::vector<float>& flair);
// The index along axis `axis` with the most voxels of `labels` != 0 (lowest
// on a tie); when there are none, the most voxels of `brain` != 0 (when
// given and not empty); else dims[axis] / 2.
int64_t largest_tumour_slice(const std::vector<uint8_t>& labels, const data::Geometry& g, int axis,
                             const std::vector<float>* brain = nullptr);

// A plane of the volume in display orientation, square-pixel resampled and
// zoomed: its size, and per display pixel the voxel index (x fastest).
struct SliceSampling {
  int width = 0, height = 0;
  std::vector<int64_t> voxel;  // width * height
};
SliceSampling sample_slice(const data::Geometry& g, const ViewAxes& v, int64_t index, int zoom = 1);

// One case, in memory: the FLAIR and the label maps on its grid.
struct OverlayCase {
  std::string id;
  data::Geometry geom;
  std::vector<float> flair;
  std::vector<uint8_t> truth;               // BraTS 2021 values {0, 1, 2, 4}
  std::vector<std::vector<uint8_t>> preds;  // the same, one per model
};

struct OverlayOptions {
  std::vector<std::string> names;  // one per prediction
  int64_t slice = -1;              // the axial slice; -1: largest tumour area
  bool coronal = true;
  int zoom = 1;                    // 1..8
  LabelStyle style;
};

struct PanelRect {
  int x = 0, y = 0, w = 0, h = 0;
};

struct OverlayFigure {
  Image image;
  int64_t axial_slice = 0, coronal_slice = -1;  // -1: no coronal row
  std::array<double, 2> window{0, 0};
  // Per row (axial, then coronal), per panel (FLAIR, truth, predictions):
  // where the image lies in the figure.
  std::vector<std::vector<PanelRect>> panels;
};

// Throws FigureError (naming the case) for voxel counts that do not match
// the grid, labels outside {0, 1, 2, 4}, a names count that does not match
// the predictions, or a slice outside the volume.
OverlayFigure render_overlay(const OverlayCase& c, const OverlayOptions& opt);

// Reads a case's FLAIR and segmentation (data::load_brats_channel(c, 0): for MSD the first volume of the 4-D image; c.seg) and the
// prediction files (one per model, in the case's grid: dimensions, spacing
// and affine; labels in `pred_coding`). Errors name the file and the problem.
OverlayCase load_overlay_case(const data::BratsCase& c, const std::vector<std::string>& pred_files, data::BratsNaming pred_coding);

}  // namespace lk::eval
