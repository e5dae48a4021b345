// The background loader (data/loader.h) on the CPU device: order, content,
// determinism across workers and prefetch depths, resume, oversampling,
// partial batches, the wait metric and bad options. The same loader on the
// emulated CUDA backend (pinned ring, copy stream, GPU augmentation) is
// tested in tests/backend/test_loader_cuda.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "data/loader.h"
#include "data/synth.h"
#include "tests/support/loader_fixture.h"

using namespace lk;
using namespace lk::data;
using lk::test::LoaderFixture;

namespace {

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

LoaderOptions opts(int64_t batch, int workers, int prefetch) {
  LoaderOptions o;
  o.batch_size = batch;
  o.workers = workers;
  o.prefetch = prefetch;
  o.seed = 77;
  o.out_side = 16;
  o.pad = 4;
  return o;
}

}  // namespace

TEST_CASE("loader: every slice once per epoch, a new order each epoch, reproducible", "[data][loader]") {
  LoaderFixture f("loader_order", 3, 7, 16);  // 21 slices
  LoaderOptions o = opts(4, 2, 3);
  o.drop_last = false;
  o.augment = false;
  Loader a(f.cache, f.all_slices(), o);
  REQUIRE(a.batches_per_epoch() == 6);
  std::vector<std::vector<int64_t>> epochs(2);
  for (int e = 0; e < 2; ++e)
    for (int64_t i = 0; i < a.batches_per_epoch(); ++i) {
      const Batch b = a.next();
      CHECK(b.epoch == e);
      CHECK(b.index == i);
      CHECK(b.images.size(0) == (i == 5 ? 1 : 4));  // 21 = 5 * 4 + 1
      CHECK(b.slices == a.batch_slices(e, i));
      epochs[static_cast<size_t>(e)].insert(epochs[static_cast<size_t>(e)].end(), b.slices.begin(), b.slices.end());
    }
  for (auto ep : epochs) {
    std::sort(ep.begin(), ep.end());
    CHECK(ep == f.all_slices());
  }
  CHECK(epochs[0] != epochs[1]);
  CHECK(epochs[0] != f.all_slices());

  Loader again(f.cache, f.all_slices(), o);
  CHECK(again.epoch_order(1) == a.epoch_order(1));
  o.seed = 78;
  Loader other(f.cache, f.all_slices(), o);
  CHECK(other.epoch_order(0) != a.epoch_order(0));
  o.shuffle = false;
  Loader plain(f.cache, {5, 2, 9}, o);
  CHECK(plain.epoch_order(3) == std::vector<int64_t>{5, 2, 9});
}

TEST_CASE("loader: batches hold the cached slices, or their augmentation keyed by epoch and position",
          "[data][loader]") {
  LoaderFixture f("loader_content", 2, 6, 16);
  const int64_t S = 16, O = 16, px = S * S;
  for (bool augment : {false, true}) {
    CAPTURE(augment);
    LoaderOptions o = opts(5, 2, 2);
    o.augment = augment;
    Loader L(f.cache, f.all_slices(), o);
    for (int k = 0; k < 5; ++k) {  // two epochs and a half (2 batches per epoch)
      const Batch b = L.next();
      REQUIRE(b.images.shape() == Shape{5, 4, O, O});
      REQUIRE(b.labels.shape() == Shape{5, O, O});
      for (int64_t i = 0; i < 5; ++i) {
        const int64_t s = b.slices[static_cast<size_t>(i)];
        std::vector<float> want_img(static_cast<size_t>(4 * O * O));
        std::vector<int32_t> want_lab(static_cast<size_t>(O * O)), lab_in(f.cache.labels(s), f.cache.labels(s) + px);
        if (augment) {
          const AugmentDraw d = draw_augmentation(o.seed, static_cast<uint32_t>(b.epoch), b.index * 5 + i);
          augment_cpu(d, f.cache.images(s), lab_in.data(), S, want_img.data(), want_lab.data(), O, o.pad);
        } else {
          std::copy(f.cache.images(s), f.cache.images(s) + 4 * px, want_img.begin());
          want_lab = lab_in;
        }
        CHECK(std::memcmp(b.images.data<float>() + i * 4 * O * O, want_img.data(), want_img.size() * 4) == 0);
        CHECK(std::memcmp(b.labels.data<int32_t>() + i * O * O, want_lab.data(), want_lab.size() * 4) == 0);
      }
    }
  }
}

