// Preprocessing (data/preprocess.h): label mapping, crop, normalisation,
// resize and the way back to the original grid, on crafted, synthetic and
// (when present) real BraTS cases.
#include <catch2/catch.hpp>
#include <cmath>
#include <set>

#include <algorithm>

#include "data/brats_cases.h"
#include "data/clahe.h"
#include "data/preprocess.h"
#include "data/synth.h"
#include "tests/support/shared_data.h"

using namespace lk::data;
using Catch::Matchers::Contains;

namespace {

BratsCaseData from_synth(const SynthCase& s) {
  BratsCaseData c;
  c.source.id = s.info.id;
  c.source.dir = "synthetic/" + s.info.id;
  c.geom = s.geom;
  for (int m = 0; m < kBratsChannels; ++m) c.images[m].assign(s.images[m].begin(), s.images[m].end());
  c.labels = s.labels;
  return c;
}

// A small case: a 20x14x6 box of "brain" in a 40x30x10 volume, with a
// labelled block inside it.
BratsCaseData crafted() {
  BratsCaseData c;
  c.source.id = "crafted";
  c.geom.dims = {40, 30, 10};
  const int64_t n = c.geom.numel();
  for (auto& img : c.images) img.assign(static_cast<size_t>(n), 0.f);
  c.labels.assign(static_cast<size_t>(n), 0);
  for (int64_t z = 2; z < 8; ++z)
    for (int64_t y = 5; y < 19; ++y)
      for (int64_t x = 10; x < 30; ++x) {
        const int64_t i = c.geom.index(x, y, z);
        for (int m = 0; m < kBratsChannels; ++m) c.images[m][i] = static_cast<float>(100 + m * 10 + x + 2 * y + z);  // smooth: survives interpolation
        if (x >= 14 && x < 20 && y >= 8 && y < 12) c.labels[i] = (x < 16) ? 1 : (x < 18 ? 4 : 2);
      }
  return c;
}

}  // namespace

TEST_CASE("BraTS labels map to the training classes and back", "[data]") {
  CHECK(brats_label_to_class(0) == 0);
  CHECK(brats_label_to_class(4) == 1);  // ET
  CHECK(brats_label_to_class(2) == 2);  // ED
  CHECK(brats_label_to_class(1) == 3);  // NCR
  for (int l : {0, 1, 2, 4}) CHECK(brats_class_to_label(brats_label_to_class(l)) == l);
  CHECK_THROWS_WITH(brats_label_to_class(3), Contains("3"));
  CHECK_THROWS(brats_class_to_label(4));
}

TEST_CASE("crop, normalise, resize, and map labels back exactly inside the crop", "[data]") {
  const BratsCaseData c = crafted();
  const CropBox box = nonzero_box(c);
  CHECK(box.lo == std::array<int64_t, 3>{10, 5, 2});
  CHECK(box.hi == std::array<int64_t, 3>{30, 19, 8});

  PreprocessOptions o;
  o.size = 64;  // larger than the crop: nearest upsampling is invertible
  const PreprocessedCase p = preprocess_case(c, o);
  REQUIRE(p.slices() == 6);
  REQUIRE(p.images.size() == size_t(6 * 4 * 64 * 64));
  REQUIRE(p.labels.size() == size_t(6 * 64 * 64));
  // Every pixel of the crop is brain here, so each modality is z-scored:
  // mean ~0 and std ~1 after a smooth resize.
  for (int m = 0; m < kBratsChannels; ++m) {
    double s = 0, ss = 0, n = 0;
    for (int64_t k = 0; k < 6; ++k)
      for (int64_t i = 0; i < 64 * 64; ++i) {
        const double v = p.images[size_t((k * 4 + m) * 64 * 64 + i)];
        s += v, ss += v * v, n += 1;
      }
    CHECK(std::abs(s / n) < 0.05);
    CHECK(std::sqrt(ss / n) == Approx(1.0).epsilon(0.1));
  }
  const std::set<int32_t> classes(p.labels.begin(), p.labels.end());
  CHECK(classes == std::set<int32_t>{0, 1, 2, 3});
  const std::vector<uint8_t> back = map_back_labels(p, p.labels);
  CHECK(back == c.labels);  // equal everywhere: the labels all lie inside the crop
  CHECK_THROWS_WITH(map_back_labels(p, {1, 2}), Contains("2 values"));
}

