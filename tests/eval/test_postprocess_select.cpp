// Choosing the post-processing on cross-validation (eval/postprocess_select.h):
// a rule is kept only where it helped the validation cases, the one that
// helps without hurting beats one that also removes true lesions, nothing is
// kept when nothing helps, and the cropped cases score as the full volumes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "eval/postprocess_select.h"

using namespace lk;
using namespace lk::eval;

namespace {

data::Geometry grid() {
  data::Geometry g;
  g.dims = {24, 16, 8};
  return g;
}

void fill(std::vector<uint8_t>& v, const data::Geometry& g, std::array<int64_t, 3> lo, std::array<int64_t, 3> hi,
          uint8_t l) {
  for (int64_t z = lo[2]; z <= hi[2]; ++z)
    for (int64_t y = lo[1]; y <= hi[1]; ++y)
      for (int64_t x = lo[0]; x <= hi[0]; ++x) v[static_cast<size_t>(g.index(x, y, z))] = l;
}

// The ground-truth tumour: ED around an NCR core and ET.
std::vector<uint8_t> tumour(const data::Geometry& g) {
  std::vector<uint8_t> v(static_cast<size_t>(g.numel()), 0);
  fill(v, g, {2, 2, 1}, {9, 9, 6}, 2);
  fill(v, g, {4, 4, 3}, {6, 6, 4}, 1);
  fill(v, g, {7, 4, 3}, {8, 6, 4}, 4);
  return v;
}

// Case kinds: 0, 1 predicted with a far false-positive ED island (20 voxels,
// enough surface to move HD95);
// 2 has a true satellite lesion (32 voxels), predicted right; 3 is perfect.
PpCase make_case(int kind) {
  const data::Geometry g = grid();
  std::vector<uint8_t> gt = tumour(g), pred = gt;
  if (kind == 0) fill(pred, g, {20, 12, 2}, {21, 13, 6}, 2);
  if (kind == 1) fill(pred, g, {20, 2, 1}, {21, 3, 5}, 2);
  if (kind == 2) {
    fill(gt, g, {16, 10, 2}, {19, 13, 3}, 2);
    pred = gt;
  }
  return make_pp_case("case_" + std::to_string(kind), pred, gt, g);
}

}  // namespace

TEST_CASE("postprocess select: the rule that removes only the false islands is kept, nothing else", "[postprocess]") {
  const std::vector<PpCase> cases = {make_case(0), make_case(1), make_case(2), make_case(3)};
  const PpSelection s = select_postprocessing(cases);
  REQUIRE(s.chosen.rules.size() == 1);
  const train::PpRule& r = s.chosen.rules[0];
  CHECK(r.target == train::PpTarget::WT);
  CHECK(r.kind == train::PpKind::MinComponent);
  CHECK(r.mm3 == 30);  // removes the 20-voxel islands, keeps the 32-voxel satellite (100 would not)
  CHECK(improves(s.after, s.before));
  CHECK(s.after.dice > s.before.dice);
  CHECK(s.after.hd95 < s.before.hd95);
  // Keeping only the largest component also drops case 2's true satellite: tried, not kept.
  const auto largest = std::find_if(s.tried.begin(), s.tried.end(), [](const PpTrial& t) {
    return t.rule.target == train::PpTarget::WT && t.rule.kind == train::PpKind::LargestComponent;
  });
  REQUIRE(largest != s.tried.end());
  CHECK_FALSE(largest->kept);
  CHECK(largest->cases_changed == 3);
  int kept = 0;
  for (const PpTrial& t : s.tried) kept += t.kept;
  CHECK(kept == 1);
  // Case 0 after: perfect.
  CHECK(s.after_cases[0][Region::WT].dice == 1.0);
  CHECK(s.before_cases[0][Region::WT].dice < 1.0);
  // The report names the kept rule.
  CHECK(s.report_json().find("\"kept\":true") != std::string::npos);
}

TEST_CASE("postprocess select: where no rule helps, none is kept", "[postprocess]") {
  const PpSelection s = select_postprocessing({make_case(2), make_case(3)});
  CHECK(s.chosen.rules.empty());
  CHECK(s.after.dice == s.before.dice);
  CHECK(s.after.hd95 == s.before.hd95);
  CHECK_FALSE(s.tried.empty());
}

