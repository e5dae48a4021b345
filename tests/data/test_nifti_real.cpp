// The six real BraTS 2021 cases (../shared/data/brats2021): every file reads,
// with the geometry, label sets, scaling and header extensions documented in
// shared/data/README.md. Numbers cross-checked against nibabel.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "data/nifti_read.h"
#include "tests/support/shared_data.h"

namespace {

using namespace lk;
using namespace lk::data;

struct RealCase {
  std::string id;
  std::set<int> labels;
  std::map<int, int64_t> label_counts;  // the voxel counts the README quotes
};

const std::vector<RealCase> kCases = {
    {"BraTS2021_00006", {0, 1, 2, 4}, {}},
    {"BraTS2021_01476", {0, 1, 2, 4}, {{4, 224}}},
    {"BraTS2021_01477", {0, 1, 2}, {}},
    {"BraTS2021_01478", {0, 1, 2, 4}, {{4, 1276}}},
    {"BraTS2021_01479", {0, 1, 2, 4}, {{2, 7407}}},
    {"BraTS2021_01480", {0, 1, 2}, {}},
};

// BraTS' affine: x and y flipped, y offset 239 (the published headers).
const Affine kBratsAffine{{{-1, 0, 0, 0}, {0, -1, 0, 239}, {0, 0, 1, 0}, {0, 0, 0, 1}}};

}  // namespace

TEST_CASE("nifti real: the six BraTS 2021 cases read with the documented properties", "[nifti][real]") {
  const auto root = test::brats2021_dir();
  CHECK_FALSE(root.empty());  // runs either way, so this test can always fail
  if (!test::have_brats2021()) {
    WARN("SKIPPED: the real BraTS cases are absent (" << root.string() << ")");
    return;
  }
  for (const RealCase& c : kCases) {
    for (const char* mod : {"flair", "t1", "t1ce", "t2", "seg"}) {
      const std::string path = (root / c.id / (c.id + "_" + mod + ".nii.gz")).string();
      INFO(path);
      const Volume v = read_nifti(path);
      CHECK(v.geom.dims == std::array<int64_t, 3>{240, 240, 155});
      CHECK(v.geom.spacing == std::array<double, 3>{1, 1, 1});
      CHECK(affine_max_diff(v.geom.affine, kBratsAffine) < 1e-6);
      CHECK(v.storage.version == 1);
      CHECK(v.storage.gzipped);
      const bool seg = std::string(mod) == "seg";
      CHECK(v.storage.datatype == (seg ? 2 : 4));  // uint8 labels, int16 images
      if (seg) {
        std::map<int, int64_t> counts;
        for (float x : v.data) counts[static_cast<int>(x)] += 1;
        std::set<int> present;
        for (const auto& [label, n] : counts) present.insert(label);
        CHECK(present == c.labels);
        for (const auto& [label, n] : c.label_counts) CHECK(counts[label] == n);
      } else {
        float lo = 0, hi = 0;
        for (float x : v.data) lo = std::min(lo, x), hi = std::max(hi, x);
        CHECK(lo == 0.0f);
        CHECK(hi > 100.0f);
      }
    }
  }
}

TEST_CASE("nifti real: scl_slope 0 and header extensions (vox_offset > 352)", "[nifti][real]") {
  const auto root = test::brats2021_dir();
  CHECK_FALSE(root.empty());
  if (!test::have_brats2021()) {
    WARN("SKIPPED: the real BraTS cases are absent (" << root.string() << ")");
    return;
  }
  // 01476's seg: an extension (vox_offset 2592) and scl_slope 0 ("no scaling").
  const Volume seg = read_nifti((root / "BraTS2021_01476" / "BraTS2021_01476_seg.nii.gz").string());
  CHECK(seg.storage.scl_slope == 0.0);
  CHECK(seg.storage.vox_offset == 2592);
  CHECK(seg.storage.num_extensions >= 1);
  int64_t et = 0;
  for (float x : seg.data) et += x == 4.0f;
  CHECK(et == 224);  // unscaled labels, read from the right offset

  // 00006: plain headers.
  const Volume plain = read_nifti((root / "BraTS2021_00006" / "BraTS2021_00006_t1.nii.gz").string());
  CHECK(plain.storage.vox_offset == 352);
  CHECK(plain.storage.num_extensions == 0);
  CHECK(plain.storage.scl_slope == 1.0);

  // 01477: every file has an extension, vox_offset 2976..4576.
  for (const char* mod : {"flair", "t1", "t1ce", "t2", "seg"}) {
    const Volume v = read_nifti((root / "BraTS2021_01477" / (std::string("BraTS2021_01477_") + mod + ".nii.gz")).string());
    INFO(mod);
    CHECK(v.storage.vox_offset >= 2976);
    CHECK(v.storage.vox_offset <= 4576);
    CHECK(v.storage.num_extensions >= 1);
  }
}
