// Post-processing rules (train/postprocess.h): each kind on each target,
// the label removed voxels take, and the rules file read back.
#include <catch2/catch.hpp>

#include <fstream>

#include "tests/support/nifti_craft.h"
#include "train/postprocess.h"

using namespace lk::train;

namespace {

const std::array<int64_t, 3> kDims{10, 6, 4};
const std::array<double, 3> kSpacing{1.0, 1.0, 2.0};  // 2 mm3 per voxel

size_t at(int64_t x, int64_t y, int64_t z) { return static_cast<size_t>(x + kDims[0] * (y + kDims[1] * z)); }

// A tumour block (ED around NCR and ET) at x 0..4, a far ED island at x 8..9 (4 voxels), an ET speck at (3, 5, 3).
std::vector<uint8_t> scene() {
  std::vector<uint8_t> v(static_cast<size_t>(kDims[0] * kDims[1] * kDims[2]), 0);
  for (int64_t z = 0; z < 3; ++z)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 5; ++x) v[at(x, y, z)] = 2;
  v[at(1, 1, 1)] = 1;
  v[at(2, 1, 1)] = 4;
  v[at(2, 2, 1)] = 4;
  for (int64_t y = 0; y < 2; ++y)
    for (int64_t x = 8; x < 10; ++x) v[at(x, y, 0)] = 2;
  v[at(3, 5, 3)] = 4;  // touches nothing: (3, 3, 2) is the nearest tumour voxel, 2 away in y
  return v;
}

int64_t count(const std::vector<uint8_t>& v, uint8_t l) { return std::count(v.begin(), v.end(), l); }

}  // namespace

TEST_CASE("postprocess: largest component per target, removed voxels take the target's fill", "[postprocess]") {
  SECTION("WT: islands become background") {
    std::vector<uint8_t> v = scene();
    CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::WT, PpKind::LargestComponent}) == 5);
    CHECK(v[at(8, 0, 0)] == 0);
    CHECK(v[at(3, 5, 3)] == 0);
    CHECK(v[at(2, 1, 1)] == 4);  // the tumour stays whole
  }
  SECTION("TC: the ET speck is a TC island and becomes ED; ET region: ET islands become NCR") {
    std::vector<uint8_t> v = scene();
    CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::TC, PpKind::LargestComponent}) == 1);
    CHECK(v[at(3, 5, 3)] == 2);
    v = scene();
    CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::ET, PpKind::LargestComponent}) == 1);
    CHECK(v[at(3, 5, 3)] == 1);
    CHECK(v[at(2, 2, 1)] == 4);
  }
  SECTION("labels: removed voxels become background") {
    std::vector<uint8_t> v = scene();
    CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::LabelED, PpKind::LargestComponent}) == 4);
    CHECK(v[at(9, 1, 0)] == 0);
    CHECK(count(v, 2) == 57);
  }
  SECTION("an empty target changes nothing") {
    std::vector<uint8_t> v(static_cast<size_t>(kDims[0] * kDims[1] * kDims[2]), 2);
    CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::LabelNCR, PpKind::LargestComponent}) == 0);
  }
}

TEST_CASE("postprocess: minimum component volume in mm3 and ET relabelled below a volume", "[postprocess]") {
  std::vector<uint8_t> v = scene();
  // The ED island is 4 voxels = 8 mm3: kept at 8, removed at 8.5.
  CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::LabelED, PpKind::MinComponent, 8}) == 0);
  CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::LabelED, PpKind::MinComponent, 8.5}) == 4);
  // ET: 3 voxels = 6 mm3 in all. Below 6: nothing; below 7: every ET voxel becomes NCR.
  v = scene();
  CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::ET, PpKind::RelabelBelow, 6}) == 0);
  CHECK(apply_rule(v, kDims, kSpacing, {PpTarget::ET, PpKind::RelabelBelow, 7}) == 3);
  CHECK(count(v, 4) == 0);
  CHECK(count(v, 1) == 4);
  // Rules apply in order.
  v = scene();
  const Postprocessing p{{{PpTarget::WT, PpKind::LargestComponent}, {PpTarget::ET, PpKind::RelabelBelow, 5}}};
  CHECK(apply_postprocessing(v, kDims, kSpacing, p) == 5 + 2);
  CHECK(count(v, 4) == 0);
}

