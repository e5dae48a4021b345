// The streaming, parallel build of the slice cache (data/slice_cache.h,
// data/preprocess_pool.h): equal to the in-memory path, independent of the
// thread count, bounded memory, rebuild of other versions, no partial file
// after a write failure, skip_bad.
#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "data/preprocess_pool.h"
#include "data/slice_cache.h"
#include "tests/support/slice_dataset.h"
#include "data/synth.h"
#include "tests/support/nifti_craft.h"
#include "tests/support/file_size_limit.h"

using lk::test::FileSizeLimit;

using namespace lk::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

SynthOptions small_synth() {
  SynthOptions o;
  o.dims = {40, 36, 12};
  return o;
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_at(const fs::path& p, std::streamoff at, const void* data, size_t n) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(at);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

CacheBuildOptions quiet(int threads) {
  CacheBuildOptions b;
  b.threads = threads;
  b.progress = nullptr;
  return b;
}

int temp_files(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("cache build: the streamed cache equals the in-memory path", "[cache_build]") {
  const lk::test::TempDir dir;
  const std::string root = dir.file("brats");
  generate_synthetic_dataset(root, 4, 11, small_synth());
  PreprocessOptions po;
  po.size = 24;

  const std::string streamed = dir.file("streamed.lkslc"), inmem = dir.file("inmem.lkslc");
  const CacheBuildSummary sum = build_slice_cache(streamed, root, po, quiet(2));
  CHECK(sum.built);
  CHECK(sum.cases == 4);
  CHECK(sum.skipped.empty());
  CHECK(sum.threads == 2);
  CHECK(sum.bytes == fs::file_size(streamed));

  const std::vector<PreprocessedCase> mem = load_preprocessed(root, po);
  {
    SliceCacheWriter w(inmem, po);
    for (const PreprocessedCase& c : mem) w.add(c);
    for (const BratsCase& c : discover_brats_cases(root).cases) w.add_fingerprint(fingerprint_case(c));
    w.finish();
  }
  CHECK(read_all(streamed) == read_all(inmem));  // byte for byte

  // Record for record, slice for slice.
  const SliceCache sc = open_slice_cache(streamed, po);
  REQUIRE(sc.num_cases() == 4);
  CHECK(sc.skipped().empty());
  CHECK(sc.file_bytes() == sum.bytes);
  int64_t slice = 0;
  const int64_t px = 24 * 24;
  for (int64_t k = 0; k < 4; ++k) {
    const PreprocessedCase& want = mem[static_cast<size_t>(k)];
    const CachedCase& info = sc.case_info(k);
    CHECK(info.id == want.id);
    CHECK(info.first_slice == slice);
    CHECK(info.geom.dims == want.geom.dims);
    CHECK(info.geom.spacing == want.geom.spacing);
    CHECK(info.geom.affine == want.geom.affine);
    CHECK(info.box.lo == want.box.lo);
    CHECK(info.box.hi == want.box.hi);
    CHECK(info.z == want.z);
    CHECK(info.has_labels);
    for (int64_t s = 0; s < want.slices(); ++s, ++slice) {
      CHECK(std::memcmp(sc.images(slice), want.images.data() + s * 4 * px, 4 * px * sizeof(float)) == 0);
      const uint8_t* l = sc.labels(slice);
      CHECK(std::equal(l, l + px, want.labels.begin() + s * px));
    }
  }
  CHECK(slice == sc.slices());
  CHECK(sum.slices == sc.slices());
}

TEST_CASE("cache build: the file does not depend on the worker count", "[cache_build]") {
  const lk::test::TempDir dir;
  const std::string root = dir.file("brats");
  generate_synthetic_dataset(root, 5, 3, small_synth());
  PreprocessOptions po;
  po.size = 16;
  const std::string one = dir.file("t1.lkslc"), three = dir.file("t3.lkslc"), tight = dir.file("w1.lkslc");
  CHECK(build_slice_cache(one, root, po, quiet(1)).threads == 1);
  CHECK(build_slice_cache(three, root, po, quiet(3)).threads == 3);
  CacheBuildOptions b = quiet(3);
  b.window = 1;  // the workers take turns
  const CacheBuildSummary s = build_slice_cache(tight, root, po, b);
  CHECK(s.max_held == 1);
  const std::string bytes = read_all(one);
  CHECK(bytes.size() > 256);
  CHECK(read_all(three) == bytes);
  CHECK(read_all(tight) == bytes);
}

TEST_CASE("cache build: at most `window` cases are held, whatever the case count", "[cache_build]") {
  const size_t n = 24;
  std::atomic<int> alive{0}, max_alive{0};
  std::vector<size_t> order;
  PoolOptions opt;
  opt.threads = 3;
  opt.window = 4;
  auto produce = [&](size_t i) {
    const int a = ++alive;
    int m = max_alive.load();
    while (a > m && !max_alive.compare_exchange_weak(m, a)) {
    }
    PreprocessedCase c;
    c.id = std::to_string(i);
    c.images.assign(1024, static_cast<float>(i));
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (i % 3)));
    return c;
  };
  auto consume = [&](size_t i, PreprocessedCase&& c) {
    CHECK(c.id == std::to_string(i));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow writer: the queue would grow
    order.push_back(i);
    --alive;
  };
  const PoolStats st = run_in_order(n, opt, produce, consume);
  CHECK(st.threads == 3);
  CHECK(st.window == 4);
  CHECK(st.max_held <= 4);
  CHECK(st.max_held >= 2);
  CHECK(max_alive.load() <= 4);
  REQUIRE(order.size() == n);
  for (size_t i = 0; i < n; ++i) CHECK(order[i] == i);

  // The default window: threads + 2; never more threads than cases.
  opt.window = 0;
  CHECK(run_in_order(n, opt, produce, [&](size_t, PreprocessedCase&&) { --alive; }).window == 5);
  opt.threads = 8;
  CHECK(run_in_order(2, opt, produce, [&](size_t, PreprocessedCase&&) { --alive; }).threads == 2);

  // The real build reports the same bound.
  const lk::test::TempDir dir;
  generate_synthetic_dataset(dir.file("brats"), 6, 5, small_synth());
  PreprocessOptions po;
  po.size = 16;
  const CacheBuildSummary s = build_slice_cache(dir.file("c.lkslc"), dir.file("brats"), po, quiet(2));
  CHECK(s.window == 4);
  CHECK(s.max_held >= 1);
  CHECK(s.max_held <= s.window);
}

