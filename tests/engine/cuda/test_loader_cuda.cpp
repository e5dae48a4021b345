// The data loader (data/loader.h) on the CUDA backend: pinned host slots, the
// copy stream and its events, and augmentation by the fused kernel on the
// compute stream. Compiled twice (tests/backend/CMakeLists.txt): label emu
// against the emulated backend, label gpu against a real device (skipped
// without one). The reference is the same loader on the CPU device.
#include <catch2/catch.hpp>

#include <cstring>

#include <atomic>
#include <cmath>
#include <filesystem>

#include "data/loader.h"
#include "engine/cuda/cuda_check.h"
#include "tests/support/tiny_run.h"
#include "train/trainer.h"
#include "tests/engine/cuda/cuda_device.h"
#include "tests/support/loader_fixture.h"
#include "tests/support/harness.h"

using namespace lk;
using namespace lk::data;
using lk::test::LoaderFixture;

namespace {

using lk::test::have_device;
using lk::test::kCuda;

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

LoaderOptions opts(int workers, int prefetch) {
  LoaderOptions o;
  o.batch_size = 3;
  o.workers = workers;
  o.prefetch = prefetch;
  o.seed = 2024;
  o.out_side = 20;
  o.pad = 4;
  o.tumour_fraction = 0.25;
  return o;
}

// The CPU device's batches with the same options (augmentation in the workers).
std::vector<Batch> cpu_batches(const LoaderFixture& f, LoaderOptions o, int n) {
  o.device = cpu_device();
  o.augment_on = AugmentOn::Cpu;
  Loader L(f.cache, f.all_slices(), o);
  std::vector<Batch> out;
  for (int k = 0; k < n; ++k) out.push_back(L.next());
  return out;
}

}  // namespace

TEST_CASE("cuda loader: CPU-augmented and plain batches arrive on the device unchanged", "[loader]") {
  if (!have_device()) return;
  LoaderFixture f("cuda_loader_copy", 3, 5, 24);  // 15 slices, 5 batches of 3 per epoch
  for (bool augment : {true, false}) {
    CAPTURE(augment);
    for (const auto& [workers, prefetch] : {std::pair{1, 2}, std::pair{3, 2}, std::pair{2, 5}}) {
      CAPTURE(workers, prefetch);
      LoaderOptions o = opts(workers, prefetch);
      o.augment = augment;
      o.drop_last = false;
      const std::vector<Batch> want = cpu_batches(f, o, 12);
      o.device = kCuda;
      o.augment_on = AugmentOn::Cpu;
      Loader L(f.cache, f.all_slices(), o);
      REQUIRE_FALSE(L.augments_on_device());
      for (const Batch& w : want) {
        const Batch got = L.next();
        REQUIRE(got.images.device() == kCuda);
        REQUIRE(got.labels.device() == kCuda);
        CHECK(got.slices == w.slices);
        CHECK(same(got.images.to(cpu_device()), w.images));
        CHECK(same(got.labels.to(cpu_device()), w.labels));
      }
      CHECK(L.stats().batches == 12);
    }
  }
}

TEST_CASE("cuda loader: augmentation by the kernel matches the CPU workers", "[loader]") {
  if (!have_device()) return;
  LoaderFixture f("cuda_loader_aug", 2, 6, 24);
  for (const auto& [workers, prefetch] : {std::pair{1, 2}, std::pair{2, 4}}) {
    CAPTURE(workers, prefetch);
    LoaderOptions o = opts(workers, prefetch);
    const std::vector<Batch> want = cpu_batches(f, o, 9);  // 4 batches per epoch: two epochs and one
    o.device = kCuda;
    o.augment_on = AugmentOn::Auto;  // a GPU device: the kernel
    Loader L(f.cache, f.all_slices(), o);
    REQUIRE(L.augments_on_device());
    for (const Batch& w : want) {
      const Batch got = L.next();
      CHECK(got.slices == w.slices);
      // Labels exactly; images to the float rounding of the gamma statistics.
      CHECK(same(got.labels.to(cpu_device()), w.labels));
      CHECK(lk::test::scaled_error(got.images.to(cpu_device()), w.images) <= 1e-5);
    }
  }
}