TEST_CASE("postprocess select: cropped cases score as the full volumes", "[postprocess]") {
  const data::Geometry g = grid();
  std::vector<uint8_t> gt = tumour(g), pred = gt;
  fill(pred, g, {20, 12, 5}, {21, 13, 5}, 4);
  fill(pred, g, {5, 5, 1}, {5, 8, 2}, 1);
  const PpCase c = make_pp_case("x", pred, gt, g);
  CHECK(c.geom.numel() < g.numel());
  const CaseMetrics full = evaluate_labels(pred, gt, g), crop = evaluate_labels(c.pred, c.gt, c.geom);
  for (Region r : kRegions) {
    INFO(region_name(r));
    CHECK(crop[r].dice == full[r].dice);
    CHECK(crop[r].hd95_mm == Approx(full[r].hd95_mm).epsilon(1e-12));
  }
  // Nothing in either volume: one background voxel, Dice 1 everywhere.
  const PpCase empty = make_pp_case("e", std::vector<uint8_t>(g.numel(), 0), std::vector<uint8_t>(g.numel(), 0), g);
  CHECK(empty.geom.numel() == 1);
  CHECK(score_cases({evaluate_labels(empty.pred, empty.gt, empty.geom)}, PpConvention::Brats).dice == 1.0);
}

TEST_CASE("postprocess select: the score counts empty ground truth with the BraTS conventions", "[postprocess]") {
  CaseMetrics a;  // every region: both empty -> Dice 1, HD95 0
  CaseMetrics b = a;
  b[Region::ET] = {0.0, kEmptyHd95Mm, true, false, 5, 0, 0};  // a false ET on a case without ET
  const Score s = score_cases({a, b}, PpConvention::Brats);
  CHECK(s.dice == Approx((4 * 1.0 + 0.5) / 5));
  CHECK(s.hd95 == Approx(kEmptyHd95Mm / 2 / 5));
  CHECK(s.region_dice[static_cast<size_t>(Region::ET)] == Approx(0.5));
  CHECK(improves(score_cases({a, a}, PpConvention::Brats), s));
  CHECK_FALSE(improves(s, s));
  CHECK_FALSE(improves({0.9, 10, 1}, {0.8, 5, 1}));  // better Dice, worse HD95: not an improvement
}

TEST_CASE("postprocess select: the SPEC convention leaves a region out where the ground truth lacks it",
          "[postprocess]") {
  CaseMetrics a;  // nothing anywhere: every region not applicable
  CaseMetrics b = a;
  b[Region::ET] = {0.0, kEmptyHd95Mm, true, false, 5, 0, 0};  // a false ET on a case without ET
  b[Region::WT] = {0.8, 4.0, false, false, 100, 10, 15};      // a case with a tumour
  const Score s = score_cases({a, b}, PpConvention::Spec);
  CHECK(s.dice == Approx(0.8));  // WT alone counts, over the one case that has it
  CHECK(s.hd95 == Approx(4.0));
  CHECK(std::isnan(s.region_dice[static_cast<size_t>(Region::ET)]));
  CHECK(s.region_hd95[static_cast<size_t>(Region::WT)] == Approx(4.0));
  // Clearing the false ET changes nothing under SPEC, everything under BraTS.
  CaseMetrics cleared = b;
  cleared[Region::ET] = CaseMetrics{}[Region::ET];
  CHECK_FALSE(improves(score_cases({a, cleared}, PpConvention::Spec), s));
  CHECK(improves(score_cases({a, cleared}, PpConvention::Brats), score_cases({a, b}, PpConvention::Brats)));
}

