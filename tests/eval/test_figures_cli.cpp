// `lkaseg figures` (tools/cli/figures.h): the command on two synthetic
// cases with the ground truth as predictions (files, sizes, pixels against
// the library's figure), the checks that name a file, the flags, and a real
// case. The figures themselves: test_figures.cpp.
#include <catch2/catch.hpp>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>

#include "data/brats_cases.h"
#include "eval/figures.h"
#include "tools/cli/figures.h"
#include "data/nifti_read.h"
#include "data/nifti_write.h"
#include "data/synth.h"
#include "tests/support/nifti_craft.h"
#include "tests/eval/figure_files.h"
#include "tests/support/shared_data.h"

using namespace lk::data;
using namespace lk::eval;
using namespace lk::cli;
using Catch::Matchers::Contains;
using namespace lk::test;
namespace fs = std::filesystem;

namespace {

FiguresOptions parse(const std::string& args) {
  FiguresOptions cmd;
  CLI::App app;
  CLI::App* sub = add_figures_subcommand(app, cmd);
  app.parse("figures " + args, false);
  REQUIRE(sub->parsed());
  cmd.report = nullptr;
  return cmd;
}

}  // namespace

TEST_CASE("cli: lkaseg figures on two synthetic cases with the ground truth as predictions", "[figures][cli]") {
  const lk::test::TempDir dir;
  const std::string data = dir.file("data"), pa = dir.file("modelA"), run = dir.file("run"),
                    pb = dir.file("run/predictions"), out = dir.file("figs");
  SynthOptions so;
  so.dims = {40, 36, 16};
  generate_synthetic_dataset(data, 2, 7, so);
  const BratsDataset ds = discover_brats_cases(data);
  REQUIRE(ds.cases.size() == 2);
  fs::create_directories(pa);
  fs::create_directories(pb);
  for (const BratsCase& c : ds.cases) {
    const Volume v = read_nifti(c.seg);
    const std::vector<uint8_t> lab(v.data.begin(), v.data.end());
    write_nifti((fs::path(pa) / (c.id + ".nii.gz")).string(), v.geom, lab);
    write_nifti((fs::path(pb) / (c.id + ".nii.gz")).string(), v.geom, lab);
  }
  fs::create_directories(fs::path(run) / "fold_0");
  write_text((fs::path(run) / "fold_0" / "log.jsonl").string(), log_line(1, 1.0) + log_line(2, 0.8, kVal5));

  CHECK(default_model_names({pa, pb, pb + "/"}) == std::vector<std::string>{"modelA", "run", "run"});
  FiguresOptions cmd = parse("--data " + data + " --pred " + pa + " --pred " + pb + " --run " + run + " --out " + out);
  REQUIRE(cmd.preds.size() == 2);
  const std::vector<std::string> files = make_figures(cmd);
  REQUIRE(files.size() == 4);
  CHECK(files[0] == (fs::path(out) / (ds.cases[0].id + ".png")).string());
  CHECK(files[2] == (fs::path(out) / "curves_fold_0.png").string());
  CHECK(files[3] == (fs::path(out) / "curves.png").string());
  for (size_t i = 0; i < 2; ++i) {
    // The PNG is the figure drawn in memory; the prediction panels equal the ground truth's.
    const OverlayCase oc = load_overlay_case(ds.cases[i], {}, BratsNaming::Brats2021);
    OverlayCase with = oc;
    with.preds = {oc.truth, oc.truth};
    OverlayOptions oo;
    oo.names = {"modelA", "run"};
    const OverlayFigure fig = render_overlay(with, oo);
    const Image im = decode_png(files[i]);
    REQUIRE(im.width == fig.image.width);
    REQUIRE(im.height == fig.image.height);
    CHECK(im.rgb == fig.image.rgb);
    CHECK(fig.axial_slice == largest_tumour_slice(oc.truth, oc.geom, 2));
    for (const std::vector<PanelRect>& row : fig.panels) {
      int differ = 0, tumour = 0;
      for (int y = 0; y < row[1].h; ++y)
        for (int x = 0; x < row[1].w; ++x) {
          const Rgb g = im.at(row[1].x + x, row[1].y + y);
          differ += g != im.at(row[2].x + x, row[2].y + y) || g != im.at(row[3].x + x, row[3].y + y);
          tumour += g != im.at(row[0].x + x, row[0].y + y);
        }
      CHECK(differ == 0);
      CHECK(tumour > 0);
    }
  }
  CHECK(decode_png(files[2]).width == 1280);
  for (const std::string& f : files) CHECK(is_lkaseg_png(f));
  // Run again: its own figures are replaced; a file of the same name that
  // lkaseg did not write (here a PNG without our tag, then a text file) stops
  // the call before anything is written.
  REQUIRE(make_figures(cmd).size() == 4);
  {
    Image small(2, 2, kBlack);
    std::string foreign = encode_png(small);
    foreign.erase(8 + 25, 27);  // drop the "Software: lkaseg" chunk: a PNG of another program
    REQUIRE(foreign.size() > 8);
    write_text(files[3], foreign);
    CHECK_FALSE(is_lkaseg_png(files[3]));
    const auto before = fs::last_write_time(files[0]);
    CHECK_THROWS_WITH(make_figures(cmd), Contains(files[3]) && Contains("not overwriting it"));
    CHECK(fs::last_write_time(files[0]) == before);
    CHECK(decode_png(files[3]).width == 2);
    write_text(files[3], "notes\n");
    CHECK_THROWS_WITH(make_figures(cmd), Contains(files[3]) && Contains("not overwriting it"));
    fs::remove(files[3]);
  }

  // --cases and --names, one case, curves left out.
  cmd = parse("--data " + data + " --pred " + pa + " --pred " + pb + " --names A B --cases " + ds.cases[1].id +
              " --slice 3 --no-coronal --zoom 2 --out " + dir.file("figs2"));
  CHECK(make_figures(cmd).size() == 1);
  CHECK(decode_png(dir.file("figs2/" + ds.cases[1].id + ".png")).height < decode_png(files[1]).height * 2);

  // Errors name the file and the problem.
  cmd = parse("--data " + data + " --pred " + pa + " --names A B --out " + out);
  CHECK_THROWS_WITH(make_figures(cmd), Contains("2 --names for 1 --pred"));
  CHECK_THROWS_WITH(make_figures(parse("--pred " + pa + " --out " + out)), Contains("need --data"));
  CHECK_THROWS_WITH(make_figures(parse("--out " + out)), Contains("--data") && Contains("--run"));
  cmd = parse("--data " + data + " --pred " + pa + " --cases BraTS2021_99999 --out " + out);
  CHECK_THROWS_WITH(make_figures(cmd), Contains("BraTS2021_99999") && Contains("is not there"));

  const Volume v0 = read_nifti(ds.cases[0].seg);
  const std::string p0 = (fs::path(pb) / (ds.cases[0].id + ".nii.gz")).string();
  // A missing prediction.
  fs::remove(p0);
  cmd = parse("--data " + data + " --pred " + pa + " --pred " + pb + " --out " + out);
  CHECK_THROWS_WITH(make_figures(cmd), Contains(ds.cases[0].id + ".nii.gz") && Contains("no prediction for case"));
  // A prediction on another grid.
  Geometry other = v0.geom;
  other.dims[2] -= 1;
  write_nifti(p0, other, std::vector<uint8_t>(static_cast<size_t>(other.numel()), 0));
  CHECK_THROWS_WITH(make_figures(cmd), Contains(p0) && Contains("shape 40x36x15 differs from 40x36x16"));
  Geometry moved = v0.geom;
  moved.affine[0][3] += 7;
  write_nifti(p0, moved, std::vector<uint8_t>(static_cast<size_t>(moved.numel()), 0));
  CHECK_THROWS_WITH(make_figures(cmd), Contains(p0) && Contains("affine differs"));
  // Bad labels.
  std::vector<uint8_t> bad(static_cast<size_t>(v0.geom.numel()), 0);
  bad[7] = 3;
  write_nifti(p0, v0.geom, bad);
  CHECK_THROWS_WITH(make_figures(cmd), Contains(p0) && Contains("3 (1 voxels)"));
  // ... which are fine as BraTS 2023 (3 is ET).
  cmd.pred_labels = "brats2023";
  cmd.preds = {pb};
  cmd.cases = {ds.cases[0].id};
  CHECK(make_figures(cmd).size() == 1);
  // A prediction without a case.
  write_nifti((fs::path(pa) / "BraTS2021_99999.nii.gz").string(), v0.geom, bad);
  CHECK_THROWS_WITH(make_figures(parse("--data " + data + " --pred " + pa + " --out " + out)),
                    Contains("BraTS2021_99999.nii.gz") && Contains("not in"));
  // An unreadable log line.
  write_text((fs::path(run) / "fold_0" / "log.jsonl").string(), log_line(1, 1.0) + "garbage\n");
  CHECK_THROWS_WITH(make_figures(parse("--run " + run + " --out " + out)),
                    Contains("fold_0/log.jsonl") && Contains("line 2: not JSON"));
  // Bad flags.
  FiguresOptions c2;
  CLI::App app;
  add_figures_subcommand(app, c2);
  CHECK_THROWS_AS(app.parse("figures --out " + out + " --zoom 9", false), CLI::ParseError);
}

TEST_CASE("figures: a real BraTS 2021 case with its ground truth as the prediction", "[figures][real]") {
  const fs::path root = lk::test::brats2021_dir();
  if (!lk::test::have_brats2021()) {
    WARN("skipped: no real cases at " << root.string());
    return;
  }
  const BratsDataset ds = discover_brats_cases(root.string());
  REQUIRE(!ds.cases.empty());
  const OverlayCase oc = load_overlay_case(ds.cases[0], {ds.cases[0].seg}, BratsNaming::Brats2021);
  OverlayOptions opt;
  opt.names = {"truth"};
  const OverlayFigure fig = render_overlay(oc, opt);
  CHECK(fig.panels[0][0].w == 240);
  CHECK(fig.panels[0][0].h == 240);
  CHECK(fig.panels[1][0].h == 155);
  CHECK(fig.window[1] > fig.window[0]);
}
