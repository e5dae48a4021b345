// End-to-end: a small two-level U-Net (no deep supervision) trained with
// plain SGD on generated toy lesions must drive its loss (CE + adaptive
// Tversky) down by a clear margin and learn to segment a held-out batch.
#include <catch2/catch.hpp>

#include "tests/support/toy_blobs.h"
#include "engine/optim.h"
#include "model/networks.h"

using namespace lk;

TEST_CASE("SGD trains a small conv net on generated data", "[train]") {
  model::NetConfig cfg;
  cfg.arch = model::Arch::UNet;
  cfg.widths = {8, 16};
  cfg.deep_supervision = false;
  cfg.seed = 7;
  model::SegNet net(cfg);
  SGD opt(net.parameters(), 0.05, 0.9);
  const Tensor w = Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4});
  auto loss_of = [&](const data::Batch& b) {
    const Tensor logits = net.forward(b.images)[0];
    return add(cross_entropy(logits, b.labels, w), tversky_loss(softmax(logits), b.labels));
  };
  const data::Batch held = data::make_toy_batch(4, 32, 7, 999);
  double first = 0, last = 0;
  std::vector<double> losses;
  for (int step = 0; step < 60; ++step) {
    const Tensor loss = loss_of(data::make_toy_batch(4, 32, 7, step));
    losses.push_back(loss.item());
    opt.zero_grad();
    backward(loss);
    opt.step();
  }
  for (int i = 0; i < 5; ++i) first += losses[i] / 5, last += losses[losses.size() - 1 - i] / 5;
  INFO("mean loss of the first 5 steps " << first << ", of the last 5 " << last);
  CHECK(last < 0.6 * first);

  NoGradGuard ng;
  net.train(false);
  const Tensor logits = net.forward(held.images)[0];
  const double held_ce = cross_entropy(logits, held.labels, w).item();
  INFO("held-out CE " << held_ce);
  CHECK(held_ce < 0.5);
}
