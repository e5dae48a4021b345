// Prediction (train/predict.h): an ensemble's probabilities are the mean of
// its models', mirrored views are exact on symmetric inputs and equal the
// hand-made average otherwise, every checkpoint a run writes loads (best,
// the newest generation through last.json or its weights, a fold folder,
// weights of older runs without metadata, cv's selection), and a case
// predicted end to end
// writes its labels and probability maps in the documented layout.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "data/nifti_read.h"
#include "engine/state_dict.h"
#include "tests/support/layouts.h"
#include "tests/support/loader_fixture.h"
#include "tests/support/nifti_craft.h"
#include "train/predict.h"

using namespace lk;
using namespace lk::train;
namespace fs = std::filesystem;

namespace {

model::NetConfig tiny_net(uint64_t seed) {
  model::NetConfig c;
  c.widths = {4, 8, 16};
  c.deep_supervision = false;
  c.seed = seed;
  return c;
}

std::vector<float> random_slices(int64_t n, int64_t side, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n * 4 * side * side));
  for (float& x : v) x = nd(rng);
  return v;
}

// Mirrors (n, C, S, S) slices along x (bit 0) and/or y (bit 1).
std::vector<float> mirror(const std::vector<float>& v, int64_t side, unsigned axes) {
  std::vector<float> out(v.size());
  const int64_t px = side * side;
  for (size_t plane = 0; plane < v.size() / static_cast<size_t>(px); ++plane)
    for (int64_t y = 0; y < side; ++y)
      for (int64_t x = 0; x < side; ++x)
        out[plane * px + y * side + x] =
            v[plane * px + ((axes & 2) ? side - 1 - y : y) * side + ((axes & 1) ? side - 1 - x : x)];
  return out;
}

PredictOptions opts(int64_t batch, unsigned axes = 0) {
  PredictOptions o;
  o.batch = batch;
  o.mirror_axes = axes;
  return o;
}

}  // namespace

TEST_CASE("predict: an ensemble's probabilities are the mean of its models' probabilities", "[predict]") {
  model::SegNet a(tiny_net(1)), b(tiny_net(2)), c(tiny_net(3));
  const int64_t n = 5, S = 16, K = 4;
  const std::vector<float> x = random_slices(n, S, 11);
  for (unsigned axes : {0u, 1u}) {
    INFO("mirror axes " << axes);
    const auto pa = predict_probabilities({&a}, x.data(), n, S, opts(3, axes));
    const auto pb = predict_probabilities({&b}, x.data(), n, S, opts(3, axes));
    const auto pc = predict_probabilities({&c}, x.data(), n, S, opts(3, axes));
    const auto pab = predict_probabilities({&a, &b}, x.data(), n, S, opts(3, axes));
    const auto pabc = predict_probabilities({&a, &b, &c}, x.data(), n, S, opts(3, axes));
    REQUIRE(pab.size() == static_cast<size_t>(n * K * S * S));
    bool pair_exact = true;
    for (size_t i = 0; i < pab.size(); ++i) {
      pair_exact = pair_exact && pab[i] == (pa[i] + pb[i]) / 2;  // two models: bit for bit
      REQUIRE(pabc[i] == Approx((pa[i] + pb[i] + pc[i]) / 3).margin(1e-6));
    }
    CHECK(pair_exact);
    // Probabilities: each pixel sums to 1, and the models do differ.
    for (int64_t p = 0; p < S * S; ++p) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += pab[static_cast<size_t>(k * S * S + p)];
      REQUIRE(s == Approx(1.0).margin(1e-5));
    }
    CHECK(pa != pb);
  }
  // The batch does not change the result.
  const auto p1 = predict_probabilities({&a, &b}, x.data(), n, S, opts(1, 1));
  const auto p16 = predict_probabilities({&a, &b}, x.data(), n, S, opts(16, 1));
  for (size_t i = 0; i < p1.size(); ++i) REQUIRE(p1[i] == Approx(p16[i]).margin(1e-6));
  // The argmax of one model's probabilities is its class prediction.
  CHECK(argmax_classes(predict_probabilities({&a}, x.data(), n, S, opts(4)), n, K, S * S) ==
        predict_classes(a, x.data(), n, S, 4, cpu_device()));
  CHECK_FALSE(a.is_training() == false);  // modes restored (a fresh net trains)
}