TEST_CASE("loader: the batches do not depend on workers, prefetch or where augmentation runs", "[data][loader]") {
  LoaderFixture f("loader_determinism", 3, 8, 20);
  LoaderOptions base = opts(3, 1, 2);
  base.out_side = 16;
  base.tumour_fraction = 0.3;
  std::vector<Batch> ref;
  {
    Loader L(f.cache, f.all_slices(), base);
    for (int k = 0; k < 2 * static_cast<int>(L.batches_per_epoch()) + 1; ++k) ref.push_back(L.next());
  }
  struct Variant {
    int workers, prefetch;
    AugmentOn on;
  };
  for (const Variant v : {Variant{3, 2, AugmentOn::Cpu}, Variant{4, 6, AugmentOn::Cpu}, Variant{2, 3, AugmentOn::Device}}) {
    CAPTURE(v.workers, v.prefetch, augment_on_name(v.on));
    LoaderOptions o = base;
    o.workers = v.workers;
    o.prefetch = v.prefetch;
    o.augment_on = v.on;
    Loader L(f.cache, f.all_slices(), o);
    CHECK(L.augments_on_device() == (v.on == AugmentOn::Device));
    for (const Batch& want : ref) {
      const Batch got = L.next();
      CHECK(got.slices == want.slices);
      CHECK(same(got.images, want.images));
      CHECK(same(got.labels, want.labels));
    }
  }
  SECTION("a loader started at epoch 1 gives epoch 1's batches") {
    Loader L(f.cache, f.all_slices(), base, 1);
    const Batch got = L.next();
    const Batch& want = ref[static_cast<size_t>(L.batches_per_epoch())];
    CHECK(got.epoch == 1);
    CHECK(got.index == 0);
    CHECK(same(got.images, want.images));
    CHECK(same(got.labels, want.labels));
  }
  SECTION("a loader started at batch 2 of epoch 1 gives that batch") {
    Loader L(f.cache, f.all_slices(), base, 1, 2);
    const Batch got = L.next();
    const Batch& want = ref[static_cast<size_t>(L.batches_per_epoch() + 2)];
    CHECK(got.epoch == 1);
    CHECK(got.index == 2);
    CHECK(same(got.images, want.images));
    CHECK_THROWS_WITH(Loader(f.cache, f.all_slices(), base, 0, L.batches_per_epoch()), Catch::Contains("start batch"));
  }
}

