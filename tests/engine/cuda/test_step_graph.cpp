// The training step as a CUDA Graph (engine/step_graph.h) under emulation:
// replays equal eager steps bit for bit, a replayed step is one graph launch
// with no other launch, sync or allocation, a step that cannot be captured
// runs eagerly after saying why once, the allocator's graph pools keep
// their blocks from eager work, and a resumed trainer run with the graph
// equals an uninterrupted one.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/cuda/caching_allocator.h"
#include "engine/safetensors.h"
#include "engine/step_graph.h"
#include "model/loss.h"
#include "model/networks.h"
#include "tests/engine/cuda/cuda_device.h"
#include "tests/support/loader_fixture.h"
#include "tests/support/tiny_run.h"
#include "train/trainer.h"

using namespace lk;
using lk::test::have_device;
using lk::test::kCuda;

namespace {

bool bits_equal(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(cpu_device()), y = b.to(cpu_device());
  return x.shape() == y.shape() && x.dtype() == y.dtype() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

struct Batch {
  Tensor images, labels;
};

std::vector<Batch> batches(int n, int64_t b, int64_t s) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<Batch> out;
  for (int k = 0; k < n; ++k) {
    Tensor x = Tensor::empty({b, 4, s, s});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = d(rng);
    Tensor y = Tensor::empty({b, s, s}, DType::I32);
    for (int64_t i = 0; i < y.numel(); ++i) y.data<int32_t>()[i] = static_cast<int32_t>(rng() % 4);
    out.push_back({x.to(kCuda), y.to(kCuda)});
  }
  return out;
}

// A small ResSE-LKA-UNet with AdamW, stepped by a StepGraph.
struct Run {
  model::SegNet net;
  AdamW opt;
  model::DeepSupervisionLoss loss;
  StepGraph graph;
  std::vector<std::string> said;
  bool host_read_in_step = false;  // a body that cannot be captured
  explicit Run(bool graphs)
      : net(config()), opt((net.to_device(kCuda), net.parameters()), AdamW::Options{.lr = 3e-3}),
        graph(graphs, [this](const std::string& m) { said.push_back(m); }) {
    net.train(true);
  }
  static model::NetConfig config() {
    model::NetConfig c;
    c.widths = {4, 8, 16, 32};
    return c;
  }
  Tensor step(const Batch& b, double lr) {
    opt.set_lr(lr);
    return graph.run(b.images, b.labels, net, opt, [&](const Tensor& x, const Tensor& y) {
      const model::LossTerms t = loss(net.forward(x), y);
      if (host_read_in_step) (void)t.total.item();  // a host wait: no capture can hold it
      opt.zero_grad();
      backward(t.total);
      opt.step();
      return t.total.detach();
    });
  }
  void check_same_state(Run& o) {
    for (size_t i = 0; i < opt.params().size(); ++i) {
      INFO("parameter " << opt.params()[i].name());
      CHECK(bits_equal(opt.params()[i], o.opt.params()[i]));
      CHECK(bits_equal(opt.first_moments()[i], o.opt.first_moments()[i]));
      CHECK(bits_equal(opt.second_moments()[i], o.opt.second_moments()[i]));
    }
    const auto bufs = net.named_buffers(), obufs = o.net.named_buffers();
    REQUIRE(bufs.size() == obufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) {
      INFO("buffer " << bufs[i].first);
      CHECK(bits_equal(bufs[i].second, obufs[i].second));
    }
    CHECK(opt.steps() == o.opt.steps());
    CHECK(bits_equal(opt.state(), o.opt.state()));
  }
};

double lr_at(int k) { return k < 2 ? 3e-3 : 1e-3 * (1 + k % 2); }  // changes while replaying: upload_lr outside the graph

}  // namespace

TEST_CASE("step graph: N replayed steps equal N eager steps bit for bit", "[graph]") {
  if (!have_device()) return;
  constexpr int kSteps = 4;
  const std::vector<Batch> data = batches(kSteps, 2, 8);
  Run eager(false), graphed(true);
  for (int k = 0; k < kSteps; ++k) {
    INFO("step " << k);
    const double le = eager.step(data[k], lr_at(k)).item(), lg = graphed.step(data[k], lr_at(k)).item();
    CHECK(std::isfinite(le));
    CHECK(std::memcmp(&le, &lg, sizeof le) == 0);
    CHECK(graphed.graph.status() == (k == 0 ? "warming up" : "on"));
  }
  CHECK(graphed.said.empty());
  CHECK(eager.graph.status() == "off");
  eager.check_same_state(graphed);
}

