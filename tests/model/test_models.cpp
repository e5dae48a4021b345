// The paper's networks on the CPU: structure and names (docs/MODELS.md),
// the summary, and an overfit test per network (checkpoints and the LR
// schedule: tests/train/test_checkpoint.cpp).
#include <catch2/catch.hpp>
#include <map>

#include "engine/optim.h"
#include "model/loss.h"
#include "model/networks.h"
#include "tests/support/harness.h"
#include "tests/support/toy_blobs.h"

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
  CHECK_THAT(s, Contains("memory of a training step (+ AdamW's moments), float32: ") &&
                    Contains("with bf16/fp16 activations"));
  for (const Tensor& p : net.parameters()) CHECK_FALSE(p.grad().defined());  // summary leaves no gradients
}

namespace {
double train_step(SegNet& net, AdamW& opt, const data::Batch& b) {
  const auto terms = deep_supervision_loss(net.forward(b.images), b.labels);
  opt.zero_grad();
  backward(terms.total);
  opt.step();
  return terms.total.item();
}
}  // namespace

TEST_CASE("each network overfits two 4x128x128 slices", "[train][model]") {
  const data::Batch b = data::make_toy_batch(2, 128, 5, 0);
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
