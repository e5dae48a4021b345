// The paper's networks on the CPU: structure and names (docs/MODELS.md),
// the loss, the LR schedule, checkpoints (bit-identical resume, refusal of
// damaged or foreign files) and an overfit test per network.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/toy_blobs.h"
#include "engine/checkpoint.h"
#include "engine/schedule.h"
#include "model/loss.h"
#include "model/networks.h"
#include "tests/harness.h"

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

std::map<std::string, Shape> shapes_of(const Module& m) {
  std::map<std::string, Shape> s;
  for (const auto& [n, t] : m.named_parameters()) s[n] = t.shape();
  for (const auto& [n, t] : m.named_buffers()) s[n] = t.shape();
  return s;
}

std::filesystem::path scratch(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / ("lkaseg_models_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("networks have the layers and names of docs/MODELS.md", "[model]") {
  const SegNet r(small(Arch::ResSELKAUNet));
  const auto s = shapes_of(r);
  const std::map<std::string, Shape> expect = {
      {"enc.0.res.conv1.weight", {8, 4, 3, 3}},  {"enc.0.res.skip_conv.weight", {8, 4, 1, 1}},
      {"enc.0.res.se.fc1.weight", {4, 8}},       {"enc.3.res.se.fc1.weight", {4, 64}},
      {"enc.0.res.se.fc2.bias", {8}},            {"enc.0.lka.dw5.weight", {8, 1, 5, 5}},
      {"enc.0.lka.dw7.weight", {8, 1, 7, 7}},    {"enc.0.lka.pw.weight", {8, 8, 1, 1}},
      {"enc.0.lka.bn.running_var", {8}},         {"ce.b1.weight", {64, 64, 1, 1}},
      {"ce.b2.weight", {64, 64, 3, 3}},          {"ce.b3.weight", {64, 64, 1, 1}},
      {"ce.bn.num_batches_tracked", {}},         {"dec.0.up.weight", {64, 32, 2, 2}},
      {"dec.0.up.bias", {32}},                   {"dec.0.conv1.weight", {32, 64, 3, 3}},
      {"dec.2.conv2.weight", {8, 8, 3, 3}},      {"head.weight", {4, 8, 1, 1}},
      {"aux.0.weight", {4, 16, 1, 1}},           {"aux.2.weight", {4, 64, 1, 1}},
  };
  for (const auto& [k, shape] : expect) {
    INFO(k);
    REQUIRE(s.count(k) == 1);
    CHECK(s.at(k) == shape);
  }
  CHECK(s.count("enc.1.res.conv1.bias") == 0);  // convs before BN have no bias
  CHECK(s.count("enc.0.lka.dw5.bias") == 1);

  const SegNet a(small(Arch::AttentionUNet));
  const auto sa = shapes_of(a);
  CHECK(sa.at("enc.3.conv2.weight") == Shape{64, 64, 3, 3});
  CHECK(sa.at("dec.0.att.w_g.weight") == Shape{16, 32, 1, 1});
  CHECK(sa.at("dec.0.att.psi.weight") == Shape{1, 16, 1, 1});
  CHECK(sa.at("dec.2.att.bn_psi.running_mean") == Shape{1});
  CHECK(sa.count("ce.b1.weight") == 0);
  const SegNet u(small(Arch::UNet));
  CHECK(shapes_of(u).count("dec.0.att.w_g.weight") == 0);
  CHECK(u.parameter_count() < a.parameter_count());
}

TEST_CASE("networks produce main and auxiliary logits at their scales", "[model]") {
  for (Arch arch : {Arch::ResSELKAUNet, Arch::UNet, Arch::AttentionUNet}) {
    INFO(arch_name(arch));
    const SegNet net(small(arch));
    const Tensor x = test::randn({2, 4, 32, 32}, 1, DType::F32);
    const auto out = net.forward(x);
    REQUIRE(out.size() == 4);
    CHECK(out[0].shape() == Shape{2, 4, 32, 32});
    CHECK(out[1].shape() == Shape{2, 4, 16, 16});
    CHECK(out[2].shape() == Shape{2, 4, 8, 8});
    CHECK(out[3].shape() == Shape{2, 4, 4, 4});
    for (const Tensor& t : out) CHECK(test::all_finite(t));
    CHECK_THROWS_WITH(net.forward(test::randn({1, 4, 20, 20}, 1, DType::F32)), Contains("divisible by 8"));
  }
  NetConfig no_ds = small(Arch::UNet);
  no_ds.deep_supervision = false;
  CHECK(SegNet(no_ds).forward(test::randn({1, 4, 16, 16}, 1, DType::F32)).size() == 1);
  NetConfig bad = small(Arch::UNet);
  bad.widths = {8, 16};
  CHECK_THROWS_WITH(SegNet(bad), Contains("deep supervision"));
  CHECK_THROWS_WITH(parse_arch("vnet"), Contains("vnet"));
}

TEST_CASE("the summary prints layers, parameters and training memory", "[model]") {
  const SegNet net(small(Arch::ResSELKAUNet));
  const std::string s = net.summary(2, 32);
  CHECK_THAT(s, Contains("enc.0") && Contains("[2, 8, 32, 32]") && Contains("ce ") && Contains("aux.2"));
  CHECK_THAT(s, Contains("total parameters: " + std::to_string(net.parameter_count())));
  CHECK_THAT(s, Contains("memory for forward+backward at batch 2"));
  for (const Tensor& p : net.parameters()) CHECK_FALSE(p.grad().defined());  // summary leaves no gradients
}

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

namespace {
double train_step(SegNet& net, AdamW& opt, const data::ToyBatch& b) {
  const auto terms = deep_supervision_loss(net.forward(b.images), b.labels);
  opt.zero_grad();
  backward(terms.total);
  opt.step();
  return terms.total.item();
}
}  // namespace

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
  saved.config = "{}";
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

TEST_CASE("each network overfits two 4x128x128 slices", "[train][model]") {
  const data::ToyBatch b = data::make_toy_batch(2, 128, 5, 0);
  for (Arch arch : {Arch::ResSELKAUNet, Arch::UNet, Arch::AttentionUNet}) {
    NetConfig c;
    c.arch = arch;
    c.widths = {8, 16, 32, 64, 128};
    SegNet net(c);
    AdamW opt(net.parameters(), {.lr = 3e-3});
    std::vector<double> losses;
    for (int s = 0; s < 40; ++s) losses.push_back(train_step(net, opt, b));
    INFO(arch_name(arch) << ": loss " << losses.front() << " -> " << losses.back());
    CHECK(losses.back() < 0.5 * losses.front());
  }
}
