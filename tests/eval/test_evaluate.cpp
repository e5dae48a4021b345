// `lkaseg evaluate` (tools/cli/evaluate.h) on synthetic cases written to a
// temporary folder (flags, tables, JSON, label codings, grid mismatches,
// missing and doubled predictions), and one real case against itself. The
// metrics themselves: test_metrics.cpp.
#include <catch2/catch.hpp>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/brats_cases.h"
#include "data/nifti_read.h"
#include "data/nifti_write.h"
#include "data/synth.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "tests/support/nifti_craft.h"
#include "tests/support/shared_data.h"
#include "tools/cli/evaluate.h"

using namespace lk::data;
using namespace lk::eval;
using namespace lk::cli;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;
namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> v;
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

std::vector<uint8_t> read_labels(const std::string& path, Geometry* g) {
  const Volume v = read_nifti(path);
  if (g) *g = v.geom;
  return to_brats_labels(v.data, BratsNaming::Brats2021, path);
}

}  // namespace

TEST_CASE("cli: lkaseg evaluate on synthetic cases", "[metrics][cli]") {
  const lk::test::TempDir dir;
  const std::string gt = dir.file("gt"), pred = dir.file("pred");
  SynthOptions so;
  so.dims = {40, 36, 16};
  generate_synthetic_dataset(gt, 3, 5, so);
  fs::create_directory(pred);
  const BratsDataset ds = discover_brats_cases(gt);
  REQUIRE(ds.cases.size() == 3);
  // Case 0: the seg itself; case 1: perturbed (a slab of labels changed); case 2: none yet.
  std::vector<CaseMetrics> want;
  for (int i = 0; i < 2; ++i) {
    Geometry g;
    const std::vector<uint8_t> truth = read_labels(ds.cases[static_cast<size_t>(i)].seg, &g);
    std::vector<uint8_t> p = truth;
    if (i == 1)
      for (int64_t z = 0; z < g.dims[2]; ++z)
        for (int64_t y = 0; y < g.dims[1]; ++y)
          for (int64_t x = 0; x < g.dims[0]; ++x) {
            uint8_t& v = p[static_cast<size_t>(g.index(x, y, z))];
            if (x > 20 && v == 2) v = 0;
            if (x == 18 && y == 18) v = 4;
          }
    write_nifti((fs::path(pred) / (ds.cases[static_cast<size_t>(i)].id + ".nii.gz")).string(), g, p);
    want.push_back(evaluate_labels(p, truth, g));
  }

  EvaluateOptions cmd;
  {
    CLI::App app;
    CLI::App* sub = add_evaluate_subcommand(app, cmd);
    app.parse(
        "evaluate --pred " + pred + " --gt " + gt + " --out " + dir.file("r.csv") + " --json " + dir.file("r.json"),
        false);
    REQUIRE(sub->parsed());
  }
  cmd.progress = nullptr;
  cmd.report = nullptr;
  std::vector<std::string> warnings;
  cmd.warn = [&](const std::string& m) { warnings.push_back(m); };

  // A missing prediction is an error naming the case; --allow-missing warns.
  CHECK_THROWS_WITH(evaluate_and_report(cmd), Contains(ds.cases[2].id) && Contains("no prediction"));
  CHECK(!fs::exists(dir.file("r.csv")));
  cmd.allow_missing = true;
  REQUIRE_NOTHROW(evaluate_and_report(cmd));
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Contains(ds.cases[2].id));

  const std::vector<std::string> rows = read_lines(dir.file("r.csv"));
  REQUIRE(rows.size() == 1 + 2 * kNumRegions);
  CHECK(rows[0] == "case,region,dice,hd95_mm,gt_empty,pred_empty");
  for (int i = 0; i < 2; ++i)
    for (size_t k = 0; k < kRegions.size(); ++k) {
      const MaskMetrics& m = want[static_cast<size_t>(i)][kRegions[k]];
      char b[256];
      std::snprintf(b, sizeof b, "%s,%s,%.6f,%.4f,%d,%d", ds.cases[static_cast<size_t>(i)].id.c_str(),
                    region_name(kRegions[k]), m.dice, m.hd95_mm, m.gt_empty ? 1 : 0, m.pred_empty ? 1 : 0);
      CHECK(rows[1 + static_cast<size_t>(i) * kNumRegions + k] == b);
      if (i == 0 && !m.gt_empty) {
        CHECK(m.dice == 1);
        CHECK(m.hd95_mm == 0);
      }
    }
  CHECK(want[1][Region::ED].dice < 1);
  CHECK(want[1][Region::ED].hd95_mm > 0);
  std::ifstream js(dir.file("r.json"));
  const std::string json((std::istreambuf_iterator<char>(js)), std::istreambuf_iterator<char>());
  CHECK_THAT(json,
             Contains("\"summary\"") && Contains(ds.cases[1].id) && Contains("\"missing\": [\"" + ds.cases[2].id));

  // The summary table: Table 3 columns then the BraTS regions.
  const EvaluationResult r = evaluate_folders(cmd);
  const std::string table = format_summary_table(r.summary, 2);
  CHECK_THAT(table, Contains("NCR") && Contains("WT") && Contains("TC") && Contains("Dice %") && Contains("HD95 mm"));

  // An extra prediction (no such case) is an error too.
  cmd.allow_missing = false;
  Geometry g0;
  const std::vector<uint8_t> l0 = read_labels(ds.cases[0].seg, &g0);
  write_nifti((fs::path(pred) / (ds.cases[2].id + ".nii.gz")).string(), g0, l0);
  write_nifti((fs::path(pred) / "BraTS2021_99999.nii.gz").string(), g0, l0);
  CHECK_THROWS_WITH(evaluate_and_report(cmd), Contains("BraTS2021_99999") && Contains("no ground-truth case"));
  fs::remove(fs::path(pred) / "BraTS2021_99999.nii.gz");
  // Case 2 now has case 0's labels: a grid mismatch names both files, or it evaluates.
  Geometry g2;
  read_labels(ds.cases[2].seg, &g2);
  if (g2.dims == g0.dims && same_grid(g2, g0)) {
    REQUIRE_NOTHROW(evaluate_and_report(cmd));
    CHECK(read_lines(dir.file("r.csv")).size() == 1 + 3 * kNumRegions);
  }
  // --out and --json replace what evaluate wrote (above), never a user's file.
  {
    std::ofstream(dir.file("notes.csv")) << "my,own,table\n";
    std::ofstream(dir.file("notes.json")) << "{\"mine\": 1}\n";
    EvaluateOptions c2 = cmd;
    c2.out = dir.file("notes.csv");
    CHECK_THROWS_WITH(evaluate_and_report(c2), Contains("notes.csv") && Contains("not overwriting it"));
    c2.out = dir.file("r.csv");
    c2.json = dir.file("notes.json");
    CHECK_THROWS_WITH(evaluate_and_report(c2), Contains("notes.json") && Contains("not overwriting it"));
    CHECK(read_lines(dir.file("notes.csv")) == std::vector<std::string>{"my,own,table"});
    CHECK(read_lines(dir.file("notes.json")) == std::vector<std::string>{"{\"mine\": 1}"});
  }
  // Two files for one case.
  write_nifti((fs::path(pred) / (ds.cases[0].id + ".nii")).string(), g0, l0);
  CHECK_THROWS_WITH(evaluate_and_report(cmd), Contains("two predictions") && Contains(ds.cases[0].id));
}

TEST_CASE("metrics: a real BraTS 2021 case against itself", "[metrics][real]") {
  const fs::path root = lk::test::brats2021_dir();
  if (!lk::test::have_brats2021()) {
    WARN("SKIPPED: the real BraTS cases are absent (" << root.string() << ")");
    return;
  }
  const BratsDataset ds = discover_brats_cases(root.string());
  REQUIRE(!ds.cases.empty());
  const BratsCase& c = ds.cases.front();
  const CaseMetrics m = evaluate_label_files(c.seg, c.naming, c.seg, c.naming);
  for (Region r : kRegions) {
    INFO(c.id << " " << region_name(r));
    CHECK(m[r].dice == 1);
    CHECK(m[r].hd95_mm == 0);
    CHECK(m[r].pred_voxels == m[r].gt_voxels);
  }
  CHECK(!m[Region::WT].gt_empty);
}
