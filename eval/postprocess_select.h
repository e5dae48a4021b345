// Choosing the post-processing on cross-validation, as nnU-Net does, and
// the one score by which `cv` compares predictions (post-processing rules,
// and a fold's best versus last checkpoint).
//
// Score of a set of cases: per region (NCR, ET, ED, WT, TC) the mean over
// the cases of Dice and of HD95, every case counted with the BraTS
// conventions (a region empty in the ground truth counts too: Dice 1 and
// HD95 0 when the prediction is empty as well, Dice 0 and HD95 373.13 mm
// when not; that is what a false-positive island costs on such a case), then
// the mean over the five regions: `dice` (0..1) and `hd95` (mm). One number
// when one is needed: combined = dice - hd95 / 373.13, both metrics mapped
// to 0..1 by their range, equal weight.
//
// Selection (greedy, in this order of targets: WT, TC, ET, label NCR,
// label ED, label ET; train/postprocess.h defines them): for each target,
// every candidate rule (largest_component; min_component at each of
// min_mm3; for ET also relabel_below at each of relabel_mm3) is applied on
// top of the rules kept so far, to every case, and scored. A candidate
// helps when neither mean moves the wrong way (dice not lower, hd95 not
// higher) and at least one improves (by more than 1e-9); of the helping
// candidates of a target the one with the highest combined score is kept.
// A target with no helping candidate gets no rule. Only the cases a rule
// changes are evaluated again.
//
// The cases are held cropped to the bounding box of prediction and ground
// truth foreground (plus one voxel): exact for Dice, HD95 (surfaces and
// distances do not change) and for the rules (every component lies inside).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/volume.h"
#include "eval/metrics.h"
#include "train/postprocess.h"

namespace lk::eval {

struct Score {
  double dice = 0;   // mean over regions of the case-mean Dice (0..1)
  double hd95 = 0;   // mean over regions of the case-mean HD95 (mm)
  int64_t cases = 0;
  double combined() const { return dice - hd95 / kEmptyHd95Mm; }
};
Score score_cases(const std::vector<CaseMetrics>& cases);
// `a` is no worse than `b` in either mean and better in one (by > 1e-9).
bool improves(const Score& a, const Score& b);

// One cross-validation case: prediction and ground truth as BraTS 2021
// labels, cropped (above).
struct PpCase {
  std::string id;
  data::Geometry geom;  // the crop's dims, the original spacing
  std::vector<uint8_t> pred, gt;
};
// Crops a case given on the grid g (both volumes g.numel() voxels).
PpCase make_pp_case(const std::string& id, const std::vector<uint8_t>& pred, const std::vector<uint8_t>& gt,
                    const data::Geometry& g);

struct PpSelectOptions {
  std::vector<double> min_mm3 = {10, 30, 100, 300, 1000};  // min_component thresholds tried
  std::vector<double> relabel_mm3 = {100, 200, 500, 1000}; // relabel_below thresholds tried on ET
};

struct PpTrial {
  train::PpRule rule;
  Score score;
  int64_t cases_changed = 0;
  bool kept = false;
};

struct PpSelection {
  train::Postprocessing chosen;
  Score before, after;
  std::vector<CaseMetrics> before_cases, after_cases;  // per case, ids as given
  std::vector<PpTrial> tried;                          // in the order tried
  // The criterion, the scores before and after and every trial, as a JSON
  // object's text (stored in postprocessing.json under "selection").
  std::string report_json() const;
};

PpSelection select_postprocessing(const std::vector<PpCase>& cases, const PpSelectOptions& o = {});

}  // namespace lk::eval