#if defined(LKASEG_SIMT)
TEST_CASE("step graph: a replayed step is one graph launch: no launch, sync or allocation besides", "[graph]") {
  if (!have_device()) return;
  const std::vector<Batch> data = batches(1, 2, 8);
  Run r(true);
  for (int k = 0; k < 3; ++k) r.step(data[0], 3e-3);  // warm-up, capture, a replay
  backend(kCuda).synchronize();
  const simt::ApiCounts a = simt::api_counts();
  const Tensor loss = r.step(data[0], 3e-3);
  const simt::ApiCounts b = simt::api_counts();
  CHECK(b.graph_launches - a.graph_launches == 1);
  CHECK(b.launches - a.launches == 0);
  CHECK(b.memsets - a.memsets == 0);
  CHECK(b.syncs - a.syncs == 0);
  CHECK(b.mallocs - a.mallocs == 0);
  CHECK(b.copies - a.copies == 2);  // the batch into the static buffers, device to device
  CHECK(std::isfinite(loss.item()));
  CHECK(r.opt.steps() == 4);
}
#endif

TEST_CASE("step graph: a step that cannot be captured says why once and runs eagerly, equal to eager", "[graph]") {
  if (!have_device()) return;
  const std::vector<Batch> data = batches(3, 2, 8);
  Run eager(false), tried(true);
  tried.host_read_in_step = eager.host_read_in_step = true;
  for (int k = 0; k < 3; ++k) {
    const double le = eager.step(data[k], lr_at(k)).item(), lt = tried.step(data[k], lr_at(k)).item();
    CHECK(le == lt);
  }
  REQUIRE(tried.said.size() == 1);
  CHECK(tried.said[0].find("could not be captured") != std::string::npos);
  CHECK(tried.said[0].find("training eagerly") != std::string::npos);
  CHECK(tried.graph.status().rfind("off: ", 0) == 0);
  eager.check_same_state(tried);
}

TEST_CASE("caching allocator: a graph pool's blocks are not handed to other work while it lives", "[graph]") {
  if (!have_device()) return;
  cuda::CachingAllocator al(0);
  const size_t n = 4096;
  void* eager_block = al.allocate(n);
  const int pool = al.begin_pool();
  void* a = al.allocate(n);      // a new block for the pool, from the driver (relaxed: a capture may be on)
  CHECK(al.stats().capture_driver_allocs == 1);
  al.deallocate(eager_block, n);  // freed while filling: joins the pool (a captured kernel may use it)
  al.deallocate(a, n);
  void* again = al.allocate(n);  // the pool's own free block
  CHECK((again == a || again == eager_block));
  al.end_pool();
  CHECK(al.pool_bytes(pool) == 2 * cuda::CachingAllocator::round_size(n));
  void* other = al.allocate(n);  // eager: neither pool block
  CHECK(other != a);
  CHECK(other != eager_block);
  al.deallocate(other, n);
  al.deallocate(again, n);  // back to the pool, still not the cache's
  const uint64_t hits = al.stats().cache_hits;
  void* other2 = al.allocate(n);
  CHECK(other2 == other);
  al.deallocate(other2, n);
  al.release_pool(pool);
  CHECK(al.pool_bytes(pool) == 0);
  std::vector<void*> got{al.allocate(n), al.allocate(n), al.allocate(n)};
  CHECK(al.stats().cache_hits - hits == 4);  // other2, then the three cached blocks: no driver call
  for (void* p : got) al.deallocate(p, n);
}

