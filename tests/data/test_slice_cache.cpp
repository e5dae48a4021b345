// The slice cache (data/slice_cache.h): bit-exact round trip, refusal of
// stale, truncated and corrupt files, and ensure_slice_cache rebuilding.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/slice_cache.h"
#include "data/synth.h"
#include "tests/support/slice_dataset.h"

using namespace lk::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("lkaseg_test_slice_cache_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

SynthOptions small_synth() {
  SynthOptions o;
  o.dims = {40, 36, 12};
  o.spacing = 1.0;
  return o;
}

PreprocessedCase synth_case(int index, const PreprocessOptions& po) {
  const SynthCase s = make_synthetic_case(42, index, small_synth());
  BratsCaseData c;
  c.source.id = s.info.id;
  c.geom = s.geom;
  for (int m = 0; m < kBratsChannels; ++m) c.images[m].assign(s.images[m].begin(), s.images[m].end());
  c.labels = s.labels;
  return preprocess_case(c, po);
}

// A crafted case without labels, with an id whose length is not a multiple of 8.
PreprocessedCase unlabelled(int64_t size) {
  PreprocessedCase p;
  p.id = "odd-id_123";
  p.geom.dims = {9, 8, 7};
  p.geom.spacing = {0.5, 1.5, 2.5};
  p.geom.affine[0][3] = -12.25;
  p.box.lo = {1, 2, 3};
  p.box.hi = {8, 7, 6};
  p.z = {3, 5};
  p.size = size;
  for (int64_t i = 0; i < 2 * 4 * size * size; ++i) p.images.push_back(static_cast<float>(i) * 0.37f - 5.f);
  return p;
}

void flip_byte(const fs::path& p, std::streamoff at) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  f.seekp(at);
  f.write(&c, 1);
}

// Removes this process's temporary folder when a test ends.
struct CleanUp {
  ~CleanUp() {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir(), ec);
  }
};

}  // namespace

TEST_CASE("slice cache round trip is bit-exact", "[data]") {
  const CleanUp cleanup;
  PreprocessOptions po;
  po.size = 24;
  const std::vector<PreprocessedCase> cases = {synth_case(0, po), unlabelled(24), synth_case(1, po)};
  const std::string path = (temp_dir() / "roundtrip.lkslc").string();
  write_slice_cache(path, cases, po);
  const SliceCache sc = open_slice_cache(path, po);
  REQUIRE(sc.num_cases() == 3);
  CHECK(sc.side() == 24);
  int64_t total = 0;
  for (const auto& c : cases) total += c.slices();
  REQUIRE(sc.slices() == total);
  for (int64_t k = 0; k < 3; ++k) {
    const PreprocessedCase& want = cases[static_cast<size_t>(k)];
    const PreprocessedCase got = sc.load_case(k);
    CHECK(got.id == want.id);
    CHECK(got.geom.dims == want.geom.dims);
    CHECK(got.geom.spacing == want.geom.spacing);
    CHECK(got.geom.affine == want.geom.affine);
    CHECK(got.box.lo == want.box.lo);
    CHECK(got.box.hi == want.box.hi);
    CHECK(got.z == want.z);
    CHECK(got.size == want.size);
    REQUIRE(got.images.size() == want.images.size());
    CHECK(std::memcmp(got.images.data(), want.images.data(), want.images.size() * sizeof(float)) == 0);
    CHECK(got.labels == want.labels);
    CHECK(sc.case_info(k).has_labels == !want.labels.empty());
    // The geometry view is enough to map predictions back.
    if (!want.labels.empty()) CHECK(map_back_labels(sc.geometry_view(k), want.labels) == map_back_labels(want, want.labels));
  }
  const CachedCase& c2 = sc.case_info(2);
  CHECK(sc.case_of_slice(c2.first_slice) == 2);
  CHECK(sc.case_of_slice(c2.first_slice - 1) == 1);
  CHECK(sc.slices_of({cases[2].id}).size() == static_cast<size_t>(cases[2].slices()));
  CHECK_THROWS_WITH(sc.slices_of({"nope"}), Contains("nope"));

  // Batches and SliceDataset agree with the in-memory path.
  SliceDataset mem, fromcache;
  mem.add(cases[0]);
  mem.add(cases[2]);
  fill_from_cache(fromcache, sc);
  REQUIRE(fromcache.size() == mem.size());
  const std::vector<int64_t> pick = {0, mem.size() - 1, 3};
  const Batch a = mem.batch(pick), b = fromcache.batch(pick);
  CHECK(std::memcmp(a.images.data<float>(), b.images.data<float>(), a.images.nbytes()) == 0);
  CHECK(std::memcmp(a.labels.data<int32_t>(), b.labels.data<int32_t>(), a.labels.nbytes()) == 0);
  const std::vector<int64_t> direct = {sc.slices_of({cases[0].id})[0], sc.slices_of({cases[2].id}).back()};
  const Batch d = sc.batch(direct);
  CHECK(std::memcmp(d.images.data<float>(), mem.batch({0, mem.size() - 1}).images.data<float>(), d.images.nbytes()) == 0);
  CHECK(std::memcmp(d.labels.data<int32_t>(), mem.batch({0, mem.size() - 1}).labels.data<int32_t>(), d.labels.nbytes()) == 0);
  CHECK(!sc.tumour_slices().empty());
}

