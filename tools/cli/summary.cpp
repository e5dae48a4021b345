// lkaseg summary: a network's layers, output shapes, parameters and the
// memory a training step needs.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "model/networks.h"
#include "tools/cli/commands.h"
#include "tools/cli/run.h"

namespace lk::cli {

namespace {

struct SummaryOptions {
  std::string net = "resse_lka_unet";
  std::vector<int64_t> widths;
  int64_t batch = 8, size = 128;
};

int cmd_summary(const std::string& net, const std::vector<int64_t>& widths, int64_t batch, int64_t size) {
  model::NetConfig cfg;
  cfg.arch = model::parse_arch(net);
  if (!widths.empty()) cfg.widths = widths;
  check_network_memory(cfg, 2, "--widths");  // weights and gradients, before the activations
  const model::SegNet model(cfg);
  std::fputs(model.summary(batch, size).c_str(), stdout);
  return 0;
}

}  // namespace

Subcommand add_summary(CLI::App& app) {
  auto o = std::make_shared<SummaryOptions>();
  CLI::App* sm = app.add_subcommand("summary", "print a network's layers, output shapes, parameters and training memory");
  sm->add_option("--net", o->net, "resse_lka_unet, unet or attention_unet")
      ->check(CLI::IsMember({"resse_lka_unet", "unet", "attention_unet"}))
      ->capture_default_str();
  sm->add_option("--widths", o->widths, "channels per level (default: the paper's 32 64 128 256 512)")
      ->check(CLI::Range(1, 65536));
  sm->add_option("--batch", o->batch, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  sm->add_option("--size", o->size, "input side")->check(CLI::Range(8, 4096))->capture_default_str();
  return {sm, [o] { return cmd_summary(o->net, o->widths, o->batch, o->size); }};
}

}  // namespace lk::cli