TEST_CASE("step graph: a trainer run resumed with the graph equals an uninterrupted one, and the eager run", "[graph]") {
  if (!have_device()) return;
  test::LoaderFixture f("step_graph_trainer", 3, 3, 8);
  const std::filesystem::path dir = f.dir / "runs";
  train::TrainConfig c = test::tiny_run(1, 2, 4, 1);
  c.log_every = 1;
  c.device = kCuda;
  const std::vector<std::string> train{"case_0", "case_1"}, val{"case_2"};
  std::vector<std::string> lines;
  train::TrainHooks h;
  h.log = [&](const std::string& m) { lines.push_back(m); };
  const train::TrainResult whole = train::train_fold(c, f.cache, train, val, (dir / "whole").string(), h);
  for (const std::string& m : lines) CHECK(m.find("CUDA Graph") == std::string::npos);  // captured fine
  std::atomic<bool> stop{false};
  h.stop = &stop;
  h.log = [&](const std::string& m) {
    if (m.rfind("step 1/", 0) == 0) stop = true;
  };
  CHECK(train::train_fold(c, f.cache, train, val, (dir / "parts").string(), h).stopped);
  stop = false;
  const train::TrainResult rest = train::train_fold(c, f.cache, train, val, (dir / "parts").string(), h);
  CHECK(rest.resumed_from_step == 1);  // then: warm-up, capture, a replay
  train::TrainConfig e = c;
  e.cuda_graph = false;
  const train::TrainResult eager = train::train_fold(e, f.cache, train, val, (dir / "eager").string(), {});
  REQUIRE(whole.log.size() == 1);
  REQUIRE(rest.log.size() == 1);
  REQUIRE(eager.log.size() == 1);
  CHECK(std::isfinite(whole.log[0].loss));
  CHECK(rest.log[0].loss == whole.log[0].loss);
  CHECK(eager.log[0].loss == whole.log[0].loss);
  REQUIRE(whole.log[0].val.has_value());
  CHECK(rest.log[0].val->dice == whole.log[0].val->dice);
  CHECK(eager.log[0].val->dice == whole.log[0].val->dice);
  // The last checkpoints' weights, buffers and AdamW moments, bit for bit.
  for (const char* file : {"last-00000004.safetensors", "last-00000004.safetensors.state"}) {
    const SafeTensors w = load_safetensors((dir / "whole" / file).string());
    CHECK(!w.tensors.empty());
    for (const char* run : {"parts", "eager"}) {
      const SafeTensors o = load_safetensors((dir / run / file).string());
      REQUIRE(o.tensors.size() == w.tensors.size());
      for (size_t i = 0; i < w.tensors.size(); ++i) {
        INFO(run << "/" << file << ": " << w.tensors[i].first);
        CHECK(o.tensors[i].first == w.tensors[i].first);
        CHECK(bits_equal(o.tensors[i].second, w.tensors[i].second));
      }
      for (const auto& [k, v] : w.metadata)
        if (k != "generation") {  // a random id per save
          INFO(run << "/" << file << " metadata " << k << ": " << v << " / " << (o.metadata.count(k) ? o.metadata.at(k) : "-"));
          CHECK((o.metadata.count(k) && o.metadata.at(k) == v));
        }
    }
  }
}

TEST_CASE("step graph: bf16 steps replay a graph, fp16 steps stay eager and an overflowing one is skipped and reported",
          "[graph][precision]") {
  if (!have_device()) return;
  test::LoaderFixture f("step_graph_precision", 3, 3, 8);
  train::TrainConfig c = test::tiny_run(1, 2, 3, 1);
  c.log_every = 0;
  c.device = kCuda;
  const std::vector<std::string> train{"case_0", "case_1"}, val{"case_2"};
  const auto run = [&](DType precision, const std::string& name, std::vector<std::string>& lines) {
    train::TrainConfig p = c;
    p.precision = precision;
    p.loss_scale = 1e30;  // fp16: every scaled backward overflows 65504 (the scale halves per skip)
    train::TrainHooks h;
    h.log = [&](const std::string& m) { lines.push_back(m); };
    return train::train_fold(p, f.cache, train, val, (f.dir / "runs" / name).string(), h);
  };
  const auto said = [](const std::vector<std::string>& lines, const std::string& what) {
    for (const std::string& m : lines)
      if (m.find(what) != std::string::npos) return true;
    return false;
  };
  std::vector<std::string> bf16_lines, fp16_lines;
  const train::TrainResult bf16 = run(DType::BF16, "bf16", bf16_lines);
  CHECK_FALSE(said(bf16_lines, "CUDA Graph"));  // captured and replayed: no loss scaler in the step
  REQUIRE(bf16.log.size() == 1);
  CHECK(std::isfinite(bf16.log[0].loss));

  const train::TrainResult fp16 = run(DType::F16, "fp16", fp16_lines);
  CHECK(said(fp16_lines, "CUDA Graph: off for --precision fp16"));
  CHECK(said(fp16_lines, "(3 skipped)"));  // the epoch line reports the skipped steps
  REQUIRE(fp16.log.size() == 1);
  // Every step skipped: the weights are still the initial ones (the same net seed).
  model::SegNet init(c.net);
  const SafeTensors w = load_safetensors((f.dir / "runs" / "fp16" / "last-00000003.safetensors").string());
  for (const auto& [name, p] : init.named_parameters()) {
    INFO(name);
    REQUIRE(w.has(name));
    CHECK(bits_equal(w.get(name), p));
  }
}
