#include "tools/cli/preprocess.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "data/slice_cache.h"
#include "tools/cli/commands.h"
#include "tools/cli/output_guard.h"

namespace lk::cli {

using namespace lk::data;

CLI::App* add_preprocess_subcommand(CLI::App& app, PreprocessCommand& cmd) {
  CLI::App* s = app.add_subcommand(
      "preprocess", "build the slice cache of a BraTS folder (or check and reuse a valid one) and print its summary");
  s->add_option("--data", cmd.data, "folder of BraTS case folders")->required()->check(CLI::ExistingDirectory);
  s->add_option("--cache", cmd.cache, "the slice cache file (written atomically; its folder must exist)")->required();
  s->add_option("--size", cmd.size, "slice side in pixels (the cache's size is checked against the free space first)")
      ->check(CLI::Range(4, 4096))
      ->capture_default_str();
  s->add_option("--clip-lo", cmd.clip_lo, "lower intensity percentile")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  s->add_option("--clip-hi", cmd.clip_hi, "upper intensity percentile")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  s->add_flag("--clahe", cmd.clahe, "CLAHE on every slice and modality after normalisation (SPEC.md: optional)");
  s->add_option("--clahe-clip", cmd.clahe_clip, "CLAHE clip limit")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  s->add_option("--clahe-tiles", cmd.clahe_tiles, "CLAHE tiles per side (at most --size)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  s->add_option("--threads", cmd.threads, "worker threads loading and preprocessing cases (0: all cores)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  s->add_flag("--skip-bad", cmd.skip_bad, "skip bad cases (listed in the summary) instead of failing");
  s->add_flag("--force", cmd.force, "rebuild even when the cache is valid");
  return s;
}

int run_preprocess(const PreprocessCommand& cmd) {
  namespace fs = std::filesystem;
  if (!(cmd.clip_lo < cmd.clip_hi))
    throw std::invalid_argument("--clip-lo (" + std::to_string(cmd.clip_lo) + ") must be below --clip-hi (" +
                                std::to_string(cmd.clip_hi) + ")");
  if (!fs::is_directory(cmd.data)) throw std::invalid_argument(cmd.data + ": --data is not a folder");
  const fs::path parent = fs::path(cmd.cache).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    throw std::invalid_argument(cmd.cache + ": --cache's folder " + parent.string() + " does not exist");
  if (fs::is_directory(cmd.cache)) throw std::invalid_argument(cmd.cache + ": --cache is a folder, not a file");
  check_replaceable(cmd.cache, is_slice_cache_file(cmd.cache), "not a slice cache");
  // What an interrupted build left (a Ctrl-C removes its own; a kill cannot).
  clean_stale_temps(parent.empty() ? "." : parent.string());
  PreprocessOptions o;
  o.size = cmd.size;
  o.clip_lo = cmd.clip_lo;
  o.clip_hi = cmd.clip_hi;
  o.clahe = cmd.clahe;
  o.clahe_clip = cmd.clahe_clip;
  o.clahe_tiles = cmd.clahe_tiles;
  if (o.clahe && o.clahe_tiles > o.size)
    throw std::invalid_argument("--clahe-tiles (" + std::to_string(o.clahe_tiles) + ") must not exceed --size (" +
                                std::to_string(o.size) + ")");
  CacheBuildOptions b;
  b.threads = cmd.threads;
  b.skip_bad = cmd.skip_bad;
  b.force = cmd.force;
  b.progress = cmd.progress;
  CacheBuildSummary s;
  const SliceCache sc = ensure_slice_cache(cmd.cache, cmd.data, o, b, &s);
  if (s.built) std::printf("built %s (%s)\n", cmd.cache.c_str(), s.reason.c_str());
  for (const std::string& line : format_cache_summary(s)) std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  return 0;
}

Subcommand add_preprocess(CLI::App& app) {
  auto cmd = std::make_shared<PreprocessCommand>();
  CLI::App* sub = add_preprocess_subcommand(app, *cmd);
  return {sub, [cmd] { return run_preprocess(*cmd); }};
}

}  // namespace lk::cli
