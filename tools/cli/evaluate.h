// `lkaseg evaluate`: Dice and HD95 of predicted label maps against a BraTS
// folder's segmentations, per case and region, and their mean ± std in the
// paper's Table 3 layout. This file parses the flags; eval/evaluate.h does
// the work and documents the files and the conventions.
//
//   lkaseg evaluate --pred DIR --gt DIR [--out results.csv] [--json results.json]
//                   [--cases ID...] [--allow-missing] [--pred-labels auto|brats2021|brats2023|msd]
//                   [--include-empty] [--ddof 0|1]
#pragma once

#include "eval/evaluate.h"

namespace CLI {
class App;
}

namespace lk::cli {

// Adds the `evaluate` subcommand to `app`; its flags fill `o`. (lkaseg.cpp
// registers it through add_evaluate, commands.h.)
CLI::App* add_evaluate_subcommand(CLI::App& app, eval::EvaluateOptions& o);

}  // namespace lk::cli