TEST_CASE("postprocess select: a better mean that costs one region is not an improvement", "[postprocess]") {
  Score before{0.70, 20.0, 3}, after{0.75, 15.0, 3};
  before.region_dice = {0.5, 0.6, 0.7, 0.8, 0.9};
  before.region_hd95 = {20, 20, 20, 20, 20};
  after.region_dice = {0.5, 0.6, 0.7, 0.8, 0.9};
  after.region_hd95 = {15, 15, 15, 15, 15};
  CHECK(improves(after, before));
  after.region_dice[static_cast<size_t>(Region::ET)] = 0.59;  // ET's Dice lower
  CHECK_FALSE(improves(after, before));
  after.region_dice[static_cast<size_t>(Region::ET)] = 0.6;
  after.region_hd95[static_cast<size_t>(Region::NCR)] = 21;  // NCR's HD95 higher
  CHECK_FALSE(improves(after, before));
  after.region_hd95[static_cast<size_t>(Region::NCR)] = 15;
  after.region_dice[static_cast<size_t>(Region::TC)] = Score::kNaN;  // not applicable: skipped
  CHECK(improves(after, before));
  // Within the tolerances (what the selection uses: 0.1 Dice point, 1 mm) a region may move the wrong way.
  after.region_dice[static_cast<size_t>(Region::ET)] = 0.5995;
  after.region_hd95[static_cast<size_t>(Region::NCR)] = 20.9;
  CHECK_FALSE(improves(after, before));
  CHECK(improves(after, before, 0.001, 1.0));
  CHECK(no_region_worse(after, before, 0.001, 1.0));
  CHECK_FALSE(no_region_worse(after, before, 0.0001, 1.0));
  CHECK_FALSE(no_region_worse(after, before, 0.001, 0.5));
  // The means still decide: no region worse but the mean Dice lower is no improvement.
  after.dice = 0.69;
  CHECK_FALSE(improves(after, before, 0.001, 1.0));
}

TEST_CASE("postprocess select: small losses within the tolerance do not add up past it", "[postprocess]") {
  const auto score = [](double dice, double ncr_hd95) {
    Score s{dice, 10.0, 4};
    s.region_dice = {0.5, 0.5, 0.5, 0.5, 0.5};
    s.region_hd95 = {ncr_hd95, 10, 10, 10, 10};
    return s;
  };
  const PpSelectOptions o;  // 0.1 point, 1 mm
  const Score none = score(0.50, 10.0);
  const Score first = score(0.51, 10.8);  // a kept rule: better mean Dice, NCR 0.8 mm worse
  CHECK(rule_helps(first, none, none, o));
  // The next rule costs NCR another 0.8 mm: within 1 mm of `first`, 1.6 mm past no post-processing.
  CHECK_FALSE(rule_helps(score(0.52, 11.6), first, none, o));
  CHECK(rule_helps(score(0.52, 10.9), first, none, o));
  // A rule that only makes things worse, even within the tolerance, does not help.
  CHECK_FALSE(rule_helps(score(0.50, 10.5), none, none, o));
}

namespace {

// A tumour without enhancing tumour (ED around an NCR core, 3x3x3), predicted
// right except `false_et` voxels of the core predicted ET; or, with
// `true_et` > 0, that many core voxels truly ET and predicted right.
PpCase et_case(const std::string& id, int false_et, int true_et) {
  const data::Geometry g = grid();
  std::vector<uint8_t> gt(static_cast<size_t>(g.numel()), 0);
  fill(gt, g, {2, 2, 1}, {9, 9, 6}, 2);
  fill(gt, g, {4, 4, 2}, {6, 6, 4}, 1);
  for (int i = 0; i < true_et; ++i) gt[static_cast<size_t>(g.index(4 + i % 3, 4, 2))] = 4;
  std::vector<uint8_t> pred = gt;
  for (int i = 0; i < false_et; ++i) pred[static_cast<size_t>(g.index(4 + i % 3, 4, 2))] = 4;
  return make_pp_case(id, pred, gt, g);
}

bool kept(const PpSelection& s, train::PpTarget t) {
  return std::any_of(s.chosen.rules.begin(), s.chosen.rules.end(),
                     [&](const train::PpRule& r) { return r.target == t; });
}

}  // namespace

