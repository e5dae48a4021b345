// The figures job (what `lkaseg figures` runs, tools/cli/figures.cpp): the
// paper's qualitative figures (Figs. 8-9) and training curves as PNG files,
// from the parts: raster.h (pixels, text, PNG), plot.h, curves.h (training
// curves from train/run_log.h), overlay.h (the drawing conventions).
//
// Overlays: one <out>/<case id>.png per case: FLAIR alone, FLAIR + ground
// truth, FLAIR + each --pred folder's prediction (<case id>.nii.gz or .nii,
// in the case's grid, as `lkaseg predict` and `lkaseg cv` write them), in
// the order given, titled by --names (default: the folder's name, or its
// parent's when it is called "predictions"), an axial row and a coronal row.
// Cases: --cases, else every prediction of the first --pred folder; every
// case must be in --data and have a prediction in every --pred folder
// (without --pred, --cases is required and only FLAIR and the ground truth
// are shown). --slice: the axial slice (0-based voxel index along the
// volume axis closest to superior) for every case; default per case the
// slice with the largest ground-truth tumour area.
//
// Curves: <out>/curves_fold_<k>.png per fold with a log (training loss; the
// validation Dice of NCR, ET, ED and their mean) and <out>/curves.png (every
// fold's loss and mean validation Dice, one colour per fold), from
// RUN/fold_<k>/log.jsonl (or RUN/log.jsonl when RUN is a fold folder).
//
// Every file is written atomically; stdout gets a line per file. Errors
// (a missing prediction, a mismatched grid, bad labels, an unreadable log
// line) name the file and the problem and make the command fail.
//
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "eval/curves.h"
#include "eval/overlay.h"
#include "eval/plot.h"
#include "eval/raster.h"

namespace lk::eval {

// What to draw (the flags of `lkaseg figures`).
struct FiguresOptions {
  std::string data, run, out;
  std::vector<std::string> preds, names, cases;
  int64_t slice = -1;  // -1: per case, the largest tumour area
  bool no_coronal = false;
  int zoom = 1;
  double alpha = 0.5;
  std::string pred_labels = "auto";  // auto: each case's own coding (what predict writes)
  std::FILE* report = stdout;  // a line per written file; nullptr: silent
  // Receives warnings (a fold without a log); by default they go to stderr.
  std::function<void(const std::string&)> warn{};
};

// The display names of prediction folders: the folder's name, or its
// parent's when it is named "predictions" (run/predictions → "run").
std::vector<std::string> default_model_names(const std::vector<std::string>& pred_dirs);

// Writes the figures; returns the paths written, in order. Throws
// std::invalid_argument for bad options (naming the option), FigureError /
// NiftiError / BratsError / MetricsError / RunLogError naming the file
// otherwise.
std::vector<std::string> make_figures(const FiguresOptions& o);

}  // namespace lk::eval
