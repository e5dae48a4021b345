#include "tools/cli/figures.h"

#include <CLI/CLI.hpp>

#include <memory>

#include "tools/cli/commands.h"

namespace lk::cli {

CLI::App* add_figures_subcommand(CLI::App& app, eval::FiguresOptions& cmd) {
  CLI::App* s = app.add_subcommand(
      "figures",
      "PNG figures: FLAIR with the ground truth and each model's prediction side by side (the paper's Figs. 8-9), "
      "and training curves of a run (loss, validation Dice per class)");
  s->add_option("--data", cmd.data, "folder of BraTS case folders (FLAIR and ground truth)")
      ->check(CLI::ExistingDirectory);
  s->add_option("--pred", cmd.preds,
                "a folder of predictions <case id>.nii.gz in the cases' grid; repeat for several models (one panel "
                "each, in this order)")
      ->check(CLI::ExistingDirectory);
  s->add_option("--names", cmd.names,
                "panel titles of the --pred folders, one each (default: the folder's name, or its parent's for a "
                "folder called predictions)");
  s->add_option("--cases", cmd.cases, "only these cases (default: every prediction of the first --pred folder)");
  s->add_option("--slice", cmd.slice,
                "axial slice to show (0-based voxel index along the axis closest to superior); default: per case "
                "the slice with the largest ground-truth tumour area")
      ->check(CLI::NonNegativeNumber);
  s->add_flag("--no-coronal", cmd.no_coronal, "leave out the coronal row");
  s->add_option("--zoom", cmd.zoom, "enlarge the slices N times (nearest neighbour)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  s->add_option("--alpha", cmd.alpha, "opacity of the label colours over FLAIR")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  s->add_option("--pred-labels", cmd.pred_labels,
                "label coding of the predictions: auto (each case's own, as predict writes them), brats2021 "
                "{0,1,2,4}, brats2023 {0,1,2,3} or msd {0,1 edema,2 non-enhancing,3 enhancing}")
      ->check(CLI::IsMember({"auto", "brats2021", "brats2023", "2021", "2023", "msd"}))
      ->capture_default_str();
  s->add_option("--run", cmd.run, "a run folder (fold_<k>/log.jsonl) or one fold's folder: training curves")
      ->check(CLI::ExistingDirectory);
  s->add_option("--out", cmd.out, "folder for the PNG files (created if needed)")->required();
  return s;
}

Subcommand add_figures(CLI::App& app) {
  auto cmd = std::make_shared<eval::FiguresOptions>();
  CLI::App* sub = add_figures_subcommand(app, *cmd);
  return {sub, [cmd] {
            eval::make_figures(*cmd);
            return 0;
          }};
}

}  // namespace lk::cli
