// The synthetic BraTS-like generator: deterministic from the seed, labels as
// designed across a batch (small tumours, cases without enhancing tumour),
// MRI-like contrasts, and files that pass the same reader, case discovery and
// validation as the real data. (Its speed is measured in bench/, not here.)
#include <catch2/catch.hpp>

#include <CLI/CLI.hpp>

#include <array>
#include <filesystem>
#include <map>
#include <set>

#include "data/brats_cases.h"
#include "tools/cli/synth.h"
#include "data/nifti_read.h"
#include "data/synth.h"
#include "tests/support/nifti_craft.h"

namespace {

using namespace lk;
using namespace lk::data;
using namespace lk::cli;
namespace fs = std::filesystem;

// Mean of modality m over the voxels where pick(label, index) holds.
template <typename Pick>
double mean_where(const SynthCase& c, int m, Pick pick) {
  double sum = 0;
  int64_t n = 0;
  for (size_t i = 0; i < c.labels.size(); ++i)
    if (pick(c.labels[i], i)) sum += c.images[m][i], ++n;
  REQUIRE(n > 0);
  return sum / static_cast<double>(n);
}

// Every file of every case, as bytes, keyed by relative path.
std::map<std::string, test::Bytes> all_files(const fs::path& root) {
  std::map<std::string, test::Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = test::read_bytes(e.path().string());
  return out;
}

const SynthOptions kSmall{.dims = {48, 48, 32}, .spacing = 1.0, .gzip_level = 1, .first_id = 0};

}  // namespace

TEST_CASE("synth: the same seed gives bit-identical files, another seed different ones", "[synth]") {
  test::TempDir a, b, c;
  generate_synthetic_dataset(a.path().string(), 2, 5, kSmall);
  generate_synthetic_dataset(b.path().string(), 2, 5, kSmall);
  generate_synthetic_dataset(c.path().string(), 2, 6, kSmall);
  const auto fa = all_files(a.path()), fb = all_files(b.path()), fc = all_files(c.path());
  REQUIRE(fa.size() == 11);  // 2 cases x 5 files + SYNTHETIC.txt
  CHECK(fa == fb);
  for (const char* f : {"BraTS2021_00000/BraTS2021_00000_t1.nii.gz", "BraTS2021_00001/BraTS2021_00001_seg.nii.gz"}) {
    INFO(f);
    REQUIRE(fc.count(f));
    CHECK(fa.at(f) != fc.at(f));
  }
  // In memory too, and a case does not depend on the cases before it.
  const SynthCase x = make_synthetic_case(5, 1, kSmall), y = make_synthetic_case(5, 1, kSmall);
  CHECK(x.images == y.images);
  CHECK(x.labels == y.labels);
}

TEST_CASE("synth: labels as designed across a batch of cases", "[synth]") {
  // Default size: the sizes of the tumour kinds are meant for it.
  const uint64_t seed = 42;
  int without_et = 0, small = 0;
  std::set<int64_t> core_sizes;
  std::set<std::array<int64_t, 3>> centres;
  for (int i = 0; i < 8; ++i) {
    const SynthCase c = make_synthetic_case(seed, i);
    const SynthCaseInfo& info = c.info;
    INFO(info.id << " " << synth_kind_name(info.kind));
    CHECK(c.geom.dims == std::array<int64_t, 3>{160, 160, 96});
    CHECK(info.voxels[3] == 0);  // BraTS 2021 labels only
    CHECK(info.voxels[0] + info.voxels[1] + info.voxels[2] + info.voxels[4] == c.geom.numel());
    CHECK(info.voxels[2] > 0);                       // every case has edema
    CHECK(info.voxels[1] + info.voxels[4] > 0);      // and a tumour core
    if (!info.enhancing) CHECK(info.voxels[4] == 0);
    if (info.kind == SynthKind::Medium || info.kind == SynthKind::Large) {
      CHECK(info.voxels[4] > 0);                     // enhancing rim
      CHECK(info.voxels[1] > 0);                     // around necrosis
    }
    if (info.kind == SynthKind::NoEnhancing) CHECK(info.voxels[4] == 0);
    without_et += info.voxels[4] == 0;
    const int64_t core = info.voxels[1] + info.voxels[4];
    small += core < 1000;
    core_sizes.insert(core);
    // Labels only inside the brain; the background is exactly 0 in every modality.
    int64_t sx = 0, sy = 0, sz = 0, n = 0;
    for (int64_t z = 0; z < c.geom.dims[2]; ++z)
      for (int64_t y = 0; y < c.geom.dims[1]; ++y)
        for (int64_t x = 0; x < c.geom.dims[0]; ++x) {
          const size_t k = static_cast<size_t>(c.geom.index(x, y, z));
          const bool brain = c.images[0][k] > 0;
          for (int m = 1; m < 4; ++m)
            if ((c.images[m][k] > 0) != brain) FAIL_CHECK("modalities disagree on the brain mask");
          if (c.labels[k] != 0) {
            if (!brain) FAIL_CHECK("label outside the brain");
            sx += x, sy += y, sz += z, ++n;
          }
        }
    centres.insert({sx / n / 8, sy / n / 8, sz / n / 8});  // tumour centroid, 8-voxel bins
  }
  CHECK(without_et >= 2);              // the no-enhancing kind, every 4 cases
  CHECK(small >= 2);                   // the small kind, every 4 cases
  CHECK(*core_sizes.rbegin() > 10 * *core_sizes.begin());  // varied size
  CHECK(centres.size() >= 6);          // and position
}

