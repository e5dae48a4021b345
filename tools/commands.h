// The training-protocol subcommands of `lkaseg` (tools/cmd_train.cpp):
//
//   lkaseg train   --data DIR --out RUN [--fold K] [options]   one fold
//   lkaseg cv      --data DIR --out RUN [options]              every fold + summary
//   lkaseg predict --model FILE --data DIR --out DIR           NIfTI masks
//
// A run folder RUN holds split.json (the case selection and folds: written
// once, honoured when edited), slices.lkcache (the selected cases only),
// fold_<k>/ (model/trainer.h: config.json, last/best checkpoints, log.jsonl)
// and, after cv, cv_summary.json. Every command resumes: a finished fold is
// skipped, an interrupted one (Ctrl-C, SIGTERM: the current step finishes
// and last.safetensors is written; exit 130) goes on from its last step.
#pragma once

#include <string>

#include "data/brats_cases.h"
#include "data/preprocess.h"
#include "engine/tensor.h"
#include "model/networks.h"

namespace CLI {
class App;
}

namespace lk::tools {

// --device: cpu, cuda, cuda:N, or auto (the first usable GPU, else the CPU, saying why).
Device resolve_device(const std::string& want);

// One case: load, preprocess with `po` (as in training), predict slice by
// slice, map back to the original grid, write <out_dir>/<id>.nii.gz (BraTS
// labels in the case's naming).
void predict_case_file(model::SegNet& net, const data::PreprocessOptions& po, const data::BratsCase& bc,
                       const std::string& out_dir, int64_t batch, Device dev);

struct TrainCommands {
  CLI::App* train = nullptr;
  CLI::App* cv = nullptr;
  CLI::App* predict = nullptr;
};
// Registers train, cv and predict; run_train_commands runs the parsed one
// (returns -1 when none was).
TrainCommands add_train_commands(CLI::App& app);
int run_train_commands(const TrainCommands& t);

}  // namespace lk::tools
