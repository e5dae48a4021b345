// lkaseg: the command line. This file only registers and dispatches; each
// subcommand is a file of its own (tools/cli/commands.h):
//   info   what this build can run on (backends, threads, CUDA devices)
//   demo     generates synthetic BraTS-like cases (or reads --data), preprocesses
//            them to 128x128 slices, trains a network (ResSE-LKA-UNet by
//            default) with the paper's loss from the background loader, and
//            reports Dice, then Dice/HD95 in the original grid
//   summary  a network's layers, output shapes, parameters, training memory
//   init     writes a freshly initialised network's state_dict
//   synth    writes synthetic BraTS-like cases (.nii.gz, BraTS 2021 layout)
//   preprocess  builds (or checks and reuses) the slice cache of a BraTS folder
//   evaluate  Dice and HD95 of predicted label maps against a BraTS folder (Table 3 layout)
//   train, cv, predict  the paper's protocol
//   figures  FLAIR with ground-truth and prediction overlays, training curves
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "tools/cli/commands.h"
#include "tools/cli/run.h"

int main(int argc, char** argv) {
  // libgomp's default spin-waiting burns the cores our own threads (and any
  // other process) need between parallel regions: measured 4.7x slower
  // training steps on a loaded 2-core machine. The policy is read when the
  // runtime loads, so set it and re-execute once; an explicit setting wins.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
  }
  lk::cli::g_argv.assign(argv, argv + argc);  // cv --parallel-folds starts children with the same options
  CLI::App app{"lkaseg: ResSE-LKA-UNet brain-tumour segmentation engine and trainer"};
  app.require_subcommand(1);
  using namespace lk::cli;
  const std::vector<Subcommand> subs = {add_info(app),     add_demo(app),  add_summary(app), add_init(app),
                                        add_synth(app),    add_preprocess(app), add_train(app), add_cv(app),
                                        add_predict(app),  add_evaluate(app),   add_figures(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (const Subcommand& s : subs)
      if (s.app->parsed()) return s.run();
    return 2;  // unreachable: require_subcommand(1)
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lkaseg: error: %s\n", e.what());
    return 1;
  }
}