TEST_CASE("cuda loader: batches stay valid after the ring slots are reused", "[loader]") {
  if (!have_device()) return;
  LoaderFixture f("cuda_loader_keep", 2, 6, 24);
  LoaderOptions o = opts(2, 2);
  o.device = kCuda;
  Loader L(f.cache, f.all_slices(), o);
  std::vector<Batch> kept;
  for (int k = 0; k < 6; ++k) kept.push_back(L.next());  // each slot reused three times
  const std::vector<Batch> want = cpu_batches(f, opts(2, 2), 6);
  for (size_t k = 0; k < kept.size(); ++k) CHECK(same(kept[k].labels.to(cpu_device()), want[k].labels));
  backend(kCuda).synchronize();
}

TEST_CASE("cuda trainer: a tiny run on the device with augmentation in the kernel, stopped and resumed", "[loader]") {
  if (!have_device()) return;
  LoaderFixture f("cuda_trainer", 3, 3, 16);  // small: the emulator runs every kernel on the CPU
  const std::filesystem::path dir = f.dir / "runs";
  train::TrainConfig c = test::tiny_run(1, 2, 2, 1);
  c.device = kCuda;
  const std::vector<std::string> train{"case_0", "case_1"}, val{"case_2"};
  const train::TrainResult whole = train::train_fold(c, f.cache, train, val, (dir / "whole").string());
  REQUIRE(whole.log.size() == 1);
  for (const train::EpochLog& e : whole.log) CHECK(std::isfinite(e.loss));
  std::atomic<bool> stop{true};
  train::TrainHooks h;
  h.stop = &stop;
  CHECK(train::train_fold(c, f.cache, train, val, (dir / "parts").string(), h).stopped);
  stop = false;
  const train::TrainResult rest = train::train_fold(c, f.cache, train, val, (dir / "parts").string(), h);
  CHECK(rest.resumed_from_step == 1);
  REQUIRE(rest.log.size() == 1);
  REQUIRE(rest.log[0].val.has_value());
  // The same steps on the same device: the same weights, so the same validation.
  CHECK(rest.log[0].val->mean == whole.log[0].val->mean);
  CHECK(rest.log[0].val->dice == whole.log[0].val->dice);
}

TEST_CASE("cuda loader: on cuda:1 the worker threads use cuda:1 and never touch device 0", "[loader]") {
#if defined(LKASEG_SIMT)
  lk::simt::set_device_count(2);  // an emulated second device
  lk::simt::reset_device_contexts();
#endif
  if (cuda::device_count() < 2) {
    WARN("no CUDA device cuda:1 (" << cuda::device_count() << " device(s)): skipping");
    return;
  }
  const Device cuda1{DeviceType::CUDA, 1};
  cuda::cuda_backend(1);
  LoaderFixture f("cuda_loader_dev1", 2, 6, 24);
  LoaderOptions o = opts(2, 3);
  const std::vector<Batch> want = cpu_batches(f, o, 5);
  o.device = cuda1;
  {
    Loader L(f.cache, f.all_slices(), o);  // augmentation by the kernel on cuda:1
    for (const Batch& w : want) {
      const Batch got = L.next();
      REQUIRE(got.labels.device() == cuda1);
      CHECK(same(got.labels.to(cpu_device()), w.labels));
    }
  }
#if defined(LKASEG_SIMT)
  // CUDA initialises a device's context on a thread's first call with it
  // current (device 0 unless cudaSetDevice): nobody may have touched device 0.
  CHECK((lk::simt::device_contexts() & 1u) == 0u);
  lk::simt::set_device_count(0);
#endif
  LK_CUDA_CHECK(cudaSetDevice(0));
}
