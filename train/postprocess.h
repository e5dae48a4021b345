// Post-processing of predicted label maps, as nnU-Net does it: a few
// connected-component rules, each kept only where it improved the
// cross-validated results (chosen by eval/postprocess_select.h after `cv`,
// written to RUN/postprocessing.json) and applied by `lkaseg predict`.
//
// Rules act on BraTS 2021 label volumes {0, 1 NCR, 2 ED, 4 ET} on the
// original grid, with 3-D connected components of 26-connectivity
// (data/components.h). A rule has a target:
//   region WT (1, 2, 4)  removed voxels become background (0)
//   region TC (1, 4)     removed voxels become ED (2): they stay whole tumour
//   region ET (4)        removed voxels become NCR (1): they stay tumour core
//   label NCR / ED / ET  removed voxels become background (0), as nnU-Net
//                        does for single labels
// and a kind:
//   largest_component    keep the target's largest component (the first in
//                        index order among equals), remove the others
//   min_component mm3    remove the components smaller than mm3 mm³
//   relabel_below mm3    when the target's whole volume is above 0 and below
//                        mm3 mm³, remove all of it (for region ET: ET
//                        relabelled NCR, the BraTS habit for small, likely
//                        false enhancing predictions)
// Volumes are voxel counts times the voxel volume (the spacing's product).
//
// keep_labels (chosen with the SPEC convention, eval/postprocess_select.h):
// a label (NCR, ED, ET) the prediction holds is never emptied by the rules;
// where they would empty it, its largest component in the prediction as it
// was before the rules is put back. Under that convention a region the
// ground truth lacks is not scored, so emptying a region can only cost
// (Dice 0 and HD95 373.13 mm where the truth holds it, however small the
// prediction was): runs 7-7e (docs/ACCURACY.md) lost 01476's true 224-voxel
// ET and 01480's necrosis that way.
//
// File format (JSON): {"format": "lkaseg-postprocessing-1", "rules": [
//   {"target": "WT", "rule": "largest_component"},
//   {"target": "label ED", "rule": "min_component", "mm3": 100},
//   {"target": "ET", "rule": "relabel_below", "mm3": 500}], "keep_labels": true, ...};
// the rules apply in their order; keep_labels is false when absent (files
// written before it); other keys (the selection report) are ignored.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lk::train {

enum class PpTarget : uint8_t { WT, TC, ET, LabelNCR, LabelED, LabelET };
constexpr int kNumPpTargets = 6;
constexpr std::array<PpTarget, kNumPpTargets> kPpTargets = {PpTarget::WT,       PpTarget::TC,      PpTarget::ET,
                                                            PpTarget::LabelNCR, PpTarget::LabelED, PpTarget::LabelET};
const char* pp_target_name(PpTarget t);  // "WT", "TC", "ET", "label NCR", "label ED", "label ET"
bool pp_target_contains(PpTarget t, uint8_t brats_label);
uint8_t pp_target_fill(PpTarget t);      // the label removed voxels take

enum class PpKind : uint8_t { LargestComponent, MinComponent, RelabelBelow };
const char* pp_kind_name(PpKind k);      // "largest_component", "min_component", "relabel_below"

struct PpRule {
  PpTarget target = PpTarget::WT;
  PpKind kind = PpKind::LargestComponent;
  double mm3 = 0;  // min_component, relabel_below
  std::string str() const;  // "WT: largest_component", "label ED: min_component < 100 mm3"
};

struct Postprocessing {
  std::vector<PpRule> rules;  // applied in order
  bool keep_labels = false;   // no label the prediction holds is emptied (above)
};

// One rule on `labels` (BraTS 2021 values, dims[0]*dims[1]*dims[2] voxels,
// x fastest; spacing in mm). Returns the number of voxels it changed.
int64_t apply_rule(std::vector<uint8_t>& labels, const std::array<int64_t, 3>& dims,
                   const std::array<double, 3>& spacing, const PpRule& rule);
// keep_labels on its own: each label (NCR, ED, ET) that `before` holds and
// `labels` no longer does gets its largest component in `before` back.
void put_back_emptied_labels(std::vector<uint8_t>& labels, const std::vector<uint8_t>& before,
                             const std::array<int64_t, 3>& dims);
// Every rule, in order, then keep_labels; returns the voxels that differ from the input.
int64_t apply_postprocessing(std::vector<uint8_t>& labels, const std::array<int64_t, 3>& dims,
                             const std::array<double, 3>& spacing, const Postprocessing& p);

// The file (format above). Throws std::runtime_error naming the file and the
// problem for an unreadable or malformed one.
Postprocessing read_postprocessing(const std::string& path);
// The JSON text of `p`; `report_json` (a JSON object's text, or empty) is
// stored under "selection".
std::string postprocessing_json(const Postprocessing& p, const std::string& report_json = "");

}  // namespace lk::train