TEST_CASE("predict: mirroring is exact on symmetric inputs and the mean of the views otherwise", "[predict]") {
  model::SegNet net(tiny_net(4));
  const int64_t n = 3, S = 16, px = S * S;
  const std::vector<float> x = random_slices(n, S, 12);
  for (unsigned axes : {1u, 2u, 3u}) {
    INFO("mirror axes " << axes);
    // A slice symmetric along the mirrored axes: its probabilities are too, exactly.
    std::vector<float> sym = x;
    for (unsigned a : {1u, 2u})
      if (axes & a) {
        const std::vector<float> m = mirror(sym, S, a);
        for (size_t i = 0; i < sym.size(); ++i) sym[i] = sym[i] + m[i];  // a + b == b + a: exact
      }
    REQUIRE(mirror(sym, S, axes) == sym);
    const auto ps = predict_probabilities({&net}, sym.data(), n, S, opts(8, axes));
    CHECK(mirror(ps, S, axes) == ps);
    // Without views the network alone is not symmetric: the views make it so.
    const auto plain = predict_probabilities({&net}, sym.data(), n, S, opts(8));
    CHECK(mirror(plain, S, axes) != plain);

    // Otherwise: the mean of each view's probabilities, mirrored back.
    const auto pt = predict_probabilities({&net}, x.data(), n, S, opts(8, axes));
    std::vector<double> want(pt.size(), 0.0);
    int views = 0;
    for (unsigned v = 0; v < 4; ++v) {
      if (v & ~axes) continue;
      ++views;
      const auto pv = mirror(predict_probabilities({&net}, mirror(x, S, v).data(), n, S, opts(8)), S, v);
      for (size_t i = 0; i < pv.size(); ++i) want[i] += pv[i];
    }
    for (size_t i = 0; i < pt.size(); ++i) REQUIRE(pt[i] == Approx(want[i] / views).margin(1e-6));
    (void)px;
  }
}