TEST_CASE("synth: contrasts follow MRI (FLAIR/T2 edema, T1ce rim, dark necrosis)", "[synth]") {
  // A case of the large kind (rim + necrosis).
  int index = 0;
  while (synth_case_kind(42, index) != SynthKind::Large) ++index;
  const SynthCase c = make_synthetic_case(42, index);
  REQUIRE(c.info.kind == SynthKind::Large);
  const int kFlair = 0, kT1 = 1, kT1ce = 2, kT2 = 3;
  auto normal = [&](uint8_t l, size_t i) { return l == 0 && c.images[0][i] > 0; };
  auto edema = [](uint8_t l, size_t) { return l == 2; };
  auto necrosis = [](uint8_t l, size_t) { return l == 1; };
  auto rim = [](uint8_t l, size_t) { return l == 4; };
  CHECK(mean_where(c, kFlair, edema) > 1.3 * mean_where(c, kFlair, normal));
  CHECK(mean_where(c, kT2, edema) > 1.3 * mean_where(c, kT2, normal));
  CHECK(mean_where(c, kT1ce, rim) > 1.5 * mean_where(c, kT1ce, normal));
  CHECK(mean_where(c, kT1ce, rim) > 2.0 * mean_where(c, kT1ce, necrosis));
  CHECK(mean_where(c, kT1, necrosis) < 0.7 * mean_where(c, kT1, normal));
  CHECK(mean_where(c, kT2, necrosis) > mean_where(c, kT2, normal));
  // The rim enhances: bright on T1ce, not on T1.
  CHECK(mean_where(c, kT1ce, rim) / mean_where(c, kT1ce, normal) >
        1.5 * mean_where(c, kT1, rim) / mean_where(c, kT1, normal));
}

TEST_CASE("synth: written cases pass the same reader, discovery and validation as real data", "[synth]") {
  test::TempDir dir;
  const SynthOptions opt{.dims = {64, 72, 40}, .spacing = 1.0, .gzip_level = 1, .first_id = 7};
  const auto infos = generate_synthetic_dataset(dir.path().string(), 3, 9, opt);
  REQUIRE(infos.size() == 3);
  CHECK(infos[0].id == "BraTS2021_00007");

  const BratsDataset ds = validate_brats_dataset(dir.path().string());  // throws on any problem
  REQUIRE(ds.cases.size() == 3);
  CHECK(ds.skipped.empty());
  CHECK(ds.cases[0].naming == BratsNaming::Brats2021);

  const SynthCase mem = make_synthetic_case(9, 1, opt);
  const BratsCaseData disk = load_brats_case(ds.cases[1]);
  CHECK(disk.geom.dims == opt.dims);
  CHECK(disk.geom.spacing == std::array<double, 3>{1, 1, 1});
  CHECK(affine_max_diff(disk.geom.affine, mem.geom.affine) < 1e-6);
  CHECK(disk.labels == mem.labels);
  for (int m = 0; m < kBratsChannels; ++m)
    CHECK(std::equal(disk.images[m].begin(), disk.images[m].end(), mem.images[m].begin()));

  const Volume t1 = read_nifti(ds.cases[1].images[1]);
  CHECK(t1.storage.datatype == 4);  // int16
  CHECK(read_nifti(ds.cases[1].seg).storage.datatype == 2);  // uint8
}

TEST_CASE("synth: the lkaseg synth command and bad options", "[synth]") {
  test::TempDir dir;
  CLI::App app;
  SynthCommand cmd;
  CLI::App* sub = add_synth_subcommand(app, cmd);
  const std::string out = (dir.path() / "set").string();
  app.parse("synth --out " + out + " --cases 2 --seed 3 --size 40 40 24 --gzip-level 2", false);
  REQUIRE(sub->parsed());
  CHECK(cmd.size == std::vector<int64_t>{40, 40, 24});
  CHECK(run_synth(cmd) == 0);
  CHECK(fs::exists(fs::path(out) / "SYNTHETIC.txt"));
  CHECK(discover_brats_cases(out).cases.size() == 2);

  CHECK_THROWS_AS(make_synthetic_case(1, 0, {.dims = {4, 40, 40}}), std::invalid_argument);
  CHECK_THROWS_AS(make_synthetic_case(1, -1), std::invalid_argument);
  CHECK_THROWS_AS(generate_synthetic_dataset(out, 0, 1), std::invalid_argument);
}
