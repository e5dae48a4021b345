// Evaluating a folder of predictions against a BraTS folder (what `lkaseg
// evaluate` runs, tools/cli/evaluate.cpp): Dice and HD95 (eval/metrics.h) per
// case and region, and their mean ± std in the paper's Table 3 layout.
//
// Predictions: one NIfTI label file per case, named <case id>.nii.gz (or
// <case id>.nii) directly in --pred, in the case's original geometry (the
// ground truth's dimensions, spacing and affine), labels in the ground
// truth's coding (--pred-labels auto, the default: what `lkaseg predict`
// writes) or the one --pred-labels names (brats2021 {0, 1, 2, 4}, brats2023
// {0, 1, 2, 3}, msd). Other files in --pred are ignored.
// Ground truth: a BraTS folder or MSD task (data/brats_cases.h discovery);
// each case's seg file, its labels in that naming's coding.
// A ground-truth case without a prediction, or a prediction without a
// ground-truth case, is an error listing them all; with --allow-missing a
// warning, and such cases are left out.
//
// --out: per-case CSV (written atomically), one row per case and region:
//   case,region,dice,hd95_mm,gt_empty,pred_empty
// regions in the order NCR, ET, ED, WT, TC; dice as a fraction (%.6f),
// hd95_mm in mm (%.4f), the flags 0/1 (gt_empty = 1: not applicable).
// --json: the same rows, the summary and the conventions.
// stdout: the summary, Dice % and HD95 mm as mean ± std over cases, for
// NCR, ET, ED (the paper's Table 3), then WT, TC, ET (BraTS regions); cases
// with an empty ground truth for a region are left out of its mean (counted
// as n/a) unless --include-empty. Progress on stderr.
//
#pragma once

#include <array>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "eval/metrics.h"

namespace lk::eval {

// What to evaluate (the flags of `lkaseg evaluate`).
struct EvaluateOptions {
  std::string pred, gt, out, json;  // out, json: files to write (empty: none)
  std::vector<std::string> cases;  // when not empty: only these ground-truth cases
  bool allow_missing = false;
  std::string pred_labels = "auto";  // each case's ground-truth coding, or brats2021, brats2023, msd (parse_label_coding)
  bool include_empty = false;
  int ddof = 0;
  std::FILE* progress = stderr;  // nullptr: silent (tests)
  std::FILE* report = stdout;    // the summary table; nullptr: none
  // Receives warnings (allow_missing); by default they go to stderr.
  std::function<void(const std::string&)> warn{};
};

struct EvaluationResult {
  std::vector<CaseMetrics> cases;  // sorted by id
  std::array<RegionSummary, kNumRegions> summary{};
  std::vector<std::string> missing;  // ground-truth cases without a prediction (skipped)
  std::vector<std::string> extra;    // predictions without a ground-truth case (ignored)
};

// The prediction files of a folder: case id -> path (<id>.nii.gz or
// <id>.nii; hidden and other files ignored). Throws MetricsError naming the
// folder when it is not one, or when a case has both files.
std::map<std::string, std::string> prediction_files(const std::string& dir);

// Pairs the files, evaluates every case, aggregates. Throws MetricsError
// for missing/extra predictions (without allow_missing), a grid mismatch
// or bad labels (naming the files), BratsError/NiftiError for unreadable
// input, data::MissingCaseError for an id of o.cases not in o.gt.
EvaluationResult evaluate_folders(const EvaluateOptions& o);

// The per-case CSV (header + rows), the JSON document, the stdout table.
std::string format_metrics_csv(const std::vector<CaseMetrics>& cases);
std::string format_metrics_json(const EvaluationResult& r, const AggregateOptions& opt);
std::string format_summary_table(const std::array<RegionSummary, kNumRegions>& s, int64_t cases);

// evaluate_folders, then the files (o.out, o.json, written atomically, their
// folders checked first) and the summary on o.report.
EvaluationResult evaluate_and_report(const EvaluateOptions& o);

}  // namespace lk::eval
