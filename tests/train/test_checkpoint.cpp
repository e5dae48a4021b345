// Training checkpoints (train/checkpoint.h) and the LR schedule
// (train/schedule.h): a checkpoint resumes bit-identically, and damaged,
// foreign or mismatched files are refused by name; generations: a kill at
// any stage of a save, a full disk half way or a second Ctrl-C never leave
// the folder without a complete generation.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "engine/optim.h"
#include "model/loss.h"
#include "model/networks.h"
#include "tests/support/file_size_limit.h"
#include "tests/support/child_process.h"
#include "tests/support/harness.h"
#include "tests/support/toy_blobs.h"
#include "train/checkpoint.h"
#include "train/schedule.h"
#include "util/interrupt.h"

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

namespace {

// A checkpoint generation of `net` at `step` (AdamW moments from one step).
TrainState state_at(int64_t step) {
  TrainState st;
  st.step = step;
  st.epoch = step / 3;
  st.lr = 1e-3;
  st.schedule = {.base_lr = 1e-3, .warmup_epochs = 1, .start_factor = 0.1, .decay = 0.9, .steps_per_epoch = 3};
  return st;
}

}  // namespace

TEST_CASE("checkpoint generations: the newest complete one is kept and loaded", "[train][io]") {
  const auto dir = scratch("generations");
  SegNet net(small(Arch::UNet));
  AdamW opt(net.parameters(), {.lr = 1e-3});
  const Checkpoints ck(dir.string());
  CHECK_FALSE(ck.load_newest(net, opt).has_value());  // an empty folder: a fresh run
  ck.save(net, opt, state_at(3));
  train_step(net, opt, data::make_toy_batch(2, 32, 11, 1));
  ck.save(net, opt, state_at(6), {{"lkaseg.note", "x"}});
  CHECK(ck.generations() == std::vector<int64_t>{6});  // the older one went once the new one was complete
  CHECK(std::filesystem::exists(ck.manifest_path()));
  // The weights file is a plain state_dict with the caller's metadata.
  SegNet plain(small(Arch::UNet));
  CHECK(load_state_dict(ck.weights_path(6), plain).at("lkaseg.note") == "x");
  SegNet net2(small(Arch::UNet));
  AdamW opt2(net2.parameters(), {});
  const auto st = ck.load_newest(net2, opt2);
  REQUIRE(st.has_value());
  CHECK(st->step == 6);
  CHECK(opt2.steps() == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("checkpoint generations: a kill at any stage of a save leaves a complete generation", "[train][io]") {
  using Stage = Checkpoints::Stage;
  for (const Stage kill_at : {Stage::Weights, Stage::State, Stage::Manifest, Stage::Cleanup}) {
    const auto dir = scratch("kill_" + std::to_string(static_cast<int>(kill_at)));
    SegNet net(small(Arch::UNet));
    AdamW opt(net.parameters(), {.lr = 1e-3});
    const Checkpoints ck(dir.string());
    ck.save(net, opt, state_at(3));
    train_step(net, opt, data::make_toy_batch(2, 32, 11, 1));
    const int how = test::run_child([&] {
      ck.save(net, opt, state_at(6), {}, [&](Stage s) {
        if (s == kill_at) ::raise(SIGKILL);
      });
    });
    INFO("killed after stage " << static_cast<int>(kill_at));
    CHECK(how == SIGKILL);
    // After the weights only: generation 3; from the state file on: 6.
    SegNet net2(small(Arch::UNet));
    AdamW opt2(net2.parameters(), {});
    std::vector<std::string> notes;
    const auto st = ck.load_newest(net2, opt2, [&](const std::string& n) { notes.push_back(n); });
    REQUIRE(st.has_value());
    CHECK(st->step == (kill_at == Stage::Weights ? 3 : 6));
    CHECK(notes.empty());
    // The manifest names the generation kept (after a kill between the
    // state file and the manifest it named generation 3, whose files go).
    ck.adopt(*st);
    CHECK(ck.generations() == std::vector<int64_t>{st->step});
    {
      std::ifstream m(ck.manifest_path());
      const std::string text((std::istreambuf_iterator<char>(m)), std::istreambuf_iterator<char>());
      CHECK_THAT(text, Catch::Contains(std::filesystem::path(ck.weights_path(st->step)).filename().string()));
    }
    for (const auto& e : std::filesystem::directory_iterator(dir))
      CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("checkpoint generations: a full disk in the middle of a save keeps the previous one", "[train][io]") {
  const auto dir = scratch("full");
  SegNet net(small(Arch::UNet));
  AdamW opt(net.parameters(), {.lr = 1e-3});
  const Checkpoints ck(dir.string());
  ck.save(net, opt, state_at(3));
  const auto weights = std::filesystem::file_size(ck.weights_path(3));
  const auto state = std::filesystem::file_size(ck.weights_path(3) + ".state");
  REQUIRE(state > weights + 4096);
  {
    // The weights file fits, the state file does not: the save fails half way.
    const test::FileSizeLimit full(weights + 2048);
    CHECK_THROWS_WITH(ck.save(net, opt, state_at(6)),
                      Contains(ck.weights_path(6) + ".state") && Contains(std::strerror(EFBIG)));
  }
  SegNet net2(small(Arch::UNet));
  AdamW opt2(net2.parameters(), {});
  const auto st = ck.load_newest(net2, opt2);
  REQUIRE(st.has_value());
  CHECK(st->step == 3);  // not 0, not a half-written 6
  CHECK(ck.remove_others(3) == std::vector<std::string>{ck.weights_path(6)});
  std::filesystem::remove_all(dir);
}

TEST_CASE("checkpoint generations: a pair from two saves is passed over, and unreadable ones are refused",
          "[train][io]") {
  const auto dir = scratch("mixed"), b = scratch("mixed_b"), c = scratch("mixed_c");
  SegNet net(small(Arch::UNet));
  AdamW opt(net.parameters(), {.lr = 1e-3});
  Checkpoints(dir.string()).save(net, opt, state_at(3));
  Checkpoints(b.string()).save(net, opt, state_at(6));
  Checkpoints(c.string()).save(net, opt, state_at(6));
  const Checkpoints ck(dir.string());
  std::filesystem::copy_file(Checkpoints(b.string()).weights_path(6), ck.weights_path(6));
  std::filesystem::copy_file(Checkpoints(c.string()).weights_path(6) + ".state", ck.weights_path(6) + ".state");
  std::vector<std::string> notes;
  const auto st = ck.load_newest(net, opt, [&](const std::string& n) { notes.push_back(n); });
  REQUIRE(st.has_value());
  CHECK(st->step == 3);
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Contains(ck.weights_path(6)) && Contains("different saves"));
  // Nothing loadable at all: an error with the way out, not a silent restart.
  std::filesystem::resize_file(ck.weights_path(3) + ".state", 100);
  CHECK_THROWS_WITH(ck.load_newest(net, opt), Contains("no checkpoint there can be loaded") && Contains("start this fold over"));
  for (const auto& d : {dir, b, c}) std::filesystem::remove_all(d);
}

TEST_CASE("checkpoint generations: a second Ctrl-C during a save waits for it to complete", "[train][io]") {
  const auto dir = scratch("double_sigint");
  SegNet net(small(Arch::UNet));
  AdamW opt(net.parameters(), {.lr = 1e-3});
  const Checkpoints ck(dir.string());
  ck.save(net, opt, state_at(3));
  const int how = test::run_child([&] {
    install_interrupt_handlers();
    const StopScope stoppable;
    ::raise(SIGINT);  // the first: a stop request
    if (!stop_requested()) ::_exit(2);
    ck.save(net, opt, state_at(6), {}, [](Checkpoints::Stage s) {
      if (s == Checkpoints::Stage::Weights) ::raise(SIGINT);  // the second, half way through the save
    });
    ::_exit(3);  // not reached: the deferred exit happens as the save ends
  });
  CHECK(how == 1000 + 130);
  SegNet net2(small(Arch::UNet));
  AdamW opt2(net2.parameters(), {});
  const auto st = ck.load_newest(net2, opt2);
  REQUIRE(st.has_value());
  CHECK(st->step == 6);
  CHECK(ck.generations() == std::vector<int64_t>{6});
  std::filesystem::remove_all(dir);
}

TEST_CASE("checkpoints holding NaN are refused", "[train][io]") {
  const auto dir = scratch("nan");
  SegNet net(small(Arch::UNet));
  AdamW opt(net.parameters(), {.lr = 1e-3});
  auto params = net.named_parameters();
  params[2].second.data<float>()[5] = std::nanf("");
  const Checkpoints ck(dir.string());
  ck.save(net, opt, state_at(3));
  CHECK_THROWS_WITH(ck.load_newest(net, opt), Contains("'" + params[2].first + "' holds 1 non-finite value"));
  CHECK(nonfinite_tensor(net.named_parameters()) != "");
  std::filesystem::remove_all(dir);
}