TEST_CASE("cache build: a failing case stops the pool, or with skip_bad is skipped in order", "[cache_build]") {
  PoolOptions opt;
  opt.threads = 3;
  auto produce = [](size_t i) {
    if (i == 5 || i == 7) throw std::runtime_error("case " + std::to_string(i) + " is bad");
    PreprocessedCase c;
    c.id = std::to_string(i);
    return c;
  };
  std::vector<size_t> got;
  CHECK_THROWS_WITH(run_in_order(12, opt, produce, [&](size_t i, PreprocessedCase&&) { got.push_back(i); }),
                    "case 5 is bad");
  CHECK(got == std::vector<size_t>{0, 1, 2, 3, 4});

  opt.skip_bad = true;
  got.clear();
  std::vector<std::pair<size_t, std::string>> skipped;
  run_in_order(
      12, opt, produce, [&](size_t i, PreprocessedCase&&) { got.push_back(i); },
      [&](size_t i, const std::string& why) { skipped.emplace_back(i, why); });
  CHECK(got.size() == 10);
  REQUIRE(skipped.size() == 2);
  CHECK(skipped[0] == std::make_pair(size_t{5}, std::string("case 5 is bad")));
  CHECK(skipped[1].first == 7);

  // An exception from the consumer (a write failure) stops the pool too.
  CHECK_THROWS_WITH(run_in_order(12, opt, produce,
                                 [&](size_t i, PreprocessedCase&&) {
                                   if (i == 3) throw std::runtime_error("disk full");
                                 }),
                    "disk full");
}

TEST_CASE("cache build: a cache of another format version is refused and rebuilt", "[cache_build]") {
  const lk::test::TempDir dir;
  const std::string root = dir.file("brats");
  generate_synthetic_dataset(root, 2, 7, small_synth());
  PreprocessOptions po;
  po.size = 16;
  const fs::path path = dir.path() / "v.lkslc";
  std::vector<std::string> log;
  CacheBuildOptions b = quiet(2);
  b.log = [&](const std::string& s) { log.push_back(s); };
  CacheBuildSummary sum;
  ensure_slice_cache(path.string(), root, po, b, &sum);
  CHECK(sum.built);
  const std::string good = read_all(path);

  for (uint32_t version : {2u, 4u}) {
    write_at(path, 8, &version, sizeof version);  // before the checksummed bytes
    CHECK_THROWS_WITH(open_slice_cache(path.string(), po),
                      Contains(path.string()) && Contains("stale: format version " + std::to_string(version)));
    log.clear();
    const SliceCache sc = ensure_slice_cache(path.string(), root, po, b, &sum);
    CHECK(sum.built);
    REQUIRE(!log.empty());
    CHECK_THAT(log.front(), Contains("building the slice cache") && Contains("version " + std::to_string(version)));
    CHECK(sc.num_cases() == 2);
    CHECK(read_all(path) == good);
  }

  // A valid cache is reused; --force rebuilds it.
  log.clear();
  ensure_slice_cache(path.string(), root, po, b, &sum);
  CHECK(!sum.built);
  CHECK(log.empty());
  CHECK(sum.cases == 2);
  CHECK(sum.bytes == good.size());
  b.force = true;
  ensure_slice_cache(path.string(), root, po, b, &sum);
  CHECK(sum.built);
  CHECK(sum.reason == "rebuild forced");
}

