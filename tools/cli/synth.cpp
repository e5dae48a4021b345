#include "tools/cli/synth.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "data/synth.h"
#include "tools/cli/commands.h"

namespace lk::cli {

using namespace lk::data;

CLI::App* add_synth_subcommand(CLI::App& app, SynthCommand& cmd) {
  CLI::App* s = app.add_subcommand("synth", "write a synthetic BraTS-like dataset (BraTS 2021 layout, .nii.gz)");
  s->add_option("--out", cmd.out, "output folder (created; existing cases are overwritten)")->required();
  s->add_option("--cases", cmd.cases, "number of cases")->check(CLI::Range(1, 100000))->capture_default_str();
  s->add_option("--seed", cmd.seed, "random seed: the same seed gives bit-identical files")->capture_default_str();
  s->add_option("--size", cmd.size, "volume size in voxels, X Y Z (BraTS: 240 240 155)")
      ->expected(3)
      ->check(CLI::Range(8, 1024))
      ->capture_default_str();
  s->add_option("--spacing", cmd.spacing, "voxel size in mm (isotropic)")
      ->check(CLI::Range(0.2, 5.0))
      ->capture_default_str();
  s->add_option("--gzip-level", cmd.gzip_level, "gzip level 1 (fast) .. 9 (small)")
      ->check(CLI::Range(1, 9))
      ->capture_default_str();
  s->add_option("--first-id", cmd.first_id, "number of the first case (BraTS2021_<id>)")
      ->check(CLI::Range(0, 99999))
      ->capture_default_str();
  return s;
}

int run_synth(const SynthCommand& cmd) {
  if (cmd.size.size() != 3) throw std::invalid_argument("--size takes three numbers: X Y Z");
  SynthOptions opt;
  opt.dims = {cmd.size[0], cmd.size[1], cmd.size[2]};
  opt.spacing = cmd.spacing;
  opt.gzip_level = cmd.gzip_level;
  opt.first_id = cmd.first_id;
  std::printf("synth: %d cases of %s voxels at %.3g mm, seed %llu, into %s\n", cmd.cases, dims_str(opt.dims).c_str(),
              opt.spacing, static_cast<unsigned long long>(cmd.seed), cmd.out.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<SynthCaseInfo> infos = generate_synthetic_dataset(cmd.out, cmd.cases, cmd.seed, opt);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const SynthCaseInfo& c : infos)
    std::printf("  %s  %-12s lesions %d  voxels NCR %lld  ED %lld  ET %lld\n", c.id.c_str(), synth_kind_name(c.kind),
                c.lesions, static_cast<long long>(c.voxels[1]), static_cast<long long>(c.voxels[2]),
                static_cast<long long>(c.voxels[4]));
  std::printf("synth: wrote %zu cases in %.2f s (%.3f s per case)\n", infos.size(), secs,
              secs / static_cast<double>(infos.size()));
  return 0;
}

Subcommand add_synth(CLI::App& app) {
  auto cmd = std::make_shared<SynthCommand>();
  CLI::App* sub = add_synth_subcommand(app, *cmd);
  return {sub, [cmd] { return run_synth(*cmd); }};
}

}  // namespace lk::cli