TEST_CASE("predict: argmax takes the first of equal maxima, the left-right axis comes from the affine", "[predict]") {
  // (n=1, K=3, px=2): pixel 0 ties classes 1 and 2, pixel 1 prefers 2.
  CHECK(argmax_classes({0.2f, 0.1f, 0.4f, 0.2f, 0.4f, 0.7f}, 1, 3, 2) == std::vector<int32_t>{1, 2});
  data::Geometry g;
  CHECK(left_right_axis(g) == 0);
  g.affine = {{{-1, 0, 0, 0}, {0, -1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}};  // BraTS (LPS)
  CHECK(left_right_axis(g) == 0);
  g.affine = {{{0, 1.2, 0, 0}, {0.9, 0, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}};  // voxel y runs left-right
  CHECK(left_right_axis(g) == 1);
}

TEST_CASE("predict: every checkpoint a run writes loads, cv's choice is followed while fresh", "[predict]") {
  test::LoaderFixture f("predict_ckpt", 3, 6, 16);
  test::TempDir dir;
  TrainConfig cfg;
  cfg.net = tiny_net(5);
  cfg.epochs = 2;
  cfg.batch = 4;
  cfg.steps_per_epoch = 2;
  cfg.val_every = 5;  // validated after the last epoch only: best = last = epoch 2 ...
  cfg.warmup_epochs = 1;
  cfg.workers = 1;
  const fs::path run = dir.path() / "run", fold = run / "fold_0";
  train_fold(cfg, f.cache, {"case_0", "case_1"}, {"case_2"}, fold.string());
  cfg.epochs = 3;  // ... then one more epoch without validation: last = epoch 3
  train_fold(cfg, f.cache, {"case_0", "case_1"}, {"case_2"}, fold.string());

  const CheckpointInfo best = resolve_checkpoint((fold / "best.safetensors").string());
  const CheckpointInfo last = resolve_checkpoint((fold / "last.json").string());  // the newest generation
  CHECK(best.epoch == 2);
  CHECK(last.epoch == 3);
  CHECK(fs::path(last.weights).filename().string().starts_with("last-"));
  CHECK(TrainConfig::from_json(last.train_config).epochs == 3);  // each from its own save
  CHECK(TrainConfig::from_json(best.train_config).epochs == 2);
  CHECK(TrainConfig::from_json(last.train_config).net.widths == cfg.net.widths);
  CHECK(preprocess_from_json(last.preprocess).size == 16);
  CHECK(resolve_checkpoint(fold.string()).weights == (fold / "best.safetensors").string());
  CHECK(resolve_checkpoint(fold.string(), "last").weights == last.weights);
  CHECK(resolve_checkpoint(last.weights).epoch == 3);

  // The last checkpoint loads with its own weights (not best's).
  const LoadedModel ml = load_model((fold / "last.json").string(), cpu_device());
  const LoadedModel mb = load_model((fold / "best.safetensors").string(), cpu_device());
  CHECK(ml.epoch == 3);
  const std::vector<float> x = random_slices(2, 16, 3);
  CHECK(predict_probabilities({ml.net.get()}, x.data(), 2, 16, opts(4)) !=
        predict_probabilities({mb.net.get()}, x.data(), 2, 16, opts(4)));

  // Weights without metadata (an older run's last.safetensors): the fold's config.json describes them.
  fs::create_directories(dir.path() / "old");
  save_state_dict((dir.path() / "old" / "last.safetensors").string(), *ml.net);
  fs::copy_file(fold / "config.json", dir.path() / "old" / "config.json");
  const CheckpointInfo old = resolve_checkpoint((dir.path() / "old").string(), "last");
  CHECK(preprocess_from_json(old.preprocess).size == 16);
  CHECK(TrainConfig::from_json(old.train_config).net.widths == cfg.net.widths);
  CHECK(load_model((dir.path() / "old" / "last.safetensors").string(), cpu_device()).net != nullptr);
  // ... and with nothing describing them, or a run folder as one model: refused.
  fs::remove(dir.path() / "old" / "config.json");
  CHECK_THROWS_WITH(load_model((dir.path() / "old" / "last.safetensors").string(), cpu_device()),
                    Catch::Contains("no lkaseg training configuration"));
  CHECK_THROWS_WITH(resolve_checkpoint(run.string()), Catch::Contains("use --run"));

  // run_checkpoints: best without a choice, the choice while it is newer than the checkpoints.
  CHECK(run_checkpoints(run.string()) == std::vector<std::string>{(fold / "best.safetensors").string()});
  CHECK(run_checkpoints(run.string(), "last") == std::vector<std::string>{last.weights});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write_checkpoint_choice(fold.string(), {"last", 3, "test"});
  CHECK(run_checkpoints(run.string()) == std::vector<std::string>{last.weights});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  fs::last_write_time(fold / "best.safetensors", fs::file_time_type::clock::now());  // trained on since
  CHECK(run_checkpoints(run.string()) == std::vector<std::string>{(fold / "best.safetensors").string()});
  CHECK_THROWS_WITH(run_checkpoints((dir.path() / "old").string()), Catch::Contains("no fold_0"));
}

TEST_CASE("predict: a case end to end, labels in its coding and the probability maps' layout", "[predict]") {
  model::SegNet a(tiny_net(6)), b(tiny_net(7));
  data::PreprocessOptions po;
  po.size = 16;
  for (const test::Layout l : {test::Layout::Brats2021, test::Layout::Msd}) {
    INFO(test::layout_name(l));
    test::TempDir dir;
    const test::LayoutCase lc = test::make_layout_case(test::layout_case_id(l, 1), {20, 18, 8}, 1);
    test::write_layout_case(dir.path() / "data", l, lc, false);
    const data::BratsCase bc = data::discover_brats_cases((dir.path() / "data").string(), {.require_seg = false}).cases.at(0);
    CasePredictOptions o;
    o.predict.batch = 8;
    o.tta = true;
    o.save_probabilities = true;
    fs::create_directories(dir.path() / "out");
    const CasePrediction r = predict_case_file({&a, &b}, po, bc, (dir.path() / "out").string(), o);
    CHECK(r.views == 2);
    CHECK(r.seconds > 0);
    const data::Volume labels = data::read_nifti(r.path);
    CHECK(data::same_grid(labels.geom, lc.geom));
    const std::vector<data::Volume> probs = data::read_nifti_channels((dir.path() / "out" / "probabilities" / (bc.id + ".nii.gz")).string());
    REQUIRE(probs.size() == 4);
    const auto values = data::label_values(bc.naming);
    for (size_t v = 0; v < labels.data.size(); ++v) {
      size_t best = 0;
      double sum = 0;
      for (size_t c = 0; c < 4; ++c) {
        sum += probs[c].data[v];
        if (probs[c].data[v] > probs[best].data[v]) best = c;
      }
      REQUIRE(sum == Approx(1.0).margin(1e-5));
      // Channel c is the c-th label value of the coding: the argmax is the written label.
      REQUIRE(labels.data[v] == values[best]);
    }
    CHECK(probs[0].data[0] == 1.0f);  // a corner outside the brain box: background
  }
}