TEST_CASE("cache build: a write failure leaves no file behind and names the file", "[cache_build]") {
  const lk::test::TempDir dir;
  const std::string root = dir.file("brats");
  generate_synthetic_dataset(root, 3, 2, small_synth());
  PreprocessOptions po;
  po.size = 24;

  // A missing folder: the temporary file cannot be created.
  const std::string nowhere = dir.file("no/such/folder/c.lkslc");
  CHECK_THROWS_WITH(build_slice_cache(nowhere, root, po, quiet(2)),
                    Contains(nowhere) && Contains(std::strerror(ENOENT)));

  // The disk fills up in the middle of the images (a file size limit: EFBIG).
  const fs::path path = dir.path() / "full.lkslc";
  PreprocessOptions old = po;
  old.size = 8;
  build_slice_cache(path.string(), root, old, quiet(1));  // a previous cache, small
  const std::string before = read_all(path);
  REQUIRE(before.size() < 48 * 1024);
  {
    const FileSizeLimit limit(48 * 1024);
    CHECK_THROWS_WITH(build_slice_cache(path.string(), root, po, quiet(2)),
                      Contains(path.string()) && Contains(std::strerror(EFBIG)));
    CacheBuildOptions b = quiet(2);
    b.force = true;
    CHECK_THROWS_WITH(ensure_slice_cache(path.string(), root, po, b), Contains(path.string()) && Contains("write failed"));
    // The writer alone: add() of a case past the limit throws.
    const std::vector<PreprocessedCase> cases = load_preprocessed(root, po);
    CHECK_THROWS_WITH(write_slice_cache(path.string(), cases, po), Contains(path.string()) && Contains(std::strerror(EFBIG)));
  }
  CHECK(read_all(path) == before);  // the previous cache is untouched
  CHECK_NOTHROW(open_slice_cache(path.string(), old));
  CHECK(temp_files(dir.path()) == 0);

  // A bad case (no skip_bad) in the middle: the build fails naming it and
  // --skip-bad, but the other cases' work is kept (the bad one listed as
  // skipped), and a run with skip_bad reuses it without preprocessing again.
  const fs::path fresh = dir.path() / "fresh.lkslc";
  const std::string flair = root + "/BraTS2021_00001/BraTS2021_00001_flair.nii.gz";
  fs::resize_file(flair, fs::file_size(flair) / 2);
  CHECK_THROWS_WITH(build_slice_cache(fresh.string(), root, po, quiet(3)),
                    Contains(flair) && Contains("--skip-bad") && Contains("the other 2 are preprocessed and kept"));
  CHECK(temp_files(dir.path()) == 0);
  REQUIRE(fs::exists(fresh));
  {
    const SliceCache kept = open_slice_cache(fresh.string(), po);
    CHECK(kept.num_cases() == 2);
    REQUIRE(kept.skipped().size() == 1);
    CHECK(kept.skipped()[0].id == "BraTS2021_00001");
  }
  CacheBuildOptions skip = quiet(2);
  skip.skip_bad = true;
  CacheBuildSummary sum;
  CHECK(ensure_slice_cache(fresh.string(), root, po, skip, &sum).num_cases() == 2);
  CHECK_FALSE(sum.built);
}

