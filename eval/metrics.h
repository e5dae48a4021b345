// Segmentation metrics of the paper's evaluation (SPEC.md "Evaluation"):
// Dice and HD95 per case in 3-D, on the original voxel grid and spacing,
// for the BraTS subregions NCR (label 1), ED (2), ET (4) and the BraTS
// regions WT (1+2+4), TC (1+4) (ET is both a subregion and a region: one
// mask, one result).
//
// Definitions (for two binary masks P = prediction, G = ground truth):
//   Dice  = 2 |P ∩ G| / (|P| + |G|)  (= 2TP / (2TP + FP + FN)).
//   Surface of a mask: its foreground voxels with at least one of the 6
//         face neighbours in the background or outside the volume (the
//         volume border counts as background): mask XOR its erosion by the
//         6-connected cross with border value 0, as scipy's binary_erosion
//         gives it in MONAI's get_mask_edges and medpy's hd95.
//   Directed distances P→G: for each surface voxel of P (taken at its
//         centre), the Euclidean distance in mm (spacing = the header's
//         pixdim, data::Geometry::spacing) to the nearest surface voxel of G.
//   HD95  = max(q95(P→G), q95(G→P)), q95 the 95th percentile with linear
//         interpolation between the closest ranks, numpy.percentile's
//         default ('linear', Hyndman & Fan type 7): with the n distances
//         sorted x[0..n-1], h = 0.95 (n - 1), q95 = x[⌊h⌋] + (h - ⌊h⌋)
//         (x[⌊h⌋+1] - x[⌊h⌋]).
//   This is MONAI's compute_hausdorff_distance(percentile=95, spacing=...,
//   directed=False) (max of the two directed percentiles, torch.quantile =
//   linear); medpy's hd95 instead takes one percentile of both directions
//   pooled, which can differ slightly. The golden test
//   (tests/golden/metrics, tools/golden/make_metrics_fixtures.py) holds us
//   to MONAI's numbers.
// Empty masks (SPEC.md, the BraTS convention):
//   both empty        → Dice 1, HD95 0;
//   exactly one empty → Dice 0, HD95 kEmptyHd95Mm (373.13 mm);
//   gt_empty marks the cells the paper's Table 5 prints as "–" (not
//   applicable): aggregation skips them unless told otherwise.
//
// Distances come from an exact Euclidean distance transform with
// anisotropic spacing, in double: one pass per axis (a nearest-feature scan
// along x, then the lower envelope of parabolas of Felzenszwalb &
// Huttenlocher along y and z), restricted to the bounding box of P ∪ G
// (exact there: every surface voxel of both masks lies inside it). Lines
// run in parallel under OpenMP; each line is computed alone, so results do
// not depend on the thread count.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/brats_cases.h"
#include "data/volume.h"

