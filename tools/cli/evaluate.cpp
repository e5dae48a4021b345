#include "tools/cli/evaluate.h"

#include <CLI/CLI.hpp>

#include <memory>

#include "tools/cli/commands.h"

namespace lk::cli {

CLI::App* add_evaluate_subcommand(CLI::App& app, eval::EvaluateOptions& cmd) {
  CLI::App* s = app.add_subcommand(
      "evaluate",
      "Dice and HD95 of predicted label maps (<case id>.nii.gz) against a BraTS folder, per case and "
      "region (NCR, ET, ED, WT, TC), with mean ± std in the paper's Table 3 layout");
  s->add_option("--pred", cmd.pred, "folder of predictions, <case id>.nii.gz in the case's original geometry")
      ->required()
      ->check(CLI::ExistingDirectory);
  s->add_option("--gt", cmd.gt, "folder of BraTS case folders (the ground truth: each case's seg file)")
      ->required()
      ->check(CLI::ExistingDirectory);
  s->add_option("--out", cmd.out, "per-case CSV: case,region,dice,hd95_mm,gt_empty,pred_empty (written atomically)");
  s->add_option("--json", cmd.json, "the per-case results, the summary and the conventions as JSON");
  s->add_option("--cases", cmd.cases, "only these ground-truth cases (e.g. a fold's validation cases)");
  s->add_flag("--allow-missing", cmd.allow_missing,
              "warn about (and leave out) cases without a prediction and predictions without a case, instead of "
              "failing");
  s->add_option("--pred-labels", cmd.pred_labels,
                "label coding of the predictions: auto (each case's own, as predict writes them), brats2021 "
                "{0,1,2,4}, brats2023 {0,1,2,3} or msd {0,1 edema,2 non-enhancing,3 enhancing}")
      ->check(CLI::IsMember({"auto", "brats2021", "brats2023", "2021", "2023", "msd"}))
      ->capture_default_str();
  s->add_flag("--include-empty", cmd.include_empty,
              "count cases whose ground truth is empty for a region in its mean (Dice 1/0, HD95 0/373.13) instead "
              "of leaving them out as not applicable");
  s->add_option("--ddof", cmd.ddof, "std divisor n - ddof: 0 population, 1 sample")
      ->check(CLI::Range(0, 1))
      ->capture_default_str();
  return s;
}

Subcommand add_evaluate(CLI::App& app) {
  auto cmd = std::make_shared<eval::EvaluateOptions>();
  CLI::App* sub = add_evaluate_subcommand(app, *cmd);
  return {sub, [cmd] {
            eval::evaluate_and_report(*cmd);
            return 0;
          }};
}

}  // namespace lk::cli
