// Training curves from a run's log.jsonl files (read by train/run_log.h):
// white canvases of two plots side by side. Per fold: the mean training loss
// per epoch, and the validation Dice of NCR, ET, ED and their mean at each
// validation epoch. Per run: every fold's loss, and every fold's mean
// validation Dice, one colour per fold.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "eval/plot.h"
#include "train/run_log.h"

namespace lk::eval {

struct FoldLog {
  int fold = 0;
  std::string path;  // its log.jsonl
  std::vector<train::EpochLog> epochs;
};

// The folds of a run folder: <run>/fold_<k>/log.jsonl, by k; a folder that
// holds log.jsonl itself is one fold (k from its name fold_<k>, else 0).
// fold_<k> folders without a log, or with an empty one, go to `warn` and are
// left out; none left is a FigureError naming the run folder.
std::vector<FoldLog> find_fold_logs(const std::string& run,
                                    const std::function<void(const std::string&)>& warn = {});

// Loss and validation Dice (NCR, ET, ED, mean) of one fold.
Image render_fold_curves(const FoldLog& fold);
// Every fold's loss and mean validation Dice.
Image render_run_curves(const std::vector<FoldLog>& folds);
// The colour of fold k in render_run_curves.
Rgb fold_colour(int k);

}  // namespace lk::eval
