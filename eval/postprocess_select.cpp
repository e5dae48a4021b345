#include "eval/postprocess_select.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace lk::eval {

using json = nlohmann::json;

const char* pp_convention_name(PpConvention c) { return c == PpConvention::Spec ? "spec" : "brats"; }

Score score_cases(const std::vector<CaseMetrics>& cases, PpConvention convention) {
  Score s;
  s.cases = static_cast<int64_t>(cases.size());
  if (cases.empty()) return s;
  AggregateOptions ao;
  ao.include_gt_empty = convention == PpConvention::Brats;
  const auto sum = aggregate(cases, ao);
  int counted = 0;
  for (Region r : kRegions) {
    const RegionSummary& rs = sum[static_cast<size_t>(r)];
    if (rs.n == 0) continue;  // no case has the region (SPEC convention): not applicable
    s.region_dice[static_cast<size_t>(r)] = rs.dice_mean;
    s.region_hd95[static_cast<size_t>(r)] = rs.hd95_mean;
    s.dice += rs.dice_mean;
    s.hd95 += rs.hd95_mean;
    ++counted;
  }
  if (counted > 0) s.dice /= counted, s.hd95 /= counted;
  return s;
}

bool no_region_worse(const Score& a, const Score& b, double dice_tol, double hd95_tol_mm) {
  constexpr double eps = 1e-9;
  for (size_t r = 0; r < static_cast<size_t>(kNumRegions); ++r) {
    const bool dice_worse = a.region_dice[r] < b.region_dice[r] - dice_tol - eps;
    const bool hd95_worse = a.region_hd95[r] > b.region_hd95[r] + hd95_tol_mm + eps;
    if (dice_worse || hd95_worse) return false;  // NaN on either side compares false: the region is skipped
  }
  return true;
}

bool improves(const Score& a, const Score& b, double dice_tol, double hd95_tol_mm) {
  constexpr double eps = 1e-9;
  const bool means_not_worse = a.dice >= b.dice - eps && a.hd95 <= b.hd95 + eps;
  const bool a_mean_better = a.dice > b.dice + eps || a.hd95 < b.hd95 - eps;
  return no_region_worse(a, b, dice_tol, hd95_tol_mm) && means_not_worse && a_mean_better;
}

bool rule_helps(const Score& trial, const Score& current, const Score& none, const PpSelectOptions& o) {
  return improves(trial, current, o.region_dice_tol, o.region_hd95_tol_mm) &&
         no_region_worse(trial, none, o.region_dice_tol, o.region_hd95_tol_mm);
}

PpCase make_pp_case(const std::string& id, const std::vector<uint8_t>& pred, const std::vector<uint8_t>& gt,
                    const data::Geometry& g) {
  const int64_t n = g.numel();
  if (static_cast<int64_t>(pred.size()) != n || static_cast<int64_t>(gt.size()) != n)
    throw std::invalid_argument("make_pp_case: " + id + ": volumes do not match the grid");
  std::array<int64_t, 3> lo{g.dims[0], g.dims[1], g.dims[2]}, hi{-1, -1, -1};
  for (int64_t z = 0; z < g.dims[2]; ++z)
    for (int64_t y = 0; y < g.dims[1]; ++y)
      for (int64_t x = 0; x < g.dims[0]; ++x) {
        const size_t i = static_cast<size_t>(g.index(x, y, z));
        if (!pred[i] && !gt[i]) continue;
        lo = {std::min(lo[0], x), std::min(lo[1], y), std::min(lo[2], z)};
        hi = {std::max(hi[0], x), std::max(hi[1], y), std::max(hi[2], z)};
      }
  PpCase c;
  c.id = id;
  c.geom.spacing = g.spacing;
  if (hi[0] < 0) {  // nothing in either: one background voxel keeps the conventions
    c.geom.dims = {1, 1, 1};
    c.pred = c.gt = {0};
    return c;
  }
  for (int a = 0; a < 3; ++a) {
    lo[a] = std::max<int64_t>(0, lo[a] - 1);
    hi[a] = std::min(g.dims[a] - 1, hi[a] + 1);
    c.geom.dims[a] = hi[a] - lo[a] + 1;
  }
  c.pred.reserve(static_cast<size_t>(c.geom.numel()));
  c.gt.reserve(static_cast<size_t>(c.geom.numel()));
  for (int64_t z = lo[2]; z <= hi[2]; ++z)
    for (int64_t y = lo[1]; y <= hi[1]; ++y)
      for (int64_t x = lo[0]; x <= hi[0]; ++x) {
        const size_t i = static_cast<size_t>(g.index(x, y, z));
        c.pred.push_back(pred[i]);
        c.gt.push_back(gt[i]);
      }
  return c;
}