TEST_CASE("slice cache refuses stale, truncated and corrupt files", "[data]") {
  const CleanUp cleanup;
  PreprocessOptions po;
  po.size = 16;
  const std::vector<PreprocessedCase> cases = {synth_case(2, po), unlabelled(16)};
  const fs::path path = temp_dir() / "refuse.lkslc";
  write_slice_cache(path.string(), cases, po);
  REQUIRE_NOTHROW(open_slice_cache(path.string(), po));

  PreprocessOptions other = po;
  other.clip_hi = 99.0;
  CHECK_THROWS_WITH(open_slice_cache(path.string(), other), Contains(path.string()) && Contains("stale"));
  other = po;
  other.size = 32;
  CHECK_THROWS_WITH(open_slice_cache(path.string(), other), Contains("stale"));
  other = po;
  other.clahe = true;
  CHECK_THROWS_WITH(open_slice_cache(path.string(), other), Contains("stale") && Contains("no CLAHE, wanted"));
  other.clahe = false;
  other.clahe_clip = 3.0;  // ignored without CLAHE
  CHECK_NOTHROW(open_slice_cache(path.string(), other));
  {
    PreprocessOptions cl = po;
    cl.clahe = true;
    cl.clahe_tiles = 4;
    const fs::path cpath = temp_dir() / "clahe.lkslc";
    write_slice_cache(cpath.string(), cases, cl);
    const SliceCache sc = open_slice_cache(cpath.string(), cl);
    CHECK(sc.options().clahe);
    PreprocessOptions other_tiles = cl;
    other_tiles.clahe_tiles = 8;
    CHECK_THROWS_WITH(open_slice_cache(cpath.string(), other_tiles), Contains("CLAHE (clip 2, 4x4 tiles), wanted"));
    PreprocessOptions other_clip = cl;
    other_clip.clahe_clip = 3.0;
    CHECK_THROWS_WITH(open_slice_cache(cpath.string(), other_clip), Contains("stale"));
  }

  const auto full = fs::file_size(path);
  const fs::path cut = temp_dir() / "cut.lkslc";
  fs::copy_file(path, cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, full - 7);
  CHECK_THROWS_WITH(open_slice_cache(cut.string(), po), Contains(cut.string()) && Contains("truncated"));
  fs::resize_file(cut, 100);
  CHECK_THROWS_WITH(open_slice_cache(cut.string(), po), Contains("truncated"));
  fs::resize_file(cut, 0);
  CHECK_THROWS_WITH(open_slice_cache(cut.string(), po), Contains("truncated"));

  // One flipped byte anywhere after the checksum: images, labels, records, header.
  for (std::streamoff at : {static_cast<std::streamoff>(full / 2), static_cast<std::streamoff>(full - 1),
                            std::streamoff{300}, std::streamoff{60}}) {
    const fs::path bad = temp_dir() / "flipped.lkslc";
    fs::copy_file(path, bad, fs::copy_options::overwrite_existing);
    flip_byte(bad, at);
    INFO("byte " << at);
    CHECK_THROWS_AS(open_slice_cache(bad.string(), po), SliceCacheError);
    if (at != 60) CHECK_THROWS_WITH(open_slice_cache(bad.string(), po), Contains("checksum"));
  }
  // Bad magic, other version.
  const fs::path bad = temp_dir() / "magic.lkslc";
  fs::copy_file(path, bad, fs::copy_options::overwrite_existing);
  flip_byte(bad, 0);
  CHECK_THROWS_WITH(open_slice_cache(bad.string(), po), Contains("magic"));
  fs::copy_file(path, bad, fs::copy_options::overwrite_existing);
  flip_byte(bad, 8);
  CHECK_THROWS_WITH(open_slice_cache(bad.string(), po), Contains("version"));
  CHECK_THROWS_WITH(open_slice_cache((temp_dir() / "absent.lkslc").string(), po), Contains("cannot open"));

  // A bad case refuses to write and leaves the previous file in place.
  std::vector<PreprocessedCase> wrong = cases;
  wrong[0].labels[0] = 7;
  CHECK_THROWS_WITH(write_slice_cache(path.string(), wrong, po), Contains("outside 0..3"));
  CHECK_NOTHROW(open_slice_cache(path.string(), po));
  int files = 0;
  for (const auto& e : fs::directory_iterator(temp_dir())) files += e.path().filename().string().find(".tmp.") != std::string::npos;
  CHECK(files == 0);
}

