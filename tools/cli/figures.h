// `lkaseg figures`: the paper's qualitative figures (Figs. 8-9) and training
// curves, as PNG files. This file parses the flags; eval/figures.h does the
// work and documents the files, eval/overlay.h the drawing conventions.
//
//   lkaseg figures --data DIR [--pred DIR ...] [--names A B ...] [--cases ID ...]
//                  [--slice Z] [--no-coronal] [--zoom N] [--alpha A]
//                  [--pred-labels auto|brats2021|brats2023|msd] --out DIR
//   lkaseg figures --run RUN --out DIR
// (both at once are fine).
#pragma once

#include "eval/figures.h"

namespace CLI {
class App;
}

namespace lk::cli {

// Adds the `figures` subcommand to `app`; its flags fill `o`. (lkaseg.cpp
// registers it through add_figures, commands.h.)
CLI::App* add_figures_subcommand(CLI::App& app, eval::FiguresOptions& o);

}  // namespace lk::cli
