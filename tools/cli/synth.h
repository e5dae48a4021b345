// `lkaseg synth`: writes a synthetic BraTS-like dataset (data/synth.h).
//
//   lkaseg synth --out DIR [--cases N] [--seed S] [--size X Y Z]
//                [--spacing MM] [--gzip-level L] [--first-id I] [--force]
//
// A folder holding anything but synth's own output (SYNTHETIC.txt, case
// folders of synth's NIfTIs) is refused unless --force; a case folder or
// note that synth did not write is never replaced. Ctrl-C stops after the
// current case (exit 130); each case appears whole or not at all.
//
// Hook-up in tools/cli/lkaseg.cpp: register with add_synth_subcommand(app, cmd)
// before app.parse, then `if (sub->parsed()) return run_synth(cmd);`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace lk::cli {

struct SynthCommand {
  std::string out;
  int cases = 8;
  uint64_t seed = 42;
  std::vector<int64_t> size{160, 160, 96};
  double spacing = 1.0;
  int gzip_level = 1;
  int first_id = 0;
  bool force = false;  // write into a folder holding other files (never over them)
};

// Adds the `synth` subcommand to `app`; its options fill `cmd`.
CLI::App* add_synth_subcommand(CLI::App& app, SynthCommand& cmd);

// Writes the dataset, printing one line per case; returns the exit code.
// Throws std::exception on bad options or I/O errors.
int run_synth(const SynthCommand& cmd);

}  // namespace lk::cli
