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

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "tools/cli/commands.h"
#include "tools/cli/run.h"
#include "util/interrupt.h"

namespace {

// Levenshtein distance, for "did you mean".
size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// "lkaseg: unknown subcommand 'trian' (did you mean 'train'?); ..." or "".
std::string unknown_subcommand(const CLI::App& app, const std::string& word) {
  std::string names, best;
  size_t best_d = 3;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (s->get_name() == word) return "";
    names += (names.empty() ? "" : ", ") + s->get_name();
    if (const size_t d = distance(word, s->get_name()); d < best_d) best_d = d, best = s->get_name();
  }
  return "lkaseg: unknown subcommand '" + word + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)") +
         "; the subcommands are " + names + " (lkaseg --help)";
}

}  // namespace

int main(int argc, char** argv) {
  // libgomp's default spin-waiting burns the cores our own threads (and any
  // other process) need between parallel regions: measured 4.7x slower
  // training steps on a loaded 2-core machine. The policy is read when the
  // runtime loads, so set it and re-execute once; an explicit setting wins.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
  }
  // Ctrl-C and SIGTERM for every command (util/interrupt.h): temporary
  // files are removed, training stops after its step with a checkpoint.
  lk::install_interrupt_handlers();
  lk::cli::g_argv.assign(argv, argv + argc);  // cv --parallel-folds starts children with the same options
  CLI::App app{"lkaseg: ResSE-LKA-UNet brain-tumour segmentation engine and trainer"};
  app.require_subcommand(1);
  app.set_version_flag("--version", lk::cli::version_line());
  using namespace lk::cli;
  const std::vector<Subcommand> subs = {add_info(app),     add_demo(app),  add_summary(app), add_init(app),
                                        add_synth(app),    add_preprocess(app), add_train(app), add_cv(app),
                                        add_predict(app),  add_evaluate(app),   add_figures(app)};
  if (argc > 1 && argv[1][0] != '-')
    if (const std::string msg = unknown_subcommand(app, argv[1]); !msg.empty()) {
      std::fprintf(stderr, "%s\n", msg.c_str());
      return 2;
    }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ArgumentMismatch& e) {
    // A flag given twice: "--epochs: At Most 1 required but received 2".
    const std::string w = e.what();
    const size_t at = w.find(": At Most 1 required but received ");
    if (at == std::string::npos) return app.exit(e);
    std::fprintf(stderr, "lkaseg: %s was given %s times; give it once\n", w.substr(0, at).c_str(),
                 w.substr(at + 34).c_str());
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (const Subcommand& s : subs)
      if (s.app->parsed()) return s.run();
    return 2;  // unreachable: require_subcommand(1)
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lkaseg: error: out of memory (a buffer could not be allocated); use smaller sizes "
                         "(--batch, --size, --widths) or free memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lkaseg: error: %s\n", e.what());
    return 1;
  }
}
