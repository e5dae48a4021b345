// Every input layout (BraTS 2017-2020 with .nii and grade folders, 2021,
// 2023, MSD Task01) read and written back: a prediction written for a case
// is in the case's own label coding (byte for byte the ground truth's values
// when it is the ground truth), `evaluate` pairs and reads it (Dice 1 for a
// perfect one), and predict with an ensemble and mirrored views writes a
// mask evaluate accepts. train/cv --cases select by the ids discovery
// reports in each layout.
#include <catch2/catch.hpp>

#include <filesystem>

#include "data/nifti_read.h"
#include "tests/support/layouts.h"
#include "tests/support/nifti_craft.h"
#include "eval/evaluate.h"
#include "tools/cli/run.h"
#include "train/predict.h"

using namespace lk;
namespace fs = std::filesystem;

TEST_CASE("layouts: predictions are written in each input's coding and evaluated", "[cli][layouts]") {
  model::NetConfig nc;
  nc.widths = {4, 8};
  nc.deep_supervision = false;
  model::SegNet a(nc);
  nc.seed = 9;
  model::SegNet b(nc);
  data::PreprocessOptions po;
  po.size = 16;
  for (const test::Layout l : test::kLayouts) {
    INFO(test::layout_name(l));
    test::TempDir dir;
    const fs::path root = dir.path() / "data", perfect = dir.path() / "perfect", pred = dir.path() / "pred";
    for (int i = 1; i <= 2; ++i)
      test::write_layout_case(root, l, test::make_layout_case(test::layout_case_id(l, i), {14, 12, 6}, i));
    const data::BratsDataset ds = data::discover_brats_cases(root.string());
    REQUIRE(ds.cases.size() == 2);
    fs::create_directories(perfect);
    for (const data::BratsCase& bc : ds.cases) {
      const data::BratsCaseData c = data::load_brats_case(bc);
      const std::string out = (perfect / (bc.id + ".nii.gz")).string();
      train::write_case_labels(out, c.geom, c.labels, bc.naming);
      // The ground truth's own values come back.
      CHECK(data::read_nifti(out).data == data::read_nifti(bc.seg).data);
    }
    eval::EvaluateOptions e;
    e.pred = perfect.string();
    e.gt = root.string();
    e.progress = nullptr;
    e.report = nullptr;
    const eval::EvaluationResult r = eval::evaluate_folders(e);
    REQUIRE(r.cases.size() == 2);
    for (const eval::CaseMetrics& m : r.cases)
      for (eval::Region reg : eval::kRegions) CHECK(m[reg].dice == 1.0);

    // predict end to end (two models, mirrored views): evaluate reads its output.
    train::CasePredictOptions o;
    o.predict.batch = 8;
    o.tta = true;
    fs::create_directories(pred);
    for (const data::BratsCase& bc : ds.cases) train::predict_case_file({&a, &b}, po, bc, pred.string(), o);
    e.pred = pred.string();
    CHECK(eval::evaluate_folders(e).cases.size() == 2);
  }
}

TEST_CASE("layouts: train/cv --cases selects by the case ids of each layout: split and cache hold them alone",
          "[cli][layouts]") {
  for (const test::Layout l : test::kLayouts) {
    INFO(test::layout_name(l));
    test::TempDir dir;
    const fs::path root = dir.path() / "data";
    for (int i = 1; i <= 3; ++i)
      test::write_layout_case(root, l, test::make_layout_case(test::layout_case_id(l, i), {14, 12, 6}, i));
    cli::RunOptions o;
    o.data = root.string();
    o.out = (dir.path() / "run").string();
    o.cases = {test::layout_case_id(l, 3), test::layout_case_id(l, 1)};
    o.fraction = 1;
    o.folds = 2;
    o.size = 16;
    o.widths = {4, 8};
    o.batch = 2;
    o.threads = 1;
    const cli::Prepared p = cli::prepare(o);
    CHECK(p.split.selected == std::vector<std::string>{test::layout_case_id(l, 1), test::layout_case_id(l, 3)});
    REQUIRE(p.cache.num_cases() == 2);
    CHECK(p.cache.cases()[0].id == test::layout_case_id(l, 1));
    CHECK(p.cache.cases()[1].id == test::layout_case_id(l, 3));
    o.cases = {test::layout_case_id(l, 1), test::layout_case_id(l, 2)};  // a resume with other cases
    CHECK_THROWS_WITH(cli::prepare(o), Catch::Matchers::Contains(test::layout_case_id(l, 3)) &&
                                           Catch::Matchers::Contains("--cases"));
  }
}
