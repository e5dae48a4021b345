// `lkaseg preprocess`: builds the slice cache of a BraTS folder (or checks
// and reuses a valid one) and prints its summary.
//
//   lkaseg preprocess --data DIR --cache FILE [--size 128] [--clip-lo 0.5]
//                     [--clip-hi 99.5] [--clahe [--clahe-clip 2] [--clahe-tiles 8]]
//                     [--threads N] [--skip-bad] [--force]
//
// Progress goes to stderr while building; the summary (cases, slices,
// skipped cases with their reason, seconds, bytes) to stdout.
// Hook-up in tools/cli/lkaseg.cpp: register with add_preprocess_subcommand(app,
// cmd) before app.parse, then `if (sub->parsed()) return run_preprocess(cmd);`.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace CLI {
class App;
}

namespace lk::cli {

struct PreprocessCommand {
  std::string data, cache;
  int64_t size = 128;
  double clip_lo = 0.5, clip_hi = 99.5;
  bool clahe = false;
  double clahe_clip = 2.0;
  int clahe_tiles = 8;
  int threads = 0;  // 0: all cores
  bool skip_bad = false, force = false;
  std::FILE* progress = stderr;  // tests silence it
};

// Adds the `preprocess` subcommand to `app`; its options fill `cmd`.
CLI::App* add_preprocess_subcommand(CLI::App& app, PreprocessCommand& cmd);

// Builds or reuses the cache, prints the summary; returns the exit code.
// Throws std::exception on bad options (naming the option), a bad case
// (naming its file) or an I/O error (naming the file).
int run_preprocess(const PreprocessCommand& cmd);

}  // namespace lk::cli
