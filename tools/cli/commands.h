// The subcommands of `lkaseg`, one file each under tools/cli/; lkaseg.cpp
// registers them all and runs the one that was parsed.
//
//   info        what this build can run on            info.cpp
//   demo        the main job on generated cases       demo.cpp
//   summary     a network's layers and memory         summary.cpp
//   init        a freshly initialised state_dict      init.cpp
//   synth       synthetic BraTS-like cases            synth.cpp
//   preprocess  the slice cache of a BraTS folder     preprocess.cpp
//   train       one fold of the paper's protocol      train.cpp
//   cv          every fold, summary, evaluation       cv.cpp
//   predict     NIfTI masks in the original geometry  predict.cpp
//   evaluate    Dice and HD95 against a BraTS folder  evaluate.cpp
//   figures     overlays and training curves          figures.cpp
#pragma once

#include <functional>
#include <string>

#include "engine/tensor.h"

namespace CLI {
class App;
}

namespace lk::cli {

// A registered subcommand: its CLI11 node and what runs when it was parsed
// (returns the process's exit code).
struct Subcommand {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Subcommand add_info(CLI::App& app);
Subcommand add_demo(CLI::App& app);
Subcommand add_summary(CLI::App& app);
Subcommand add_init(CLI::App& app);
Subcommand add_synth(CLI::App& app);
Subcommand add_preprocess(CLI::App& app);
Subcommand add_train(CLI::App& app);
Subcommand add_cv(CLI::App& app);
Subcommand add_predict(CLI::App& app);
Subcommand add_evaluate(CLI::App& app);
Subcommand add_figures(CLI::App& app);

// --device: cpu, cuda, cuda:N, or auto (the first usable GPU, else the CPU, saying why).
Device resolve_device(const std::string& want);
// --fast-nondeterministic (train, cv, demo): cuDNN may pick convolution
// algorithms that add with atomics (faster; results then differ between runs
// in the last bits and a resumed run is no longer bit-exact). No effect on
// the CPU or in a build without CUDA.
inline constexpr const char* kFastNondeterministicHelp =
    "let cuDNN use its fastest convolution algorithms, also non-deterministic ones (atomics): runs are then not "
    "bit-identical and resuming is not bit-exact";
void set_fast_nondeterministic(bool on);
// --tf32 (train, cv, demo): TF32 tensor-core math in cuDNN convolutions
// (faster on Ampere and later; off by default so results match PyTorch's
// float32). No effect on the CPU, under emulation or without CUDA.
inline constexpr const char* kTf32Help =
    "TF32 tensor-core math in cuDNN convolutions (faster on recent GPUs; results no longer match float32 exactly)";
void set_tf32(bool on);
// --cuda-graph on|off (train, cv, demo): on a GPU the training step is
// captured once as a CUDA Graph and replayed (engine/step_graph.h); a step
// that cannot be captured says why once and trains eagerly.
inline constexpr const char* kCudaGraphHelp =
    "on: capture the training step once as a CUDA Graph and replay it (GPU only; same results); off: every step eager";

// "lkaseg 0.1.0 (CUDA 13.0 | CPU only), C++20": `lkaseg --version`, `lkaseg info`.
std::string version_line();

}  // namespace lk::cli