TEST_CASE("ensure_slice_cache builds, reuses and rebuilds", "[data]") {
  const CleanUp cleanup;
  const fs::path root = temp_dir() / "brats";
  fs::remove_all(root);
  generate_synthetic_dataset(root.string(), 2, 7, small_synth());
  const std::string path = (temp_dir() / "ensure.lkslc").string();
  fs::remove(path);
  PreprocessOptions po;
  po.size = 16;
  std::vector<std::string> log;
  auto logger = [&](const std::string& s) { log.push_back(s); };
  auto built = [&] {
    for (const auto& l : log)
      if (l.rfind("building the slice cache", 0) == 0) return true;
    return false;
  };

  int64_t slices = 0;
  {
    const SliceCache sc = ensure_slice_cache(path, root.string(), po, logger);
    CHECK(built());
    CHECK(sc.num_cases() == 2);
    slices = sc.slices();
  }
  log.clear();
  CHECK(ensure_slice_cache(path, root.string(), po, logger).slices() == slices);
  CHECK(!built());

  flip_byte(path, static_cast<std::streamoff>(fs::file_size(path) / 2));
  log.clear();
  CHECK(ensure_slice_cache(path, root.string(), po, logger).slices() == slices);
  REQUIRE(built());
  CHECK_THAT(log.front(), Contains("checksum"));
  CHECK_NOTHROW(open_slice_cache(path, po));

  log.clear();
  PreprocessOptions other = po;
  other.size = 20;
  CHECK(ensure_slice_cache(path, root.string(), other, logger).side() == 20);
  CHECK(built());
  CHECK_THAT(log.front(), Contains("stale"));

  // A third case appears: the cache no longer matches the folder.
  generate_synthetic_dataset(root.string(), 3, 7, small_synth());
  log.clear();
  CHECK(ensure_slice_cache(path, root.string(), other, logger).num_cases() == 3);
  CHECK(built());
}