TEST_CASE("loader: data-parallel ranks split each global batch; together they are one loader at the global batch",
          "[data][loader]") {
  LoaderFixture f("loader_ranks", 3, 9, 20);  // 27 slices: 3 global batches of 8, 3 positions left out
  LoaderOptions whole = opts(8, 2, 3);
  whole.tumour_fraction = 0.3;
  Loader one(f.cache, f.all_slices(), whole);
  REQUIRE(one.batches_per_epoch() == 3);
  std::vector<std::unique_ptr<Loader>> ranks;
  for (int r = 0; r < 2; ++r) {
    LoaderOptions o = whole;
    o.batch_size = 4;
    o.rank = r;
    o.ranks = 2;
    o.workers = 1 + r;  // the worker count changes nothing
    ranks.push_back(std::make_unique<Loader>(f.cache, f.all_slices(), o));
    CHECK(ranks.back()->batches_per_epoch() == 3);
  }
  for (int k = 0; k < 2 * 3 + 1; ++k) {  // two epochs and one batch
    const Batch want = one.next();
    std::vector<int64_t> together;
    for (int r = 0; r < 2; ++r) {
      const Batch got = ranks[static_cast<size_t>(r)]->next();
      CHECK(got.epoch == want.epoch);
      CHECK(got.index == want.index);
      REQUIRE(got.images.size(0) == 4);
      // Rows 4r..4r+3 of the global batch, augmentation (keyed by the global position) included.
      const size_t img = got.images.nbytes(), lab = got.labels.nbytes();
      CHECK(std::memcmp(got.images.raw(), static_cast<const char*>(want.images.raw()) + r * img, img) == 0);
      CHECK(std::memcmp(got.labels.raw(), static_cast<const char*>(want.labels.raw()) + r * lab, lab) == 0);
      together.insert(together.end(), got.slices.begin(), got.slices.end());
    }
    CHECK(together == want.slices);
  }
  // Without oversampling an epoch's shares are disjoint: no slice twice, and
  // only the n mod G positions one process leaves out are left out.
  whole.tumour_fraction = 0;
  std::set<int64_t> seen;
  for (int r = 0; r < 2; ++r) {
    LoaderOptions o = whole;
    o.batch_size = 4, o.rank = r, o.ranks = 2;
    const Loader L(f.cache, f.all_slices(), o);
    for (int64_t i = 0; i < L.batches_per_epoch(); ++i)
      for (int64_t s : L.batch_slices(1, i)) CHECK(seen.insert(s).second);
  }
  CHECK(seen.size() == 24);
  LoaderOptions bad = whole;
  bad.ranks = 2, bad.rank = 2;
  CHECK_THROWS_WITH(Loader(f.cache, f.all_slices(), bad), Catch::Contains("rank 2 of 2"));
  bad.rank = 1, bad.drop_last = false;
  CHECK_THROWS_WITH(Loader(f.cache, f.all_slices(), bad), Catch::Contains("drop_last"));
  bad.drop_last = true, bad.batch_size = 14;
  CHECK_THROWS_WITH(Loader(f.cache, f.all_slices(), bad), Catch::Contains("no full batch of 28 (2 ranks x 14)"));
}

TEST_CASE("loader: tumour oversampling", "[data][loader]") {
  LoaderFixture f("loader_oversample", 3, 9, 16);  // 27 slices, 18 with tumour
  const std::vector<int64_t> tum = f.cache.tumour_slices();
  REQUIRE(tum.size() == 18);
  const std::set<int64_t> tumour(tum.begin(), tum.end());
  // Only some slices are given: oversampling draws from the given tumour slices only.
  std::vector<int64_t> given;
  for (int64_t s = 0; s < 20; ++s) given.push_back(s);
  const auto fraction_of = [&](double p, int epochs) {
    LoaderOptions o = opts(4, 1, 2);
    o.augment = false;
    o.tumour_fraction = p;
    Loader L(f.cache, given, o);
    int64_t hit = 0, n = 0;
    for (int e = 0; e < epochs; ++e)
      for (int64_t s : L.epoch_order(e)) {
        CHECK(s < 20);
        n++;
        hit += tumour.count(s);
      }
    return static_cast<double>(hit) / static_cast<double>(n);
  };
  int64_t given_tumour = 0;
  for (int64_t s : given) given_tumour += tumour.count(s);
  CHECK(fraction_of(0.0, 50) == Approx(static_cast<double>(given_tumour) / 20.0));
  CHECK(fraction_of(1.0, 3) == 1.0);
  // p = 0.5 over 50 epochs of 20: expect 1/2 + 1/2 * 14/20 = 0.85 (binomial sd ~0.008).
  CHECK(fraction_of(0.5, 50) == Approx(0.5 + 0.5 * static_cast<double>(given_tumour) / 20.0).margin(0.04));
}