TEST_CASE("a synthetic case preprocesses to 128x128 slices with all classes", "[data]") {
  SynthOptions so;
  so.dims = {96, 96, 48};
  const BratsCaseData c = from_synth(make_synthetic_case(42, 0, so));
  const PreprocessedCase p = preprocess_case(c);
  CHECK(p.size == 128);
  CHECK(p.slices() > 10);
  CHECK(p.slices() <= p.box.extent(2));
  bool finite = true;
  for (float v : p.images) finite = finite && std::isfinite(v);
  CHECK(finite);
  std::set<int32_t> classes(p.labels.begin(), p.labels.end());
  CHECK(classes.count(0) == 1);
  CHECK(classes.count(2) == 1);  // every synthetic tumour has edema
  // Mapped back, the tumour lands where it was (nearest resampling of a
  // smaller crop: equal except at label boundaries).
  const std::vector<uint8_t> back = map_back_labels(p, p.labels);
  int64_t same = 0, tumour = 0;
  for (size_t i = 0; i < back.size(); ++i)
    if (c.labels[i] != 0) tumour += 1, same += back[i] == c.labels[i];
  CHECK(tumour > 0);
  CHECK(double(same) / double(tumour) > 0.97);
}

TEST_CASE("CLAHE in preprocessing: per slice and modality, background, mean and std kept", "[data]") {
  SynthOptions so;
  so.dims = {80, 80, 24};
  const BratsCaseData c = from_synth(make_synthetic_case(42, 1, so));
  PreprocessOptions po;
  po.size = 64;
  const PreprocessedCase plain = preprocess_case(c, po);
  po.clahe = true;
  const PreprocessedCase eq = preprocess_case(c, po);
  REQUIRE(eq.z == plain.z);
  REQUIRE(eq.labels == plain.labels);
  REQUIRE(eq.images.size() == plain.images.size());
  const size_t px = 64 * 64;
  int64_t changed = 0, mask_differs = 0;
  for (size_t plane = 0; plane < plain.images.size() / px; ++plane) {
    const float* a = plain.images.data() + plane * px;
    const float* b = eq.images.data() + plane * px;
    double sa = 0, sb = 0, qa = 0, qb = 0, n = 0;
    for (size_t i = 0; i < px; ++i) {
      mask_differs += (a[i] == 0.f) != (b[i] == 0.f);
      changed += a[i] != b[i];
      if (a[i] != 0.f) n += 1, sa += a[i], sb += b[i], qa += double(a[i]) * a[i], qb += double(b[i]) * b[i];
    }
    if (n < 2) continue;
    CHECK(sb / n == Approx(sa / n).margin(1e-3));
    CHECK(qb / n - (sb / n) * (sb / n) == Approx(qa / n - (sa / n) * (sa / n)).epsilon(1e-3).margin(1e-3));
  }
  CHECK(mask_differs == 0);
  CHECK(changed > static_cast<int64_t>(plain.images.size() / 4));  // it did something
  // Each plane is clahe_slice of the plain one.
  std::vector<float> one(plain.images.begin() + 5 * px, plain.images.begin() + 6 * px);
  clahe_slice(one.data(), 64, 64);
  CHECK(std::equal(one.begin(), one.end(), eq.images.begin() + 5 * px));
  po.clahe_tiles = 65;
  CHECK_THROWS_WITH(preprocess_case(c, po), Contains("CLAHE needs"));
}

TEST_CASE("a real BraTS case preprocesses and maps back", "[data][real]") {
  CHECK(!lk::test::brats2021_dir().empty());
  if (!lk::test::have_brats2021()) {
    WARN("../shared/data/brats2021 absent: skipping the real case");
    return;
  }
  const BratsDataset ds = discover_brats_cases(lk::test::brats2021_dir().string());
  const BratsCaseData c = load_brats_case(ds.cases.front());  // BraTS2021_00006
  const PreprocessedCase p = preprocess_case(c);
  CHECK(p.box.extent(0) < 240);
  CHECK(p.box.extent(1) < 240);
  CHECK(p.slices() > 100);
  const std::set<int32_t> classes(p.labels.begin(), p.labels.end());
  CHECK(classes == std::set<int32_t>{0, 1, 2, 3});
  const std::vector<uint8_t> back = map_back_labels(p, p.labels);
  int64_t same = 0, tumour = 0;
  for (size_t i = 0; i < back.size(); ++i)
    if (c.labels[i] != 0) tumour += 1, same += back[i] == c.labels[i];
  INFO("tumour voxels " << tumour << ", recovered " << same);
  CHECK(double(same) / double(tumour) > 0.9);  // the crop is larger than 128: some loss at borders
}
