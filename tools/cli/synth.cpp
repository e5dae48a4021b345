#include "tools/cli/synth.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "data/synth.h"
#include "tools/cli/commands.h"
#include "tools/cli/output_guard.h"
#include "tools/cli/run.h"
#include "util/interrupt.h"

namespace lk::cli {

using namespace lk::data;

CLI::App* add_synth_subcommand(CLI::App& app, SynthCommand& cmd) {
  CLI::App* s = app.add_subcommand("synth", "write a synthetic BraTS-like dataset (BraTS 2021 layout, .nii.gz)");
  s->add_option("--out", cmd.out,
                "output folder (created; holding anything but earlier synth output needs --force, and only synth's "
                "own cases are ever replaced)")
      ->required();
  s->add_flag("--force", cmd.force, "write into a folder that holds other files (never over them)");
  s->add_option("--cases", cmd.cases, "number of cases")->check(CLI::Range(1, 100000))->capture_default_str();
  add_seed_option(s, cmd.seed, "random seed: the same seed gives bit-identical files");
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

namespace {

namespace fs = std::filesystem;

// A case folder of synth's: every file in it is one of synth's NIfTIs (an
// empty one too).
bool synth_case_folder(const fs::path& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (!is_temp_name(it->path().filename().string()) &&
        !(it->is_regular_file() && nifti_described(it->path().string(), kSynthDescription)))
      return false;
  return !ec;
}

bool synth_note(const fs::path& p) {
  std::ifstream in(p);
  std::string first;
  return std::getline(in, first) && first.rfind("lkaseg synthetic", 0) == 0;
}

}  // namespace

int run_synth(const SynthCommand& cmd) {
  if (cmd.size.size() != 3) throw std::invalid_argument("--size takes three numbers: X Y Z");
  // Real cases are never replaced: a folder holding anything but synth's own
  // output needs --force, and even then no case folder or note that synth
  // did not write is touched.
  check_output_folder(
      cmd.out,
      [](const fs::directory_entry& e) {
        const std::string n = e.path().filename().string();
        return n == "SYNTHETIC.txt" ? synth_note(e.path()) : e.is_directory() && synth_case_folder(e.path());
      },
      cmd.force, "--out folder");
  const fs::path note = fs::path(cmd.out) / "SYNTHETIC.txt";
  check_replaceable(note.string(), synth_note(note), "not synth's note");
  for (int i = 0; i < cmd.cases; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "BraTS2021_%05d", cmd.first_id + i);
    const fs::path c = fs::path(cmd.out) / id;
    if (fs::exists(c) && !(fs::is_directory(c) && synth_case_folder(c)))
      throw std::invalid_argument(c.string() + ": exists and was not written by lkaseg synth (a real case?); not "
                                  "overwriting it: use another --out, or --first-id past the existing ids");
  }
  SynthOptions opt;
  opt.dims = {cmd.size[0], cmd.size[1], cmd.size[2]};
  opt.spacing = cmd.spacing;
  opt.gzip_level = cmd.gzip_level;
  opt.first_id = cmd.first_id;
  std::printf("synth: %d cases of %s voxels at %.3g mm, seed %llu, into %s\n", cmd.cases, dims_str(opt.dims).c_str(),
              opt.spacing, static_cast<unsigned long long>(cmd.seed), cmd.out.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  const StopScope stoppable("the current case");
  const std::vector<SynthCaseInfo> infos = generate_synthetic_dataset(cmd.out, cmd.cases, cmd.seed, opt, &stop_flag());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const SynthCaseInfo& c : infos)
    std::printf("  %s  %-12s lesions %d  voxels NCR %lld  ED %lld  ET %lld\n", c.id.c_str(), synth_kind_name(c.kind),
                c.lesions, static_cast<long long>(c.voxels[1]), static_cast<long long>(c.voxels[2]),
                static_cast<long long>(c.voxels[4]));
  std::printf("synth: wrote %zu cases in %.2f s (%.3f s per case)\n", infos.size(), secs,
              secs / static_cast<double>(std::max<size_t>(infos.size(), 1)));
  if (static_cast<int>(infos.size()) < cmd.cases) {
    std::printf("synth: stopped after %zu of %d cases\n", infos.size(), cmd.cases);
    return 130;
  }
  return 0;
}

Subcommand add_synth(CLI::App& app) {
  auto cmd = std::make_shared<SynthCommand>();
  CLI::App* sub = add_synth_subcommand(app, *cmd);
  return {sub, [cmd] { return run_synth(*cmd); }};
}

}  // namespace lk::cli