TEST_CASE("loader: oversampling by class shows a rare class as often as a common one", "[data][loader]") {
  // One case of 40 slices of side 8: 0-19 edema only, 20-22 enhancing only,
  // 23 necrosis only (training classes 2, 1, 3), the rest background.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lkaseg_loader_by_class_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "slices.lkc").string();
  PreprocessOptions po;
  po.size = 8;
  PreprocessedCase p;
  p.id = "case_0";
  p.geom.dims = {8, 8, 40};
  p.geom.spacing = {1.0, 1.0, 1.0};
  p.box.lo = {0, 0, 0};
  p.box.hi = {8, 8, 40};
  p.size = 8;
  for (int z = 0; z < 40; ++z) {
    p.z.push_back(z);
    for (int i = 0; i < 4 * 64; ++i) p.images.push_back(static_cast<float>(z));
    const int32_t cls = z < 20 ? 2 : z < 23 ? 1 : z == 23 ? 3 : 0;
    for (int i = 0; i < 64; ++i) p.labels.push_back(i == 27 ? cls : 0);
  }
  write_slice_cache(path, {p}, po);
  {
    const SliceCache cache = open_slice_cache(path, po);
    CHECK(cache.slices_with_class(3) == std::vector<int64_t>{23});
    CHECK(cache.slices_with_class(1) == std::vector<int64_t>{20, 21, 22});
    CHECK(cache.slices_with_class(2).size() == 20);
    // The share of positions holding each class over `epochs` epochs of the given slices.
    const auto shares = [&](const std::vector<int64_t>& given, bool by_class, double fraction, int epochs) {
      LoaderOptions o = opts(4, 1, 2);
      o.augment = false;
      o.tumour_fraction = fraction;
      o.oversample_by_class = by_class;
      Loader L(cache, given, o);
      std::map<int, double> share;
      double n = 0;
      for (int e = 0; e < epochs; ++e)
        for (int64_t s : L.epoch_order(e)) {
          CHECK(std::find(given.begin(), given.end(), s) != given.end());
          share[s < 20 ? 2 : s < 23 ? 1 : s == 23 ? 3 : 0] += 1, n += 1;
        }
      for (auto& [cls, v] : share) v /= n;
      return share;
    };
    std::vector<int64_t> all(40);
    for (int64_t s = 0; s < 40; ++s) all[static_cast<size_t>(s)] = s;
    // By tumour, fraction 1: necrosis on 1 of 24 tumour slices. By class: a third each
    // (4000 draws: sd ~0.0075).
    std::map<int, double> t = shares(all, false, 1.0, 100), c = shares(all, true, 1.0, 100);
    CHECK(t[3] == Approx(1.0 / 24).margin(0.012));
    CHECK(t[2] == Approx(20.0 / 24).margin(0.03));
    CHECK(t[0] == 0.0);
    for (int cls : {1, 2, 3}) CHECK(c[cls] == Approx(1.0 / 3).margin(0.03));
    CHECK(c[0] == 0.0);
    // Fraction 0.5: half the positions as drawn, half by class.
    c = shares(all, true, 0.5, 100);
    CHECK(c[3] == Approx(0.5 * 1.0 / 40 + 0.5 / 3).margin(0.03));
    CHECK(c[0] == Approx(0.5 * 16.0 / 40).margin(0.03));
    // Only the classes the given slices hold are drawn: without slice 23, half each.
    std::vector<int64_t> no_ncr = all;
    no_ncr.erase(no_ncr.begin() + 23);
    c = shares(no_ncr, true, 1.0, 100);
    CHECK(c[3] == 0.0);
    CHECK(c[1] == Approx(0.5).margin(0.03));
    // The order is a function of the seed and epoch alone, as with oversampling by tumour.
    LoaderOptions o = opts(4, 1, 2);
    o.augment = false, o.tumour_fraction = 0.7, o.oversample_by_class = true;
    Loader a(cache, all, o), b(cache, all, o);
    CHECK(a.epoch_order(3) == b.epoch_order(3));
    CHECK(a.epoch_order(3) != a.epoch_order(4));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("loader: the wait metric counts the time next() blocks", "[data][loader]") {
  LoaderFixture f("loader_wait", 2, 8, 16);
  LoaderOptions o = opts(2, 2, 3);
  Loader L(f.cache, f.all_slices(), o);
  L.next();
  // A consumer slower than the workers finds its batches ready.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  L.reset_stats();
  L.next();
  L.next();
  const LoaderStats s = L.stats();
  CHECK(s.batches == 2);
  CHECK(s.wait_seconds >= s.last_wait_seconds);
  CHECK(s.wait_seconds < 0.25);
  CHECK(s.mean_wait_ms() == Approx(1e3 * s.wait_seconds / 2));
  // Workers report their time too.
  for (int k = 0; k < 6; ++k) L.next();
  CHECK(L.stats().produce_seconds > 0.0);
  CHECK(L.stats().batches == 8);
}

TEST_CASE("loader: a loader destroyed with batches in flight stops its workers", "[data][loader]") {
  LoaderFixture f("loader_stop", 2, 10, 16);
  for (int workers : {1, 4}) {
    Loader L(f.cache, f.all_slices(), opts(2, workers, 4));
    L.next();
  }  // returns: nothing hangs
  Loader never_used(f.cache, f.all_slices(), opts(2, 2, 2));
  SUCCEED();
}

TEST_CASE("loader: bad options and slices are refused with the reason", "[data][loader]") {
  LoaderFixture f("loader_bad", 1, 4, 16);
  const auto fails = [&](LoaderOptions o, std::vector<int64_t> slices, const std::string& what) {
    CAPTURE(what);
    CHECK_THROWS_WITH(Loader(f.cache, std::move(slices), o), Catch::Contains(what));
  };
  fails(opts(0, 1, 2), {0}, "batch size 0");
  fails(opts(2, 1, 1), {0, 1}, "prefetch 1");
  fails(opts(2, -1, 2), {0, 1}, "workers -1");
  LoaderOptions o = opts(2, 1, 2);
  o.tumour_fraction = 1.5;
  fails(o, {0, 1}, "tumour fraction");
  fails(opts(2, 1, 2), {0, 4}, "slice 4 is outside the cache");
  fails(opts(2, 1, 2), {}, "no slices");
  fails(opts(8, 1, 2), {0, 1, 2}, "no full batch of 8");
  o = opts(2, 1, 2);
  o.out_side = 40;  // 16 + 2 * 4 = 24 < 40
  fails(o, {0, 1}, "does not fit");
  CHECK_THROWS_WITH(parse_augment_on("gpu0"), Catch::Contains("auto, cpu or device"));
  CHECK(parse_augment_on("device") == AugmentOn::Device);
  Loader L(f.cache, {0, 1, 2, 3}, opts(2, 1, 2));
  CHECK_THROWS_AS(L.batch_slices(0, 2), std::out_of_range);
}

TEST_CASE("loader: generated BraTS-like cases go NIfTI -> cache -> loader -> augmented batches", "[data][loader]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("lkaseg_loader_synth_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  SynthOptions so;
  so.dims = {48, 44, 16};
  generate_synthetic_dataset((dir / "cases").string(), 3, 42, so);
  PreprocessOptions po;
  po.size = 32;
  const SliceCache cache = ensure_slice_cache((dir / "slices.lkc").string(), (dir / "cases").string(), po);
  REQUIRE(cache.num_cases() == 3);
  LoaderOptions o;
  o.batch_size = 4;
  o.out_side = 32;
  o.tumour_fraction = 0.5;
  o.augment_on = AugmentOn::Device;  // the CPU backend's augment op
  std::vector<int64_t> all;
  for (int64_t s = 0; s < cache.slices(); ++s) all.push_back(s);
  Loader L(cache, all, o);
  bool saw_tumour = false;
  for (int64_t k = 0; k < L.batches_per_epoch(); ++k) {
    const Batch b = L.next();
    REQUIRE(b.images.shape() == Shape{4, 4, 32, 32});
    for (int64_t i = 0; i < b.images.numel(); ++i) REQUIRE(std::isfinite(b.images.data<float>()[i]));
    for (int64_t i = 0; i < b.labels.numel(); ++i) {
      const int32_t v = b.labels.data<int32_t>()[i];
      REQUIRE((v >= 0 && v <= 3));
      saw_tumour |= v != 0;
    }
  }
  CHECK(saw_tumour);
  fs::remove_all(dir);
}