TEST_CASE("postprocess: keep_labels puts back the largest component of a label the rules emptied", "[postprocess]") {
  // ET: the 2-voxel block in the tumour and the speck. WT largest component
  // takes the speck, "ET below 7 mm3 relabelled" the block: no ET left.
  Postprocessing p{{{PpTarget::WT, PpKind::LargestComponent}, {PpTarget::ET, PpKind::RelabelBelow, 7}}};
  std::vector<uint8_t> v = scene();
  CHECK(apply_postprocessing(v, kDims, kSpacing, p) == 5 + 2);
  CHECK(count(v, 4) == 0);
  p.keep_labels = true;
  v = scene();
  CHECK(apply_postprocessing(v, kDims, kSpacing, p) == 5);  // the speck and the ED island; the block is back
  CHECK(count(v, 4) == 2);
  CHECK(v[at(2, 1, 1)] == 4);
  CHECK(v[at(2, 2, 1)] == 4);
  CHECK(v[at(3, 5, 3)] == 0);
  CHECK(count(v, 2) == 57);  // ED still held: its removed island stays removed
  // A label the prediction did not hold is not made.
  std::vector<uint8_t> e = scene();
  std::replace(e.begin(), e.end(), uint8_t{1}, uint8_t{2});
  REQUIRE(count(e, 1) == 0);
  CHECK(apply_postprocessing(e, kDims, kSpacing, p) == 5);
  CHECK(count(e, 1) == 0);
}

TEST_CASE("postprocess: the rules file round-trips, a bad one names the file and the problem", "[postprocess]") {
  lk::test::TempDir dir;
  const Postprocessing p{{{PpTarget::WT, PpKind::LargestComponent},
                          {PpTarget::LabelED, PpKind::MinComponent, 100},
                          {PpTarget::ET, PpKind::RelabelBelow, 500}}};
  const std::string path = dir.file("pp.json");
  std::ofstream(path) << postprocessing_json(p, R"({"note": "kept"})");
  const Postprocessing q = read_postprocessing(path);
  CHECK_FALSE(q.keep_labels);
  Postprocessing k = p;
  k.keep_labels = true;
  std::ofstream(dir.file("keep.json")) << postprocessing_json(k);
  CHECK(read_postprocessing(dir.file("keep.json")).keep_labels);
  // Files written before keep_labels read as without it; a value not true or false is refused.
  std::ofstream(dir.file("old.json")) << R"({"format": "lkaseg-postprocessing-1", "rules": []})";
  CHECK_FALSE(read_postprocessing(dir.file("old.json")).keep_labels);
  std::ofstream(dir.file("odd.json")) << R"({"format": "lkaseg-postprocessing-1", "rules": [], "keep_labels": "yes"})";
  CHECK_THROWS_WITH(read_postprocessing(dir.file("odd.json")), Catch::Contains("odd.json") && Catch::Contains("keep_labels"));
  REQUIRE(q.rules.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(q.rules[i].target == p.rules[i].target);
    CHECK(q.rules[i].kind == p.rules[i].kind);
    CHECK(q.rules[i].mm3 == p.rules[i].mm3);
  }
  CHECK(q.rules[1].str() == "label ED: min_component < 100 mm3");
  std::ofstream(dir.file("bad.json")) << R"({"format": "lkaseg-postprocessing-1", "rules": [{"target": "XX", "rule": "largest_component"}]})";
  CHECK_THROWS_WITH(read_postprocessing(dir.file("bad.json")), Catch::Contains("bad.json") && Catch::Contains("unknown target 'XX'"));
  std::ofstream(dir.file("neg.json")) << R"({"format": "lkaseg-postprocessing-1", "rules": [{"target": "WT", "rule": "min_component", "mm3": -1}]})";
  CHECK_THROWS_WITH(read_postprocessing(dir.file("neg.json")), Catch::Contains("mm3 must be a positive number"));
  std::ofstream(dir.file("other.json")) << R"({"rules": []})";
  CHECK_THROWS_WITH(read_postprocessing(dir.file("other.json")), Catch::Contains("not an lkaseg post-processing file"));
  CHECK_THROWS_WITH(read_postprocessing(dir.file("absent.json")), Catch::Contains("absent.json"));
}