TEST_CASE("cache build: skip_bad skips and lists bad cases, and the cache remembers them", "[cache_build]") {
  const lk::test::TempDir dir;
  const std::string root = dir.file("brats");
  generate_synthetic_dataset(root, 4, 9, small_synth());
  fs::remove(root + "/BraTS2021_00001/BraTS2021_00001_t2.nii.gz");  // bad at discovery
  const std::string flair = root + "/BraTS2021_00002/BraTS2021_00002_flair.nii.gz";
  fs::resize_file(flair, fs::file_size(flair) - 20);  // bad at loading (truncated gzip)
  PreprocessOptions po;
  po.size = 16;
  const std::string path = dir.file("skip.lkslc");

  CHECK_THROWS_WITH(build_slice_cache(path, root, po, quiet(2)), Contains("BraTS2021_00001"));
  CHECK(!fs::exists(path));

  std::vector<std::string> log;
  CacheBuildOptions b = quiet(2);
  b.skip_bad = true;
  b.log = [&](const std::string& s) { log.push_back(s); };
  CacheBuildSummary sum;
  {
    const SliceCache sc = ensure_slice_cache(path, root, po, b, &sum);
    CHECK(sum.built);
    CHECK(sum.cases == 2);
    REQUIRE(sum.skipped.size() == 2);
    CHECK(sum.skipped[0].id == "BraTS2021_00001");
    CHECK_THAT(sum.skipped[0].reason, Contains("t2"));
    CHECK(sum.skipped[1].id == "BraTS2021_00002");
    CHECK_THAT(sum.skipped[1].reason, Contains(flair));
    REQUIRE(sc.num_cases() == 2);
    CHECK(sc.case_info(0).id == "BraTS2021_00000");
    CHECK(sc.case_info(1).id == "BraTS2021_00003");
    REQUIRE(sc.skipped().size() == 2);
    CHECK(sc.skipped()[0].id == sum.skipped[0].id);
    CHECK(sc.skipped()[1].reason == sum.skipped[1].reason);
    int warnings = 0;
    for (const std::string& l : log) warnings += l.find("warning: skipping case") != std::string::npos;
    CHECK(warnings == 2);
    const std::vector<std::string> lines = format_cache_summary(sum);
    REQUIRE(lines.size() == 4);
    CHECK_THAT(lines[0], Contains("2 cases") && Contains("written"));
    CHECK_THAT(lines[1], Contains("skipped 2 cases"));
    CHECK_THAT(lines[2], Contains("BraTS2021_00001"));
  }
  // Reused as long as skipping is asked for: the skipped cases count as known.
  ensure_slice_cache(path, root, po, b, &sum);
  CHECK(!sum.built);
  CHECK(sum.skipped.size() == 2);
  CHECK_THAT(format_cache_summary(sum)[0], Contains("reused"));
  // Without skip_bad the bad cases are errors again.
  b.skip_bad = false;
  CHECK_THROWS_WITH(ensure_slice_cache(path, root, po, b, &sum), Contains("BraTS2021_00001"));
  // A cached case that turns bad: rebuilt.
  b.skip_bad = true;
  fs::remove(root + "/BraTS2021_00003/BraTS2021_00003_t1.nii.gz");
  CHECK(ensure_slice_cache(path, root, po, b, &sum).num_cases() == 1);
  CHECK(sum.built);
  CHECK_THAT(sum.reason, Contains("BraTS2021_00003") && Contains("bad now"));
  CHECK(sum.skipped.size() == 3);

  // Every case bad: an error naming the folder, no file.
  const std::string none = dir.file("none");
  generate_synthetic_dataset(none, 1, 9, small_synth());
  fs::resize_file(none + "/BraTS2021_00000/BraTS2021_00000_seg.nii.gz", 30);
  b.skip_bad = true;
  CHECK_THROWS_WITH(build_slice_cache(dir.file("none.lkslc"), none, po, b), Contains(none) && Contains("no usable case"));
  CHECK(!fs::exists(dir.file("none.lkslc")));
}

TEST_CASE("cache build: only the selected cases, reused only for the same selection", "[cache_build]") {
  const lk::test::TempDir dir;
  const std::string root = dir.file("brats");
  const auto infos = generate_synthetic_dataset(root, 4, 3, small_synth());
  PreprocessOptions po;
  po.size = 16;
  CacheBuildOptions b = quiet(2);
  b.only = {infos[3].id, infos[1].id};
  CacheBuildSummary s;
  const std::string path = dir.file("sel.lkslc");
  {
    const SliceCache sc = ensure_slice_cache(path, root, po, b, &s);
    CHECK(s.built);
    REQUIRE(sc.num_cases() == 2);
    CHECK(sc.case_info(0).id == infos[1].id);  // case order, not selection order
    CHECK(sc.case_info(1).id == infos[3].id);
  }
  ensure_slice_cache(path, root, po, b, &s);
  CHECK_FALSE(s.built);
  b.only = {infos[0].id, infos[1].id};
  ensure_slice_cache(path, root, po, b, &s);
  CHECK(s.built);
  CHECK_THAT(s.reason, Contains("other cases than the selection"));
  b.only = {"BraTS2021_99999"};
  CHECK_THROWS_WITH(ensure_slice_cache(path, root, po, b, &s), Contains("BraTS2021_99999 is not there"));
}