TEST_CASE("postprocess select: clearing false ET of cases without ET does not buy wiping a true small ET under SPEC",
          "[postprocess]") {
  // Run 7's split B in small: two validation cases without ET whose
  // predictions carry a few false ET voxels, one with a small true ET
  // predicted right. "ET below N mm3 relabelled NCR" (or its components
  // below N mm3 made NCR) clears the false ones and wipes the true one.
  const std::vector<PpCase> cases = {et_case("no_et_0", 2, 0), et_case("no_et_1", 2, 0), et_case("small_et", 0, 2)};
  PpSelectOptions o;
  o.convention = PpConvention::Brats;
  const PpSelection brats = select_postprocessing(cases, o);
  CHECK(brats.options.convention == PpConvention::Brats);
  CHECK(kept(brats, train::PpTarget::ET));  // ET over 3 cases: 1/3 -> 2/3 Dice, NCR better too
  o.convention = PpConvention::Spec;
  const PpSelection spec = select_postprocessing(cases, o);
  CHECK_FALSE(kept(spec, train::PpTarget::ET));  // ET over 1 case: 1 -> 0
  CHECK_FALSE(kept(spec, train::PpTarget::LabelET));
  CHECK(spec.after.region_dice[static_cast<size_t>(Region::ET)] == 1.0);
  CHECK(spec.report_json().find("\"convention\":\"spec\"") != std::string::npos);
  CHECK(select_postprocessing(cases).options.convention == PpConvention::Spec);  // the default
}

TEST_CASE("postprocess select: under SPEC a label the prediction holds is never emptied: a missed region keeps its "
          "only component",
          "[postprocess]") {
  // 01480 in small: both cases hold true necrosis; "a" is predicted right
  // plus a far one-voxel NCR speck, "b" misses the necrosis (ED there) and
  // has only such a speck. Removing one-voxel components cleans "a" and,
  // without keep_labels, empties "b"'s NCR: 373.13 mm instead of a finite
  // distance, so no such rule can be kept; only "label NCR: keep the
  // largest component" cleans "a" and leaves "b" its speck.
  const data::Geometry g = grid();
  const std::vector<uint8_t> gt = tumour(g);
  std::vector<uint8_t> a = gt, b = gt;
  fill(a, g, {20, 12, 2}, {20, 12, 2}, 1);
  fill(b, g, {4, 4, 3}, {6, 6, 4}, 2);
  fill(b, g, {20, 12, 2}, {20, 12, 2}, 1);
  const std::vector<PpCase> cases = {make_pp_case("a", a, gt, g), make_pp_case("b", b, gt, g)};
  PpSelectOptions o;
  o.convention = PpConvention::Brats;  // every region of both cases is in the truth: scores as SPEC
  const PpSelection brats = select_postprocessing(cases, o);
  CHECK_FALSE(brats.chosen.keep_labels);
  REQUIRE(brats.chosen.rules.size() == 1);
  CHECK(brats.chosen.rules[0].str() == "label NCR: largest_component");
  const auto wt_min = std::find_if(brats.tried.begin(), brats.tried.end(), [](const PpTrial& t) {
    return t.rule.target == train::PpTarget::WT && t.rule.kind == train::PpKind::MinComponent;
  });
  REQUIRE(wt_min != brats.tried.end());
  CHECK(wt_min->score.region_hd95[static_cast<size_t>(Region::NCR)] > 150);  // "b": 373.13 mm
  o.convention = PpConvention::Spec;
  const PpSelection spec = select_postprocessing(cases, o);
  CHECK(spec.chosen.keep_labels);
  REQUIRE_FALSE(spec.chosen.rules.empty());
  CHECK(spec.chosen.rules[0].target == train::PpTarget::WT);  // a WT rule: refused without keep_labels
  CHECK(spec.after_cases[0][Region::NCR].dice == 1.0);        // "a" clean
  CHECK(spec.after_cases[1][Region::NCR].hd95_mm < 50);       // "b" keeps its speck
  CHECK(spec.after_cases[1][Region::NCR].hd95_mm == spec.before_cases[1][Region::NCR].hd95_mm);
  CHECK(spec.report_json().find("\"keep_labels\":true") != std::string::npos);
  // predict applies the same: the chosen rules on "b"'s prediction leave it as it was.
  std::vector<uint8_t> pb = cases[1].pred;
  CHECK(train::apply_postprocessing(pb, cases[1].geom.dims, cases[1].geom.spacing, spec.chosen) == 0);
  train::Postprocessing without = spec.chosen;
  without.keep_labels = false;
  CHECK(train::apply_postprocessing(pb, cases[1].geom.dims, cases[1].geom.spacing, without) == 1);
}
