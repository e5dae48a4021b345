// Training checkpoints (train/checkpoint.h) and the LR schedule
// (train/schedule.h): a checkpoint resumes bit-identically, and damaged,
// foreign or mismatched files are refused by name.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "engine/optim.h"
#include "model/loss.h"
#include "model/networks.h"
#include "tests/support/harness.h"
#include "tests/support/toy_blobs.h"
#include "train/checkpoint.h"
#include "train/schedule.h"

using namespace lk;
using namespace lk::model;
using Catch::Matchers::Contains;

namespace {

NetConfig small(Arch a) {
  NetConfig c;
  c.arch = a;
  c.widths = {8, 16, 32, 64};
  c.seed = 3;
  return c;
}

std::filesystem::path scratch(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / ("lkaseg_checkpoint_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

double train_step(SegNet& net, AdamW& opt, const data::Batch& b) {
  const auto terms = deep_supervision_loss(net.forward(b.images), b.labels);
  opt.zero_grad();
  backward(terms.total);
  opt.step();
  return terms.total.item();
}
}  // namespace

TEST_CASE("the LR schedule warms up per step, then decays per epoch", "[train]") {
  LrSchedule s{.base_lr = 1e-4, .warmup_epochs = 5, .start_factor = 0.1, .decay = 0.95, .steps_per_epoch = 10};
  CHECK(s.lr_at(0) == Approx(1e-5));
  CHECK(s.lr_at(25) == Approx(1e-4 * (0.1 + 0.9 * 0.5)));
  CHECK(s.lr_at(49) == Approx(1e-4 * (0.1 + 0.9 * 49.0 / 50)));
  CHECK(s.lr_at(50) == Approx(1e-4));
  CHECK(s.lr_at(59) == Approx(1e-4));
  CHECK(s.lr_at(60) == Approx(0.95e-4));
  CHECK(s.lr_at(10 * 49) == Approx(1e-4 * std::pow(0.95, 44)));
}

TEST_CASE("a checkpoint saved mid-run resumes with bit-identical losses", "[train][io]") {
  const auto dir = scratch("resume");
  const std::string path = (dir / "ckpt.safetensors").string();
  auto batch = [](int step) { return data::make_toy_batch(2, 32, 11, static_cast<uint64_t>(step)); };

  SegNet net(small(Arch::ResSELKAUNet));
  AdamW opt(net.parameters(), {.lr = 1e-3});
  for (int s = 0; s < 3; ++s) train_step(net, opt, batch(s));
  TrainState saved;
  saved.step = 3;
  saved.epoch = 1;
  saved.lr = 1e-3;
  saved.schedule = {.base_lr = 1e-3, .warmup_epochs = 2, .start_factor = 0.25, .decay = 0.9, .steps_per_epoch = 3};
  saved.rng = "rng-state";
  saved.config = std::string("{}");
  save_checkpoint(path, net, opt, saved);
  std::vector<double> first;
  for (int s = 3; s < 6; ++s) first.push_back(train_step(net, opt, batch(s)));

  NetConfig other = small(Arch::ResSELKAUNet);
  other.seed = 99;  // different initial weights: everything must come from the file
  SegNet net2(other);
  AdamW opt2(net2.parameters(), {.lr = 0.5});
  const TrainState st = load_checkpoint(path, net2, opt2);
  CHECK(st.step == 3);
  CHECK(st.epoch == 1);
  CHECK(st.rng == "rng-state");
  CHECK(st.schedule.lr_at(4) == saved.schedule.lr_at(4));
  CHECK(st.schedule.steps_per_epoch == 3);
  CHECK(st.schedule.start_factor == 0.25);
  CHECK(opt2.steps() == 3);
  CHECK(opt2.lr() == 1e-3);
  std::vector<double> second;
  for (int s = 3; s < 6; ++s) second.push_back(train_step(net2, opt2, batch(s)));
  CHECK(first == second);  // bitwise
  std::filesystem::remove_all(dir);
}

TEST_CASE("damaged, foreign or mismatched checkpoints are refused by name", "[io]") {
  const auto dir = scratch("refuse");
  const std::string path = (dir / "w.safetensors").string();
  SegNet net(small(Arch::UNet));
  AdamW opt(net.parameters(), {});
  TrainState seven;
  seven.step = 7;
  save_checkpoint(path, net, opt, seven);

  // wrong network
  SegNet other(small(Arch::ResSELKAUNet));
  CHECK_THROWS_WITH(load_state_dict(path, other), Contains(path) && Contains("missing") && Contains("unexpected"));
  // same network, other widths
  NetConfig wide = small(Arch::UNet);
  wide.widths = {8, 16, 32, 128};
  SegNet wider(wide);
  CHECK_THROWS_WITH(load_state_dict(path, wider), Contains("shape"));
  // truncated weights
  const auto size = std::filesystem::file_size(path);
  std::filesystem::copy_file(path, dir / "t.safetensors");
  std::filesystem::resize_file(dir / "t.safetensors", size / 2);
  CHECK_THROWS_WITH(load_state_dict((dir / "t.safetensors").string(), net), Contains("t.safetensors"));
  // a foreign file in place of the training state
  std::filesystem::copy_file(path, dir / "f.safetensors");
  std::filesystem::copy_file(path, dir / "f.safetensors.state");
  CHECK_THROWS_WITH(load_checkpoint((dir / "f.safetensors").string(), net, opt), Contains("not an lkaseg training state"));
  // weights and state from different steps
  save_state_dict(path, net, {{"step", "8"}});
  CHECK_THROWS_WITH(load_checkpoint(path, net, opt), Contains("different steps"));
  std::filesystem::remove_all(dir);
}
