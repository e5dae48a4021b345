// lkaseg train: one fold of the paper's protocol into RUN/fold_<k>/
// (resumable; data-parallel under mpirun / srun; tools/cli/run.h).
#include <CLI/CLI.hpp>

#include <memory>

#include "tools/cli/commands.h"
#include "tools/cli/run.h"

namespace lk::cli {

Subcommand add_train(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* t = app.add_subcommand("train", "train one fold with the paper's protocol (resumable)");
  add_run_options(t, *o, true);
  return {t, [o] {
            return run_on_ranks(*o, [&](Ranks& r) {
              check_precision(*o, r.device);
              const Prepared p = prepare_all(*o, r);
              install_stop_handlers();
              return train_folds(*o, p, false, r.device, r.comm.get());
            });
          }};
}

}  // namespace lk::cli