TEST_CASE("cache build: a changed case file is noticed, named, and only that case is preprocessed again",
          "[cache_build]") {
  const lk::test::TempDir dir;
  const std::string root = dir.file("brats"), other = dir.file("other");
  generate_synthetic_dataset(root, 3, 7, small_synth());
  generate_synthetic_dataset(other, 3, 8, small_synth());  // same ids, other content
  PreprocessOptions po;
  po.size = 16;
  const std::string path = dir.file("c.lkslc");
  std::vector<std::string> log;
  CacheBuildOptions b = quiet(2);
  b.log = [&](const std::string& s) { log.push_back(s); };
  CacheBuildSummary sum;
  ensure_slice_cache(path, root, po, b, &sum);
  REQUIRE(sum.built);
  REQUIRE(open_slice_cache(path, po).fingerprints().size() == 3);

  // The segmentation of case 1 replaced (size and time change): rebuilt,
  // naming the case and the file; the other two cases are copied over.
  const std::string seg = "/BraTS2021_00001/BraTS2021_00001_seg.nii.gz";
  fs::copy_file(other + seg, root + seg, fs::copy_options::overwrite_existing);
  log.clear();
  ensure_slice_cache(path, root, po, b, &sum);
  CHECK(sum.built);
  CHECK_THAT(sum.reason, Contains("case BraTS2021_00001") && Contains("BraTS2021_00001_seg.nii.gz") && Contains("changed"));
  bool reused = false;
  for (const std::string& l : log) reused = reused || l.find("reused 2 unchanged case(s)") != std::string::npos;
  CHECK(reused);
  // What the incremental rebuild wrote is what a build from scratch writes.
  const std::string scratch = dir.file("scratch.lkslc");
  build_slice_cache(scratch, root, po, quiet(1));
  CHECK(read_all(path) == read_all(scratch));
  // And it holds the new labels.
  const std::vector<PreprocessedCase> now = load_preprocessed(root, po);
  const SliceCache sc = open_slice_cache(path, po);
  const PreprocessedCase cached = sc.load_case(1);
  CHECK(cached.labels == now[1].labels);

  // The same size and modification time, other bytes (the gzip trailer: the
  // CRC of the uncompressed data): the content hash notices, and the case
  // (now corrupt) is read again and fails instead of being reused.
  ensure_slice_cache(path, root, po, b, &sum);
  REQUIRE_FALSE(sum.built);
  const std::string t2 = root + "/BraTS2021_00002/BraTS2021_00002_t2.nii.gz";
  const auto when = fs::last_write_time(t2);
  const uint32_t garbage = 0x12345678;
  write_at(t2, static_cast<std::streamoff>(fs::file_size(t2) - 8), &garbage, sizeof garbage);
  fs::last_write_time(t2, when);
  log.clear();
  CHECK_THROWS_WITH(ensure_slice_cache(path, root, po, b, &sum), Contains(t2) && Contains("--skip-bad"));
  REQUIRE_FALSE(log.empty());
  CHECK_THAT(log.front(), Contains("BraTS2021_00002_t2.nii.gz: content changed"));
}

TEST_CASE("cache build: a file that is not a slice cache is never overwritten", "[cache_build]") {
  const lk::test::TempDir dir;
  const std::string root = dir.file("brats");
  generate_synthetic_dataset(root, 2, 7, small_synth());
  PreprocessOptions po;
  po.size = 16;
  // Arguments swapped by mistake: --cache names a case file.
  const std::string victim = root + "/BraTS2021_00000/BraTS2021_00000_flair.nii.gz";
  const std::string before = read_all(victim);
  CHECK_FALSE(is_slice_cache_file(victim));
  CHECK_THROWS_WITH(ensure_slice_cache(victim, root, po, quiet(2)),
                    Contains(victim) && Contains("is not a slice cache") && Contains("not overwriting"));
  CHECK_THROWS_WITH(build_slice_cache(victim, root, po, quiet(2)), Contains("not overwriting"));
  CHECK(read_all(victim) == before);
  // An empty file, or a damaged cache (its magic intact), is ours to replace.
  const std::string empty = dir.file("empty.lkslc");
  std::ofstream(empty).close();
  CHECK(is_slice_cache_file(empty));
  CHECK(ensure_slice_cache(empty, root, po, quiet(2)).num_cases() == 2);
  fs::resize_file(empty, 300);
  CHECK(is_slice_cache_file(empty));
  CHECK(ensure_slice_cache(empty, root, po, quiet(2)).num_cases() == 2);
}
