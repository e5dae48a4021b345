// Prediction (train/predict.h) on the CUDA backend: the forward passes and
// the softmax run on the device, batched across slices and views, and give
// the CPU device's probabilities; mirrored views stay exactly symmetric on a
// symmetric input there too. Compiled twice (CMakeLists.txt beside): label
// emu against the emulated backend, label gpu against a real device
// (skipped without one).
#include <catch2/catch.hpp>

#include <random>

#include "tests/engine/cuda/cuda_device.h"
#include "train/predict.h"

using namespace lk;

TEST_CASE("cuda predict: an ensemble with mirrored views gives the CPU's probabilities", "[predict]") {
  if (!test::have_device()) return;
  model::NetConfig nc;
  nc.widths = {4, 8};
  nc.deep_supervision = false;
  model::SegNet a(nc), da(nc);
  nc.seed = 3;
  model::SegNet b(nc), db(nc);
  da.to_device(test::kCuda);
  db.to_device(test::kCuda);
  const int64_t n = 3, S = 8;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n * 4 * S * S));
  for (float& v : x) v = nd(rng);
  // Symmetric in x (columns): probabilities must be too.
  for (int64_t p = 0; p < n * 4 * S; ++p)
    for (int64_t c = 0; c < S / 2; ++c) x[static_cast<size_t>(p * S + S - 1 - c)] = x[static_cast<size_t>(p * S + c)];
  train::PredictOptions o;
  o.batch = 4;  // 2 slices x 2 views per pass
  o.mirror_axes = 1;
  const std::vector<float> cpu = train::predict_probabilities({&a, &b}, x.data(), n, S, o);
  o.device = test::kCuda;
  const std::vector<float> gpu = train::predict_probabilities({&da, &db}, x.data(), n, S, o);
  REQUIRE(gpu.size() == cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) REQUIRE(gpu[i] == Approx(cpu[i]).margin(1e-4));
  for (int64_t row = 0; row < static_cast<int64_t>(gpu.size()) / S; ++row)
    for (int64_t c = 0; c < S; ++c)
      REQUIRE(gpu[static_cast<size_t>(row * S + c)] == gpu[static_cast<size_t>(row * S + S - 1 - c)]);
}