namespace {

json score_json(const Score& s) {
  json regions = json::object();
  for (Region r : kRegions) {
    const size_t i = static_cast<size_t>(r);
    if (std::isfinite(s.region_dice[i]))
      regions[region_name(r)] = {{"dice", s.region_dice[i]}, {"hd95_mm", s.region_hd95[i]}};
  }
  return {{"dice", s.dice}, {"hd95_mm", s.hd95}, {"combined", s.combined()}, {"cases", s.cases}, {"regions", regions}};
}

// The candidates for one target, in the order tried.
std::vector<train::PpRule> candidates(train::PpTarget t, const PpSelectOptions& o) {
  std::vector<train::PpRule> out{{t, train::PpKind::LargestComponent, 0}};
  for (double v : o.min_mm3) out.push_back({t, train::PpKind::MinComponent, v});
  if (t == train::PpTarget::ET)
    for (double v : o.relabel_mm3) out.push_back({t, train::PpKind::RelabelBelow, v});
  return out;
}

}  // namespace

PpSelection select_postprocessing(const std::vector<PpCase>& cases, const PpSelectOptions& o) {
  PpSelection sel;
  std::vector<std::vector<uint8_t>> current;
  for (const PpCase& c : cases) {
    CaseMetrics m = evaluate_labels(c.pred, c.gt, c.geom);
    m.id = c.id;
    sel.before_cases.push_back(std::move(m));
    current.push_back(c.pred);
  }
  sel.options = o;
  sel.before = score_cases(sel.before_cases, o.convention);
  std::vector<CaseMetrics> cur = sel.before_cases;
  Score cur_score = sel.before;
  sel.chosen.keep_labels = o.convention == PpConvention::Spec;
  // Per case the kept rules applied (ruled) and then keep_labels (current):
  // a candidate is one more rule on `ruled`, scored after keep_labels, as
  // apply_postprocessing gives it from the prediction.
  std::vector<std::vector<uint8_t>> ruled = current;
  for (train::PpTarget t : train::kPpTargets) {
    int best = -1;
    std::vector<CaseMetrics> best_metrics;
    std::vector<std::vector<uint8_t>> best_ruled, best_labels;
    for (const train::PpRule& rule : candidates(t, o)) {
      PpTrial trial;
      trial.rule = rule;
      std::vector<CaseMetrics> ms = cur;
      std::vector<std::vector<uint8_t>> r = ruled, labels(cases.size());
      for (size_t i = 0; i < cases.size(); ++i) {
        train::apply_rule(r[i], cases[i].geom.dims, cases[i].geom.spacing, rule);
        labels[i] = r[i];
        if (sel.chosen.keep_labels) train::put_back_emptied_labels(labels[i], cases[i].pred, cases[i].geom.dims);
        if (labels[i] == current[i]) continue;
        ++trial.cases_changed;
        ms[i] = evaluate_labels(labels[i], cases[i].gt, cases[i].geom);
        ms[i].id = cases[i].id;
      }
      trial.score = score_cases(ms, o.convention);
      sel.tried.push_back(trial);
      if (rule_helps(trial.score, cur_score, sel.before, o) &&
          (best < 0 || trial.score.combined() > sel.tried[static_cast<size_t>(best)].score.combined())) {
        best = static_cast<int>(sel.tried.size()) - 1;
        best_metrics = std::move(ms);
        best_ruled = std::move(r);
        best_labels = std::move(labels);
      }
    }
    if (best < 0) continue;
    PpTrial& kept = sel.tried[static_cast<size_t>(best)];
    kept.kept = true;
    sel.chosen.rules.push_back(kept.rule);
    ruled = std::move(best_ruled);
    current = std::move(best_labels);
    cur = std::move(best_metrics);
    cur_score = kept.score;
  }
  sel.after_cases = cur;
  sel.after = cur_score;
  return sel;
}

std::string PpSelection::report_json() const {
  const auto fmt = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return std::string(b);
  };
  json tried_j = json::array();
  for (const PpTrial& t : tried) {
    json r = {{"target", train::pp_target_name(t.rule.target)}, {"rule", train::pp_kind_name(t.rule.kind)}};
    if (t.rule.kind != train::PpKind::LargestComponent) r["mm3"] = t.rule.mm3;
    r["score"] = score_json(t.score);
    r["cases_changed"] = t.cases_changed;
    r["kept"] = t.kept;
    tried_j.push_back(r);
  }
  const std::string empty = options.convention == PpConvention::Spec
                                ? "a case whose ground truth lacks a region is left out of that region (SPEC.md)"
                                : "a case whose ground truth lacks a region counts with the BraTS values";
  return json{{"criterion",
               "per region (NCR, ET, ED, WT, TC) the case-mean Dice and HD95, " + empty +
                   "; a rule is kept when no region's Dice falls by more than " + fmt(100 * options.region_dice_tol) +
                   " point(s) nor its HD95 rises by more than " + fmt(options.region_hd95_tol_mm) +
                   " mm (against the rules kept before it and against none) and the mean over the regions improves "
                   "in one without the other getting worse, the best combined = dice - hd95/373.13 per target"},
              {"region_dice_tol", options.region_dice_tol},
              {"region_hd95_tol_mm", options.region_hd95_tol_mm},
              {"convention", pp_convention_name(options.convention)},
              {"keep_labels", chosen.keep_labels},
              {"before", score_json(before)},
              {"after", score_json(after)},
              {"tried", tried_j}}
      .dump();
}

}  // namespace lk::eval
