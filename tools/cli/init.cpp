// lkaseg init: a freshly initialised network's state_dict (safetensors) that
// a PyTorch user can load_state_dict.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "engine/state_dict.h"
#include "model/networks.h"
#include "tools/cli/commands.h"
#include "tools/cli/output_guard.h"
#include "tools/cli/run.h"

namespace lk::cli {

namespace {

struct InitOptions {
  std::string net = "resse_lka_unet", out;
  std::vector<int64_t> widths;
  uint64_t seed = 42;
};

int cmd_init(const std::string& net, const std::vector<int64_t>& widths, uint64_t seed, const std::string& out) {
  check_parent_exists(out, "--out");
  check_replaceable(out, is_lkaseg_safetensors(out), "not a safetensors file written by lkaseg");
  model::NetConfig cfg;
  cfg.arch = model::parse_arch(net);
  if (!widths.empty()) cfg.widths = widths;
  cfg.seed = seed;
  check_network_memory(cfg, 1, "--widths");
  const model::SegNet m(cfg);
  save_state_dict(out, m, {{"format", "lkaseg-weights-1"}});
  std::printf("wrote %s: %s, %lld parameters\n", out.c_str(), net.c_str(), static_cast<long long>(m.parameter_count()));
  return 0;
}

}  // namespace

Subcommand add_init(CLI::App& app) {
  auto o = std::make_shared<InitOptions>();
  CLI::App* in = app.add_subcommand("init", "write a freshly initialised network's state_dict (safetensors)");
  in->add_option("--net", o->net, "resse_lka_unet, unet or attention_unet")
      ->check(CLI::IsMember({"resse_lka_unet", "unet", "attention_unet"}))
      ->capture_default_str();
  in->add_option("--widths", o->widths, "channels per level (default: the paper's 32 64 128 256 512)")
      ->check(CLI::Range(1, 65536));
  add_seed_option(in, o->seed, "initialisation seed");
  in->add_option("--out", o->out, "output .safetensors")->required();
  return {in, [o] { return cmd_init(o->net, o->widths, o->seed, o->out); }};
}

}  // namespace lk::cli