namespace lk::eval {

// HD95 when exactly one mask is empty: the diagonal of the 240x240x155
// BraTS volume at 1 mm, sqrt(240² + 240² + 155²) = 373.128 mm, as SPEC.md
// rounds it.
constexpr double kEmptyHd95Mm = 373.13;

// Thrown for bad evaluation input; what() names the file(s) and the problem.
class MetricsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Dice and HD95 of one binary mask pair.
struct MaskMetrics {
  double dice = 1;
  double hd95_mm = 0;
  bool gt_empty = true;
  bool pred_empty = true;
  int64_t pred_voxels = 0, gt_voxels = 0, overlap = 0;  // |P|, |G|, |P ∩ G|
  // False where the paper's Table 5 prints "–": the ground truth is empty.
  bool applicable() const { return !gt_empty; }
};

// Binary masks (non-zero = foreground), g.numel() bytes each, x fastest.
// Throws MetricsError when a mask has the wrong size.
MaskMetrics evaluate_masks(const std::vector<uint8_t>& pred, const std::vector<uint8_t>& gt, const data::Geometry& g);

// ---- building blocks (exposed for the tests) ---------------------------

// The surface voxels (1) of `mask` on the grid `dims` (definition above).
std::vector<uint8_t> surface_voxels(const std::vector<uint8_t>& mask, const std::array<int64_t, 3>& dims);

// Exact squared Euclidean distance transform: for every voxel of `dims`,
// the squared distance in mm² (voxel centres, `spacing` mm per axis) to the
// nearest voxel with feature != 0; +infinity when there is no feature.
std::vector<double> squared_edt(const std::vector<uint8_t>& feature, const std::array<int64_t, 3>& dims,
                                const std::array<double, 3>& spacing);

// Distances (mm) from each surface voxel of `from` (in index order) to the
// nearest surface voxel of `to`. Both masks must be non-empty.
std::vector<double> directed_surface_distances(const std::vector<uint8_t>& from, const std::vector<uint8_t>& to,
                                               const std::array<int64_t, 3>& dims,
                                               const std::array<double, 3>& spacing);

// numpy.percentile(values, q) with the default 'linear' method; values must
// be non-empty, 0 <= q <= 100. Takes a copy (partially reordered).
double percentile_linear(std::vector<double> values, double q);

// HD95 (mm) of two non-empty masks on the grid (definition above).
double hd95(const std::vector<uint8_t>& pred, const std::vector<uint8_t>& gt, const std::array<int64_t, 3>& dims,
            const std::array<double, 3>& spacing);

// ---- BraTS regions -----------------------------------------------------

// The evaluated masks, in the paper's Table 3 order (NCR, ET, ED) followed
// by the BraTS regions WT and TC; ET is the third BraTS region too.
enum class Region : uint8_t { NCR, ET, ED, WT, TC };
constexpr int kNumRegions = 5;
constexpr std::array<Region, kNumRegions> kRegions = {Region::NCR, Region::ET, Region::ED, Region::WT, Region::TC};
const char* region_name(Region r);  // "NCR", "ET", "ED", "WT", "TC"
// Whether a label in BraTS 2021 values {0, 1, 2, 4} belongs to the region.
bool region_contains(Region r, uint8_t label);

// The label coding of a file: BraTS 2021 {0, 1, 2, 4}, BraTS 2023 {0, 1, 2, 3}
// (ET written as 3), MSD {0, 1 edema, 2 non-enhancing, 3 enhancing} (see
// data/brats_cases.h). "2021"/"brats2021", "2023"/"brats2023" or "msd";
// throws std::invalid_argument otherwise.
data::BratsNaming parse_label_coding(const std::string& s);

// Label voxels (as read_nifti gives them) → BraTS 2021 values {0, 1, 2, 4}
// (data::labels_to_brats2021, its error as a MetricsError).
// Any other value (a label outside the coding's set, a fraction, NaN)
// throws MetricsError "<path>: label values outside {0, 1, 2, 4} (BraTS
// 2021): 3 (12 voxels), ..." naming up to five values with their counts.
std::vector<uint8_t> to_brats_labels(const std::vector<float>& voxels, data::BratsNaming coding, const std::string& path);

// One case: a result per region, indexed by Region.
struct CaseMetrics {
  std::string id;
  std::array<MaskMetrics, kNumRegions> regions{};
  const MaskMetrics& operator[](Region r) const { return regions[static_cast<size_t>(r)]; }
  MaskMetrics& operator[](Region r) { return regions[static_cast<size_t>(r)]; }
};

// Prediction and ground truth as BraTS 2021 labels on the grid g (one pass
// counts every region, then HD95 per region within its bounding box).
// Throws MetricsError on a size mismatch or a label outside {0, 1, 2, 4}.
CaseMetrics evaluate_labels(const std::vector<uint8_t>& pred, const std::vector<uint8_t>& gt, const data::Geometry& g);

// Reads both label files and evaluates them. The prediction must have the
// ground truth's dimensions, spacing and affine (same_grid), else a
// MetricsError names both files; labels are checked against each file's
// coding; NaN/Inf voxels are refused. Spacing comes from the ground truth.
CaseMetrics evaluate_label_files(const std::string& pred_path, data::BratsNaming pred_coding, const std::string& gt_path,
                                 data::BratsNaming gt_coding);

// ---- aggregation -------------------------------------------------------

struct AggregateOptions {
  // false (default): cases whose ground truth is empty for a region are
  // left out of that region's mean and std (not applicable, SPEC.md) and
  // counted in not_applicable; true: they count with the convention values.
  bool include_gt_empty = false;
  // Standard deviation divisor n - ddof: 0 = population (numpy.std's
  // default, the default here), 1 = sample.
  int ddof = 0;
};

struct RegionSummary {
  int64_t n = 0;                       // cases in the mean
  int64_t not_applicable = 0;          // cases left out (ground truth empty)
  double dice_mean = 0, dice_std = 0;  // Dice as a fraction (0..1)
  double hd95_mean = 0, hd95_std = 0;  // mm
};

// Mean and std over cases per region (NaN for a region with no case, and
// for the std when n <= ddof).
std::array<RegionSummary, kNumRegions> aggregate(const std::vector<CaseMetrics>& cases,
                                                 const AggregateOptions& opt = {});

}  // namespace lk::eval
