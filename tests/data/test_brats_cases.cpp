// BraTS case discovery and loading: 2021 and 2023 naming, channel order,
// ET 3 → 4 for 2023, and every bad-case check (missing modality, shape,
// affine, NaN/Inf, labels) as an error or, with skip_bad, a listed skip.
// Small cases are written with write_nifti; the real cases are read too.
// Every input layout (2017-2020 with .nii and grade folders, 2021, 2023, MSD)
// is written by tests/support/layouts and read back, also a selection of its
// cases (BratsOptions::only).
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "data/brats_cases.h"
#include "data/nifti_write.h"
#include "tests/support/layouts.h"
#include "tests/support/nifti_craft.h"
#include "tests/support/shared_data.h"

namespace {

using namespace lk;
using namespace lk::data;
namespace fs = std::filesystem;

Geometry small_geometry() {
  Geometry g;
  g.dims = {6, 5, 4};
  g.affine = {{{-1, 0, 0, 5}, {0, -1, 0, 4}, {0, 0, 1, -2}, {0, 0, 0, 1}}};
  return g;
}

// One case folder to write; by default valid.
struct CaseSpec {
  std::string id = "BraTS2021_00001";
  BratsNaming naming = BratsNaming::Brats2021;
  std::set<std::string> omit{};               // file keys not written
  std::map<std::string, Geometry> geometry{}; // per-key geometry overrides
  std::map<std::string, float> poison{};      // key → value at voxel 7 (written as float32)
  std::vector<uint8_t> labels = {0, 1, 2, 4};  // cycled through the seg
};

std::vector<std::string> keys_of(BratsNaming n) {
  if (n == BratsNaming::Brats2021) return {"flair", "t1", "t1ce", "t2", "seg"};
  return {"t2f", "t1n", "t1c", "t2w", "seg"};
}

// Channel c holds 100 * (c + 1) + (i % 7), so the channel order is visible.
void write_case(const fs::path& root, const CaseSpec& s) {
  const fs::path dir = root / s.id;
  fs::create_directories(dir);
  const std::vector<std::string> keys = keys_of(s.naming);
  const std::string sep = s.naming == BratsNaming::Brats2021 ? "_" : "-";
  for (size_t k = 0; k < keys.size(); ++k) {
    const std::string& key = keys[k];
    if (s.omit.count(key)) continue;
    const Geometry g = s.geometry.count(key) ? s.geometry.at(key) : small_geometry();
    const std::string path = (dir / (s.id + sep + key + ".nii.gz")).string();
    const size_t n = static_cast<size_t>(g.numel());
    if (s.poison.count(key)) {
      std::vector<float> v(n, key == "seg" ? 0.0f : 50.0f);
      v[7] = s.poison.at(key);
      write_nifti(path, g, v);
    } else if (key == "seg") {
      std::vector<uint8_t> v(n);
      for (size_t i = 0; i < n; ++i) v[i] = s.labels[i % s.labels.size()];
      write_nifti(path, g, v);
    } else {
      std::vector<int16_t> v(n);
      for (size_t i = 0; i < n; ++i) v[i] = static_cast<int16_t>(100 * (k + 1) + i % 7);
      write_nifti(path, g, v);
    }
  }
}

// Expects `f()` to throw a BratsError/NiftiError whose message names `file`
// (a path suffix) and contains `problem`.
template <typename F>
void expect_bad(F f, const std::string& file, const std::string& problem) {
  try {
    f();
    FAIL("no error (expected: " << problem << ")");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find(file) != std::string::npos);
    CHECK(msg.find(problem) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("brats: 2021 naming is discovered and loaded in FLAIR, T1, T1ce, T2 order", "[brats]") {
  test::TempDir root;
  write_case(root.path(), {.id = "BraTS2021_00002"});
  write_case(root.path(), {.id = "BraTS2021_00001"});
  fs::create_directories(root.path() / "notes");  // no NIfTI: not a case
  fs::create_directories(root.path() / ".cache");
  const BratsDataset ds = discover_brats_cases(root.path().string());
  REQUIRE(ds.cases.size() == 2);
  CHECK(ds.cases[0].id == "BraTS2021_00001");  // sorted
  CHECK(ds.cases[0].naming == BratsNaming::Brats2021);
  CHECK(ds.cases[0].images[2].ends_with("BraTS2021_00001_t1ce.nii.gz"));
  const BratsCaseData d = load_brats_case(ds.cases[0]);
  CHECK(d.geom.dims == std::array<int64_t, 3>{6, 5, 4});
  for (int c = 0; c < kBratsChannels; ++c) CHECK(d.images[c][0] == 100.0f * (c + 1));
  CHECK(std::set<uint8_t>(d.labels.begin(), d.labels.end()) == std::set<uint8_t>{0, 1, 2, 4});
}

TEST_CASE("brats: 2023 naming maps t2f, t1n, t1c, t2w to the channels and ET 3 to 4", "[brats]") {
  test::TempDir root;
  write_case(root.path(), {.id = "BraTS-GLI-00000-000", .naming = BratsNaming::Brats2023, .labels = {0, 1, 2, 3}});
  const BratsDataset ds = discover_brats_cases(root.path().string());
  REQUIRE(ds.cases.size() == 1);
  CHECK(ds.cases[0].naming == BratsNaming::Brats2023);
  CHECK(ds.cases[0].images[0].ends_with("-t2f.nii.gz"));
  const BratsCaseData d = load_brats_case(ds.cases[0]);
  for (int c = 0; c < kBratsChannels; ++c) CHECK(d.images[c][0] == 100.0f * (c + 1));
  CHECK(std::set<uint8_t>(d.labels.begin(), d.labels.end()) == std::set<uint8_t>{0, 1, 2, 4});
  CHECK(d.labels[3] == 4);
}

TEST_CASE("brats: each bad case is an error naming the file and the problem", "[brats]") {
  test::TempDir root;
  const std::string r = root.path().string();
  auto load_only = [&] { return load_brats_case(discover_brats_cases(r).cases.at(0)); };
  Geometry shifted = small_geometry();
  shifted.affine[0][3] += 2.5;
  Geometry taller = small_geometry();
  taller.dims[2] = 5;

  SECTION("missing modality") {
    write_case(root.path(), {.omit = {"t1ce"}});
    expect_bad([&] { discover_brats_cases(r); }, "BraTS2021_00001_t1ce.nii.gz", "missing T1ce image");
  }
  SECTION("missing segmentation, unless not required") {
    write_case(root.path(), {.omit = {"seg"}});
    expect_bad([&] { discover_brats_cases(r); }, "BraTS2021_00001_seg.nii.gz", "missing segmentation");
    const BratsDataset ds = discover_brats_cases(r, {.require_seg = false});
    REQUIRE(ds.cases.size() == 1);
    CHECK(load_brats_case(ds.cases[0]).labels.empty());
  }
  SECTION("different shape") {
    write_case(root.path(), {.geometry = {{"t2", taller}}});
    expect_bad(load_only, "BraTS2021_00001_t2.nii.gz", "shape 6x5x5 differs from the FLAIR's 6x5x4");
  }
  SECTION("different affine") {
    write_case(root.path(), {.geometry = {{"seg", shifted}}});
    expect_bad(load_only, "BraTS2021_00001_seg.nii.gz", "affine differs from the FLAIR's by up to 2.5");
  }
  SECTION("NaN voxel") {
    write_case(root.path(), {.poison = {{"t1", std::numeric_limits<float>::quiet_NaN()}}});
    expect_bad(load_only, "BraTS2021_00001_t1.nii.gz", "1 voxels are NaN or Inf (the first at voxel (1, 1, 0))");
  }
  SECTION("Inf voxel") {
    write_case(root.path(), {.poison = {{"flair", -std::numeric_limits<float>::infinity()}}});
    expect_bad(load_only, "BraTS2021_00001_flair.nii.gz", "NaN or Inf");
  }
  SECTION("label 3 in BraTS 2021") {
    write_case(root.path(), {.labels = {0, 1, 2, 3}});
    expect_bad(load_only, "BraTS2021_00001_seg.nii.gz", "label values outside {0, 1, 2, 4} (BraTS 2021): 3 (30 voxels)");
  }
  SECTION("label 4 in BraTS 2023") {
    write_case(root.path(), {.id = "BraTS-GLI-00001-000", .naming = BratsNaming::Brats2023, .labels = {0, 4}});
    expect_bad(load_only, "BraTS-GLI-00001-000-seg.nii.gz", "outside {0, 1, 2, 3} (BraTS 2023): 4");
  }
  SECTION("non-integer label") {
    write_case(root.path(), {.poison = {{"seg", 1.5f}}});
    expect_bad(load_only, "BraTS2021_00001_seg.nii.gz", "1.5 (1 voxels)");
  }
  SECTION("a broken file inside a case") {
    write_case(root.path(), {});
    test::write_bytes((root.path() / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz").string(), {1, 2, 3});
    expect_bad(load_only, "BraTS2021_00001_t2.nii.gz", "not gzip-compressed");
  }
  SECTION("two files for one modality") {
    write_case(root.path(), {});
    test::write_bytes((root.path() / "BraTS2021_00001" / "BraTS2021_00001_t1.nii").string(), {1});
    expect_bad([&] { discover_brats_cases(r); }, "BraTS2021_00001", "ambiguous T1: 2 files match");
  }
  SECTION("mixed 2021 and 2023 names") {
    write_case(root.path(), {});
    test::write_bytes((root.path() / "BraTS2021_00001" / "BraTS2021_00001-t2w.nii.gz").string(), {1});
    expect_bad([&] { discover_brats_cases(r); }, "BraTS2021_00001", "mixes BraTS 2021");
  }
  SECTION("no case at all, or no folder") {
    expect_bad([&] { discover_brats_cases(r); }, r, "no BraTS case folders");
    expect_bad([&] { discover_brats_cases(r + "/absent"); }, r + "/absent", "is not a folder");
  }
}

TEST_CASE("brats: with skip_bad, bad cases are skipped with a warning and listed", "[brats]") {
  test::TempDir root;
  Geometry taller = small_geometry();
  taller.dims[2] = 5;
  write_case(root.path(), {.id = "BraTS2021_00001"});
  write_case(root.path(), {.id = "BraTS2021_00002", .omit = {"flair"}});
  write_case(root.path(), {.id = "BraTS2021_00003", .geometry = {{"t1", taller}}});
  write_case(root.path(), {.id = "BraTS2021_00004", .labels = {0, 7}});
  write_case(root.path(), {.id = "BraTS2021_00005"});
  std::vector<std::string> warnings;
  const BratsOptions opt{.skip_bad = true, .warn = [&](const std::string& w) { warnings.push_back(w); }};

  const BratsDataset found = discover_brats_cases(root.path().string(), opt);
  CHECK(found.cases.size() == 4);  // discovery sees only the missing file
  REQUIRE(found.skipped.size() == 1);
  CHECK(found.skipped[0].id == "BraTS2021_00002");

  warnings.clear();
  const BratsDataset ds = validate_brats_dataset(root.path().string(), opt);
  REQUIRE(ds.cases.size() == 2);
  CHECK(ds.cases[0].id == "BraTS2021_00001");
  CHECK(ds.cases[1].id == "BraTS2021_00005");
  REQUIRE(ds.skipped.size() == 3);
  CHECK(ds.skipped[0].id == "BraTS2021_00002");
  CHECK(ds.skipped[0].reason.find("missing FLAIR") != std::string::npos);
  CHECK(ds.skipped[1].id == "BraTS2021_00003");
  CHECK(ds.skipped[1].reason.find("shape") != std::string::npos);
  CHECK(ds.skipped[2].id == "BraTS2021_00004");
  CHECK(ds.skipped[2].reason.find("7 (") != std::string::npos);
  REQUIRE(warnings.size() == 3);
  CHECK(warnings[1].find("skipping case BraTS2021_00003") != std::string::npos);

  // Without the flag the first bad case stops the scan.
  CHECK_THROWS_AS(validate_brats_dataset(root.path().string()), BratsError);
}

TEST_CASE("brats: the six real cases are discovered and load as valid cases", "[brats][real]") {
  const auto root = test::brats2021_dir();
  CHECK_FALSE(root.empty());  // runs either way, so this test can always fail
  if (!test::have_brats2021()) {
    WARN("SKIPPED: the real BraTS cases are absent (" << root.string() << ")");
    return;
  }
  const BratsDataset ds = discover_brats_cases(root.string());
  REQUIRE(ds.cases.size() == 6);
  CHECK(ds.cases.front().id == "BraTS2021_00006");
  CHECK(ds.cases.back().id == "BraTS2021_01480");
  // Load two (the others are read in test_nifti_real): the plain one and one without ET.
  for (size_t i : {size_t{0}, size_t{2}}) {
    const BratsCaseData d = load_brats_case(ds.cases[i]);
    INFO(ds.cases[i].id);
    CHECK(d.geom.dims == std::array<int64_t, 3>{240, 240, 155});
    const std::set<uint8_t> labels(d.labels.begin(), d.labels.end());
    CHECK(labels == (i == 0 ? std::set<uint8_t>{0, 1, 2, 4} : std::set<uint8_t>{0, 1, 2}));
  }
}

// ---- every input layout ---------------------------------------------------

TEST_CASE("brats: every layout (2017-2020, 2021, 2023, MSD) is discovered and loaded alike", "[brats][layouts]") {
  for (const test::Layout l : test::kLayouts) {
    INFO(test::layout_name(l));
    test::TempDir root;
    std::vector<test::LayoutCase> cases;
    for (int i = 1; i <= 2; ++i) {
      cases.push_back(test::make_layout_case(test::layout_case_id(l, i), {12, 10, 6}, i));
      test::write_layout_case(root.path(), l, cases.back());
    }
    const BratsDataset ds = discover_brats_cases(root.path().string());
    REQUIRE(ds.cases.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      const BratsCase& bc = ds.cases[i];
      CHECK(bc.id == cases[i].id);
      CHECK(bc.naming == test::layout_naming(l));
      const BratsCaseData d = load_brats_case(bc);
      CHECK(d.geom.dims == cases[i].geom.dims);
      CHECK(same_grid(d.geom, cases[i].geom));
      for (int ch = 0; ch < kBratsChannels; ++ch) CHECK(d.images[ch] == cases[i].images[ch]);
      CHECK(d.labels == cases[i].labels);  // each coding back to BraTS 2021 labels
      CHECK(load_brats_channel(bc, 2).data == cases[i].images[2]);
    }
    if (l == test::Layout::Brats2018) {  // grade folders: one case in each
      CHECK(ds.cases[0].dir.find("HGG") != std::string::npos);
      CHECK(ds.cases[1].dir.find("LGG") != std::string::npos);
    }
    if (l == test::Layout::Brats2020) CHECK(ds.cases[0].images[0].ends_with("_flair.nii"));
  }
}

TEST_CASE("brats: only: the named cases of every layout, by the ids discovery reports, the others unexamined",
          "[brats][layouts]") {
  for (const test::Layout l : test::kLayouts) {
    INFO(test::layout_name(l));
    test::TempDir root;
    const std::string r = root.path().string();
    for (int i = 1; i <= 3; ++i)
      test::write_layout_case(root.path(), l, test::make_layout_case(test::layout_case_id(l, i), {8, 8, 4}, i));
    const std::string id1 = test::layout_case_id(l, 1), id2 = test::layout_case_id(l, 2);
    const std::string id3 = test::layout_case_id(l, 3);
    fs::remove(discover_brats_cases(r).cases.at(1).seg);  // case 2 is bad now
    expect_bad([&] { discover_brats_cases(r); }, id2, "missing");

    const BratsDataset ds = discover_brats_cases(r, {.only = {id3, id1}});
    REQUIRE(ds.cases.size() == 2);
    CHECK(ds.cases[0].id == id1);
    CHECK(ds.cases[1].id == id3);
    CHECK(ds.skipped.empty());
    CHECK(load_brats_case(ds.cases[1]).labels.size() == 8 * 8 * 4);
    // With skip_bad, a named bad case is skipped as always.
    const BratsOptions quiet{.skip_bad = true, .warn = [](const std::string&) {}, .only = {id2}};
    const BratsDataset bad = discover_brats_cases(r, quiet);
    CHECK(bad.cases.empty());
    REQUIRE(bad.skipped.size() == 1);
    CHECK(bad.skipped[0].id == id2);
    // An id not there: its own error, naming the root, the id and the cases there.
    try {
      discover_brats_cases(r, {.only = {id1, "nope"}});
      FAIL("an unknown id was accepted");
    } catch (const MissingCaseError& e) {
      CHECK(std::string(e.what()) == r + ": case nope is not there (3 case(s): " + id1 + ", " + id2 + ", " + id3 + ")");
    }
  }
  // More than five cases: the first five, then "...".
  test::TempDir root;
  for (int i = 1; i <= 7; ++i)
    test::write_layout_case(root.path(), test::Layout::Brats2021,
                            test::make_layout_case(test::layout_case_id(test::Layout::Brats2021, i), {8, 8, 4}, i));
  expect_bad([&] { discover_brats_cases(root.path().string(), {.only = {"BraTS2021_00099"}}); }, root.path().string(),
             "case BraTS2021_00099 is not there (7 case(s): BraTS2021_00001, BraTS2021_00002, BraTS2021_00003, "
             "BraTS2021_00004, BraTS2021_00005, ...)");
}

TEST_CASE("brats: MSD test images come with require_seg = false, the images folder itself is a root", "[brats][layouts]") {
  test::TempDir root;
  test::write_layout_case(root.path(), test::Layout::Msd, test::make_layout_case("BRATS_001", {8, 8, 4}, 1));
  test::write_layout_case(root.path(), test::Layout::Msd, test::make_layout_case("BRATS_485", {8, 8, 4}, 2), false);
  CHECK(discover_brats_cases(root.path().string()).cases.size() == 1);  // training cases only
  const BratsDataset all = discover_brats_cases(root.path().string(), {.require_seg = false});
  REQUIRE(all.cases.size() == 2);
  CHECK(all.cases[1].id == "BRATS_485");
  CHECK(all.cases[1].seg.empty());
  const BratsDataset tr = discover_brats_cases((root.path() / "imagesTr").string());
  REQUIRE(tr.cases.size() == 1);
  CHECK(tr.cases[0].seg.ends_with("labelsTr/BRATS_001.nii.gz"));
  CHECK(discover_brats_cases((root.path() / "imagesTs").string(), {.require_seg = false}).cases.size() == 1);
}

TEST_CASE("brats: layout errors name the file and the problem", "[brats][layouts]") {
  test::TempDir root;
  const std::string r = root.path().string();
  SECTION("MSD: a dataset.json with other modalities") {
    test::write_layout_case(root.path(), test::Layout::Msd, test::make_layout_case("BRATS_001", {8, 8, 4}, 1));
    std::ofstream(root.path() / "dataset.json") << R"({"modality": {"0": "T1w", "1": "FLAIR", "2": "t1gd", "3": "T2w"}})";
    expect_bad([&] { discover_brats_cases(r); }, "dataset.json", "modality 0 is 'T1w', expected flair");
  }
  SECTION("MSD: a 3-D image") {
    test::write_layout_case(root.path(), test::Layout::Msd, test::make_layout_case("BRATS_001", {8, 8, 4}, 1));
    write_nifti((root.path() / "imagesTr" / "BRATS_001.nii.gz").string(), small_geometry(), std::vector<float>(120, 1.0f));
    expect_bad([&] { load_brats_case(discover_brats_cases(r).cases.at(0)); }, "imagesTr/BRATS_001.nii.gz",
               "1 volume(s) in the 4th dimension, expected 4 channels");
  }
  SECTION("MSD: a missing label file") {
    test::write_layout_case(root.path(), test::Layout::Msd, test::make_layout_case("BRATS_001", {8, 8, 4}, 1));
    fs::remove(root.path() / "labelsTr" / "BRATS_001.nii.gz");
    expect_bad([&] { discover_brats_cases(r); }, "labelsTr/BRATS_001.nii.gz", "missing segmentation");
  }
  SECTION("MSD: label 4 is not an MSD label") {
    const Geometry g = test::make_layout_case("BRATS_001", {8, 8, 4}, 1).geom;
    test::write_layout_case(root.path(), test::Layout::Msd, test::make_layout_case("BRATS_001", {8, 8, 4}, 1));
    std::vector<uint8_t> seg(static_cast<size_t>(g.numel()), 4);
    write_nifti((root.path() / "labelsTr" / "BRATS_001.nii.gz").string(), g, seg);
    expect_bad([&] { load_brats_case(discover_brats_cases(r).cases.at(0)); }, "BRATS_001.nii.gz",
               "outside {0, 1, 2, 3} (MSD): 4");
  }
  SECTION("two cases of one id in two grade folders") {
    const test::LayoutCase c = test::make_layout_case("Brats18_2013_1_1", {8, 8, 4}, 1);
    test::write_layout_case(root.path(), test::Layout::Brats2018, c);
    fs::copy(root.path() / "HGG", root.path() / "LGG", fs::copy_options::recursive);
    expect_bad([&] { discover_brats_cases(r); }, r, "two cases named Brats18_2013_1_1");
  }
}

TEST_CASE("brats: label codings map to BraTS 2021 labels and back", "[brats][layouts]") {
  for (BratsNaming n : {BratsNaming::Brats2021, BratsNaming::Brats2023, BratsNaming::Msd})
    for (uint8_t l : {0, 1, 2, 4}) {
      const uint8_t coded = from_brats2021_label(n, l);
      CHECK(to_brats2021_label(n, coded) == l);
      const auto values = label_values(n);
      CHECK(std::find(values.begin(), values.end(), coded) != values.end());
    }
  // MSD: 1 edema -> ED (2), 2 non-enhancing -> NCR (1), 3 enhancing -> ET (4).
  CHECK(to_brats2021_label(BratsNaming::Msd, 1) == 2);
  CHECK(to_brats2021_label(BratsNaming::Msd, 2) == 1);
  CHECK(to_brats2021_label(BratsNaming::Msd, 3) == 4);
  CHECK(to_brats2021_label(BratsNaming::Msd, 4) == -1);
  CHECK(to_brats2021_label(BratsNaming::Brats2023, 3) == 4);
  CHECK(to_brats2021_label(BratsNaming::Brats2021, 3) == -1);
  CHECK(label_coding_name(BratsNaming::Msd) == "{0, 1, 2, 3} (MSD)");
}
