// Figures (eval/figures.h): the rasteriser and blending on tiny images with
// exact pixel values, the font, ticks and plot mapping, training curves from
// a crafted log.jsonl, views from the affine, slice choice, FLAIR window, a
// crafted overlay case (PNG decoded back, colours at known pixels) and
// errors naming the file. The `lkaseg figures` command: test_figures_cli.cpp.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/brats_cases.h"
#include "eval/figures.h"
#include "tests/support/nifti_craft.h"
#include "tests/eval/figure_files.h"
#include "tests/support/shared_data.h"

using namespace lk::data;
using namespace lk::eval;
using lk::train::EpochLog;
using lk::train::read_run_log;
using Catch::Matchers::Contains;
using namespace lk::test;
namespace fs = std::filesystem;

namespace {

int count(const Image& im, Rgb c) {
  int n = 0;
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) n += im.at(x, y) == c;
  return n;
}

Geometry brats_grid(const std::array<int64_t, 3>& d) {
  Geometry g;
  g.dims = d;
  g.affine = identity_affine();
  g.affine[0][0] = -1, g.affine[1][1] = -1;  // BraTS: (-x, -y, +z)
  g.affine[1][3] = static_cast<double>(d[1] - 1);
  return g;
}

}  // namespace

// ---- rasteriser ---------------------------------------------------------------

TEST_CASE("figures: blend rounds each channel", "[figures]") {
  CHECK(blend({100, 0, 255}, {255, 255, 0}, 0.5) == Rgb{178, 128, 128});  // 177.5, 127.5, 127.5 round up
  CHECK(blend({100, 0, 255}, {255, 255, 0}, 0.25) == Rgb{139, 64, 191});  // 138.75, 63.75, 191.25
  CHECK(blend({1, 2, 3}, {200, 200, 200}, 0) == Rgb{1, 2, 3});
  CHECK(blend({1, 2, 3}, {200, 100, 50}, 1) == Rgb{200, 100, 50});
}

TEST_CASE("figures: rectangles and lines hit exact pixels, clipped at the border", "[figures]") {
  Image im(8, 6, kBlack);
  CHECK(im.rgb.size() == 8 * 6 * 3);
  fill_rect(im, 1, 1, 3, 2, kWhite);
  CHECK(count(im, kWhite) == 6);
  for (int y = 1; y < 3; ++y)
    for (int x = 1; x < 4; ++x) CHECK(im.at(x, y) == kWhite);
  CHECK(im.at(0, 0) == kBlack);
  CHECK(im.at(4, 1) == kBlack);
  CHECK_THROWS_AS(im.at(8, 0), std::out_of_range);

  Image r(6, 5, kBlack);
  draw_rect(r, 1, 1, 4, 3, kWhite);  // outline of [1,5) x [1,4): 10 pixels, centre empty
  CHECK(count(r, kWhite) == 10);
  CHECK(r.at(2, 2) == kBlack);
  CHECK(r.at(4, 3) == kWhite);

  const Rgb red{255, 0, 0};
  Image l(8, 6, kBlack);
  draw_line(l, 0, 0, 5, 5, red);
  CHECK(count(l, red) == 6);
  for (int i = 0; i < 6; ++i) CHECK(l.at(i, i) == red);

  // A shallow line: one pixel per column, both ends included, at most one row per step.
  Image s(8, 6, kBlack);
  draw_line(s, 0, 0, 6, 3, red);
  CHECK(count(s, red) == 7);
  CHECK(s.at(0, 0) == red);
  CHECK(s.at(6, 3) == red);
  int prev = 0;
  for (int x = 0; x <= 6; ++x) {
    int hits = 0, row = -1;
    for (int y = 0; y < 6; ++y)
      if (s.at(x, y) == red) ++hits, row = y;
    CHECK(hits == 1);
    CHECK(row - prev >= 0);
    CHECK(row - prev <= 1);
    prev = row;
  }
  // The same line drawn backwards covers the same pixels.
  Image b(8, 6, kBlack);
  draw_line(b, 6, 3, 0, 0, red);
  CHECK(b.rgb == s.rgb);

  // Thickness 3: rows y - 1 .. y + 1; thickness 2: rows y .. y + 1.
  Image t(8, 6, kBlack);
  draw_line(t, 1, 2, 5, 2, red, 3);
  CHECK(count(t, red) == 7 * 3);  // columns 0..6 (the square brush widens the ends)
  CHECK(t.at(0, 1) == red);
  CHECK(t.at(6, 3) == red);
  CHECK(t.at(3, 4) == kBlack);
  Image t2(8, 6, kBlack);
  draw_line(t2, 1, 2, 5, 2, red, 2);
  CHECK(count(t2, red) == 6 * 2);
  CHECK(t2.at(1, 2) == red);
  CHECK(t2.at(6, 3) == red);
  CHECK(t2.at(1, 1) == kBlack);

  // Clipping: a line through and beyond the image draws only what is inside.
  Image c(8, 6, kBlack);
  draw_line(c, -5, -5, 20, 20, red);
  CHECK(count(c, red) == 6);
  draw_polyline(c, {{0, 5}, {7, 5}, {7, 0}}, kWhite);
  CHECK(c.at(3, 5) == kWhite);
  CHECK(c.at(7, 2) == kWhite);

  // blit copies and clips.
  Image dst(4, 4, kBlack);
  blit(dst, Image(3, 3, kWhite), 2, 2);
  CHECK(count(dst, kWhite) == 4);
  CHECK(dst.at(3, 3) == kWhite);
}

TEST_CASE("figures: the 5x7 font", "[figures]") {
  CHECK(glyph_row('T', 0) == 0b11111);
  CHECK(glyph_row('T', 1) == 0b00100);
  CHECK(glyph_row('t', 3) == glyph_row('T', 3));  // lowercase drawn as capitals
  for (int r = 0; r < 7; ++r) {
    CHECK(glyph_row('@', r) == glyph_row('?', r));  // not in the font
    CHECK(glyph_row(' ', r) == 0);
  }
  // Every glyph has ink, fits 5 columns, and no two are alike.
  const std::string all = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;-_+=/()[]%#'!?<>*|";
  std::set<std::array<uint8_t, 7>> seen;
  for (char ch : all) {
    std::array<uint8_t, 7> g{};
    int ink = 0;
    for (int r = 0; r < 7; ++r) {
      g[static_cast<size_t>(r)] = glyph_row(ch, r);
      CHECK(g[static_cast<size_t>(r)] < 32);
      ink += g[static_cast<size_t>(r)] != 0;
    }
    INFO("glyph '" << ch << "'");
    CHECK(ink > 0);
    CHECK(seen.insert(g).second);
  }

  CHECK(text_width("AB") == 11);
  CHECK(text_width("AB", 2) == 22);
  CHECK(text_width("") == 0);
  CHECK(text_height(2) == 14);
  // "T" at scale 2 from (1, 2): the bar is x 1..10, y 2..3; the stem x 5..6 below.
  Image im(14, 18, kBlack);
  CHECK(draw_text(im, 1, 2, "T", kWhite, 2) == 10);
  CHECK(count(im, kWhite) == 10 * 2 + 2 * 2 * 6);
  CHECK(im.at(1, 2) == kWhite);
  CHECK(im.at(10, 3) == kWhite);
  CHECK(im.at(11, 2) == kBlack);
  CHECK(im.at(5, 4) == kWhite);
  CHECK(im.at(6, 15) == kWhite);
  CHECK(im.at(3, 5) == kBlack);
  CHECK(im.at(5, 16) == kBlack);

  CHECK(fit_text("ABCDEFGH", 1000) == "ABCDEFGH");
  CHECK(fit_text("ABCDEFGH", text_width("ABCD..")) == "ABCD..");
  CHECK(text_width(fit_text("ABCDEFGH", 40, 2), 2) <= 40);
}

TEST_CASE("figures: PNG encoding round-trips exactly", "[figures]") {
  const lk::test::TempDir dir;
  Image im(5, 3, kBlack);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      im.set(x, y, {static_cast<uint8_t>(x * 50), static_cast<uint8_t>(y * 100), static_cast<uint8_t>(x + y)});
  const std::string png = encode_png(im);
  REQUIRE(png.size() > 8);
  CHECK(png.compare(1, 3, "PNG") == 0);
  write_png(dir.file("a.png"), im);
  const Image back = decode_png(dir.file("a.png"));
  CHECK(back.width == 5);
  CHECK(back.height == 3);
  CHECK(back.rgb == im.rgb);
  CHECK(fs::directory_iterator(dir.path()) != fs::directory_iterator());
  CHECK_THROWS_WITH(write_png(dir.file("no/such/folder/a.png"), im), Contains("no/such/folder/a.png"));
  CHECK_THROWS(encode_png(Image()));
}

// ---- plots --------------------------------------------------------------------

TEST_CASE("figures: nice ticks", "[figures]") {
  CHECK(nice_ticks(0, 50) == std::vector<double>{0, 10, 20, 30, 40, 50});
  const std::vector<double> d = nice_ticks(0, 1);
  REQUIRE(d.size() == 6);
  CHECK(d[1] == Approx(0.2));
  CHECK(d[5] == Approx(1.0));
  CHECK(nice_ticks(0, 1.37).size() == 7);  // 0 .. 1.2 by 0.2
  CHECK(nice_ticks(3, 7, 4) == std::vector<double>{3, 4, 5, 6, 7});
  CHECK_THROWS(nice_ticks(1, 1));
}

TEST_CASE("figures: a plot maps values into its frame; series, frame and legend at known pixels", "[figures]") {
  const Rgb blue{0, 0, 255};
  PlotSpec spec;
  spec.title = "T";
  spec.xlabel = "EPOCH";
  spec.xmax = 10;
  spec.ymax = 1;
  spec.width = 400;
  spec.height = 300;
  spec.series.push_back({"S", blue, {{0, 0.5}, {10, 0.5}}, false, 1});
  const PlotFrame f = plot_frame(spec);
  CHECK(f.col(0) == f.left);
  CHECK(f.col(10) == f.left + f.w - 1);
  CHECK(f.row(1) == f.top);
  CHECK(f.row(0) == f.top + f.h - 1);
  CHECK(f.xticks == std::vector<double>{0, 2, 4, 6, 8, 10});
  const Image im = render_plot(spec);
  CHECK(im.width == 400);
  CHECK(im.height == 300);
  const int y = f.row(0.5);
  for (int x = f.left + 1; x < f.left + f.w - 1; ++x) CHECK(im.at(x, y) == blue);
  CHECK(im.at(f.col(5), y - 1) != blue);
  CHECK(im.at(f.left, f.top + 3) == kBlack);          // the frame
  CHECK(im.at(f.left - 3, f.row(0.4)) == kBlack);     // a tick outside the frame
  CHECK(im.at(f.col(3), f.row(0.3)) == kWhite);       // inside, off the grid
  CHECK(im.at(f.col(4), f.row(0.3)) == Rgb{225, 225, 225});  // a grid line
  CHECK(im.at(f.left + f.w + 15, f.top + 6) == blue);  // the legend swatch
  CHECK(im.at(0, 0) == kWhite);

  // Automatic ranges end at the tick at or above the maximum.
  PlotSpec a;
  a.series.push_back({"L", blue, {{1, 0.9}, {7, 1.37}}, true, 2});
  const PlotFrame fa = plot_frame(a);
  CHECK(fa.xmin == 0);
  CHECK(fa.xmax == 7);
  CHECK(fa.ymax == Approx(1.4));
  // Markers: a 5x5 square at each point.
  const Image ia = render_plot(a);
  CHECK(ia.at(fa.col(1) - 2, fa.row(0.9) - 2) == blue);
  CHECK(ia.at(fa.col(1) + 2, fa.row(0.9) + 2) == blue);
  PlotSpec tiny = a;
  tiny.width = 60;
  CHECK_THROWS_WITH(plot_frame(tiny), Contains("too small"));
}

// ---- training curves ----------------------------------------------------------


TEST_CASE("figures: training log and curves", "[figures][curves]") {
  const lk::test::TempDir dir;
  const fs::path run = dir.path() / "run";
  fs::create_directories(run / "fold_0");
  fs::create_directories(run / "fold_1");  // no log yet
  fs::create_directories(run / "fold_2");
  fs::create_directories(run / "other");
  std::string log0;
  for (int e = 1; e <= 6; ++e) log0 += log_line(e, 1.2 - 0.1 * e, e == 5 ? kVal5 : e == 6 ? kVal6 : nullptr);
  write_text((run / "fold_0" / "log.jsonl").string(), log0 + "\n");  // a blank line is fine
  write_text((run / "fold_2" / "log.jsonl").string(), log_line(1, 0.9) + log_line(2, 0.7, kVal6));

  const std::vector<EpochLog> e0 = read_run_log((run / "fold_0" / "log.jsonl").string());
  REQUIRE(e0.size() == 6);
  CHECK(e0[0].epoch == 1);
  CHECK(e0[0].loss == Approx(1.1));
  CHECK(!e0[3].val);
  REQUIRE(e0[4].val);
  CHECK(e0[4].val->dice == std::array<double, 3>{0.5, 0.25, 0.75});

  std::vector<std::string> warnings;
  const std::vector<FoldLog> folds = find_fold_logs(run.string(), [&](const std::string& m) { warnings.push_back(m); });
  REQUIRE(folds.size() == 2);
  CHECK(folds[0].fold == 0);
  CHECK(folds[1].fold == 2);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Contains("fold_1") && Contains("no log.jsonl"));
  // A fold folder itself is one fold.
  const std::vector<FoldLog> one = find_fold_logs((run / "fold_2").string());
  REQUIRE(one.size() == 1);
  CHECK(one[0].fold == 2);

  // Per fold: the loss line and the Dice markers where the plots put them.
  const Image fc = render_fold_curves(folds[0]);
  CHECK(fc.width == 1280);
  CHECK(fc.height == 420);
  PlotSpec loss;
  loss.series.push_back({"LOSS", fold_colour(0), {}, false, 2});
  for (const EpochLog& p : e0) loss.series[0].points.emplace_back(p.epoch, p.loss);
  const PlotFrame lf = plot_frame(loss);
  for (const EpochLog& p : e0) CHECK(fc.at(lf.col(static_cast<double>(p.epoch)), lf.row(p.loss)) == fold_colour(0));
  PlotSpec dice;
  dice.xmax = lf.xmax;
  dice.ymax = 1;
  for (const char* n : {"NCR", "ET", "ED", "MEAN"}) dice.series.push_back({n, kBlack, {}, true, 2});
  const PlotFrame df = plot_frame(dice);
  CHECK(fc.at(640 + df.col(5), df.row(0.5)) == kBlack);                  // the mean at epoch 5
  CHECK(fc.at(640 + df.col(6) + 2, df.row(0.9) + 2) == Rgb{30, 150, 30});  // ED's marker at epoch 6
  CHECK(fc.at(640 + df.col(6) - 2, df.row(0.3) - 2) == Rgb{205, 150, 0});  // ET's

  // All folds: one colour per fold.
  const Image rc = render_run_curves(folds);
  CHECK(rc.width == 1280);
  CHECK(count(rc, fold_colour(0)) > 0);
  CHECK(count(rc, fold_colour(2)) > 0);
  CHECK(count(rc, fold_colour(1)) == 0);

  // Errors name the folder (a bad log line: tests/train/test_run_log.cpp).
  CHECK_THROWS_WITH(find_fold_logs(dir.file("absent")), Contains("absent") && Contains("not a folder"));
  fs::create_directories(dir.path() / "empty_run" / "fold_0");
  write_text((dir.path() / "empty_run" / "fold_0" / "log.jsonl").string(), "");
  CHECK_THROWS_WITH(find_fold_logs((dir.path() / "empty_run").string(), [](const std::string&) {}),
                    Contains("empty_run") && Contains("no fold_<k>/log.jsonl"));
}

// ---- overlays -----------------------------------------------------------------

TEST_CASE("figures: views follow the affine (radiological, anterior/superior up)", "[figures]") {
  const Geometry b = brats_grid({4, 3, 2});
  const ViewAxes ax = axial_view(b.affine);
  CHECK(ax.slice_axis == 2);
  CHECK(ax.col_axis == 0);
  CHECK(ax.row_axis == 1);
  CHECK(!ax.flip_col);
  CHECK(!ax.flip_row);
  const ViewAxes co = coronal_view(b.affine);
  CHECK(co.slice_axis == 1);
  CHECK(co.col_axis == 0);
  CHECK(co.row_axis == 2);
  CHECK(!co.flip_col);
  CHECK(co.flip_row);
  // RAS+ voxel axes: patient right (+x) must go to the image's left, anterior (+y) up.
  const ViewAxes ras = axial_view(identity_affine());
  CHECK(ras.flip_col);
  CHECK(ras.flip_row);
  // Voxel axes permuted: i → superior, j → -x, k → +y.
  Affine p{};
  p[2][0] = 1, p[0][1] = -1, p[1][2] = 1, p[3][3] = 1;
  const ViewAxes pa = axial_view(p);
  CHECK(pa.slice_axis == 0);
  CHECK(pa.col_axis == 1);
  CHECK(pa.row_axis == 2);
  CHECK(!pa.flip_col);
  CHECK(pa.flip_row);
  const ViewAxes pc = coronal_view(p);
  CHECK(pc.slice_axis == 2);
  CHECK(pc.row_axis == 0);
  CHECK(pc.flip_row);
}

TEST_CASE("figures: slice sampling: orientation, zoom, square pixels", "[figures]") {
  const Geometry g = brats_grid({4, 3, 2});
  const SliceSampling s = sample_slice(g, axial_view(g.affine), 1);
  CHECK(s.width == 4);
  CHECK(s.height == 3);
  CHECK(s.voxel[0] == g.index(0, 0, 1));
  CHECK(s.voxel[4 * 2 + 3] == g.index(3, 2, 1));
  const SliceSampling z = sample_slice(g, axial_view(g.affine), 1, 2);
  CHECK(z.width == 8);
  CHECK(z.height == 6);
  CHECK(z.voxel[1 * 8 + 1] == g.index(0, 0, 1));
  CHECK(z.voxel[0 * 8 + 2] == g.index(1, 0, 1));
  CHECK(z.voxel[5 * 8 + 7] == g.index(3, 2, 1));
  // Coronal: columns x, rows z from the top (superior) down.
  const SliceSampling c = sample_slice(g, coronal_view(g.affine), 2);
  CHECK(c.width == 4);
  CHECK(c.height == 2);
  CHECK(c.voxel[0] == g.index(0, 2, 1));
  CHECK(c.voxel[4] == g.index(0, 2, 0));
  // Rows twice as far apart as columns: twice as many display rows.
  Geometry an = g;
  an.spacing = {1, 2, 1};
  const SliceSampling a = sample_slice(an, axial_view(an.affine), 0);
  CHECK(a.width == 4);
  CHECK(a.height == 6);
  CHECK(a.voxel[4 * 0] == an.index(0, 0, 0));
  CHECK(a.voxel[4 * 1] == an.index(0, 0, 0));
  CHECK(a.voxel[4 * 2] == an.index(0, 1, 0));
  CHECK(a.voxel[4 * 5] == an.index(0, 2, 0));
  // RAS+ grid: display (0, 0) is the voxel at the patient's right front: x and y last.
  Geometry ras = g;
  ras.affine = identity_affine();
  const SliceSampling r = sample_slice(ras, axial_view(ras.affine), 0);
  CHECK(r.voxel[0] == ras.index(3, 2, 0));
  CHECK_THROWS(sample_slice(g, axial_view(g.affine), 2));
}

TEST_CASE("figures: slice choice and FLAIR window", "[figures]") {
  const Geometry g = brats_grid({4, 4, 8});
  std::vector<uint8_t> lab(static_cast<size_t>(g.numel()), 0);
  std::vector<float> brain(lab.size(), 0.f);
  CHECK(largest_tumour_slice(lab, g, 2) == 4);  // nothing: the middle
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 4; ++x) brain[static_cast<size_t>(g.index(x, y, 6))] = 1;
  brain[static_cast<size_t>(g.index(0, 0, 2))] = 1;
  CHECK(largest_tumour_slice(lab, g, 2, &brain) == 6);  // no tumour: the most brain
  for (int64_t x = 0; x < 4; ++x) lab[static_cast<size_t>(g.index(x, 0, 3))] = 2;
  for (int64_t x = 0; x < 3; ++x) lab[static_cast<size_t>(g.index(x, 1, 5))] = 4;
  CHECK(largest_tumour_slice(lab, g, 2, &brain) == 3);
  lab[static_cast<size_t>(g.index(3, 3, 5))] = 1;  // a tie: the lower slice
  CHECK(largest_tumour_slice(lab, g, 2) == 3);
  lab[static_cast<size_t>(g.index(3, 2, 5))] = 1;
  CHECK(largest_tumour_slice(lab, g, 2) == 5);
  CHECK(largest_tumour_slice(lab, g, 1) == 0);  // along y: row 0 holds 4
  CHECK(largest_tumour_slice(lab, g, 0) == 3);  // along x: x = 3 holds 3, the others 2
  CHECK_THROWS(largest_tumour_slice(std::vector<uint8_t>(3), g, 2));

  // numpy.percentile(1..1000, [0.5, 99.5]) = 5.995, 995.005; zeros are not brain.
  std::vector<float> f(2000, 0.f);
  for (int i = 0; i < 1000; ++i) f[static_cast<size_t>(2 * i)] = static_cast<float>(i + 1);
  const std::array<double, 2> w = flair_window(f);
  CHECK(w[0] == Approx(5.995));
  CHECK(w[1] == Approx(995.005));
  CHECK(flair_window(std::vector<float>(5, 0.f)) == std::array<double, 2>{0, 0});
}

namespace {

// 20 x 16 x 10, BraTS affine. FLAIR: 100 for x < 10, 300 for x >= 10, so the
// window is [100, 300] and the grey is 0 or 255. Truth at z = 6: ED (2) at
// x 12..15, y 3..6; NCR (1) at x 4..5, y 10..11; at z = 2: ET (4) x 7..9, y 8.
OverlayCase crafted_case() {
  OverlayCase c;
  c.id = "CASE_1";
  c.geom = brats_grid({20, 16, 10});
  const auto n = static_cast<size_t>(c.geom.numel());
  c.flair.assign(n, 0.f);
  c.truth.assign(n, 0);
  for (int64_t z = 0; z < 10; ++z)
    for (int64_t y = 0; y < 16; ++y)
      for (int64_t x = 0; x < 20; ++x) c.flair[static_cast<size_t>(c.geom.index(x, y, z))] = x < 10 ? 100.f : 300.f;
  for (int64_t y = 3; y <= 6; ++y)
    for (int64_t x = 12; x <= 15; ++x) c.truth[static_cast<size_t>(c.geom.index(x, y, 6))] = 2;
  for (int64_t y = 10; y <= 11; ++y)
    for (int64_t x = 4; x <= 5; ++x) c.truth[static_cast<size_t>(c.geom.index(x, y, 6))] = 1;
  for (int64_t x = 7; x <= 9; ++x) c.truth[static_cast<size_t>(c.geom.index(x, 8, 2))] = 4;
  c.preds.push_back(c.truth);
  std::vector<uint8_t> et(n, 0);
  for (size_t i = 0; i < n; ++i) et[i] = c.truth[i] ? 4 : 0;
  c.preds.push_back(et);
  return c;
}

}  // namespace

TEST_CASE("figures: an overlay figure of a crafted case, written and decoded", "[figures][overlay]") {
  const lk::test::TempDir dir;
  const OverlayCase c = crafted_case();
  OverlayOptions opt;
  opt.names = {"same", "all et"};
  const OverlayFigure fig = render_overlay(c, opt);
  CHECK(fig.axial_slice == 6);
  CHECK(fig.coronal_slice == 3);  // y 3..6 hold 4 tumour voxels each: the lowest
  CHECK(fig.window == std::array<double, 2>{100, 300});
  REQUIRE(fig.panels.size() == 2);
  REQUIRE(fig.panels[0].size() == 4);
  for (const PanelRect& p : fig.panels[0]) {
    CHECK(p.w == 20);
    CHECK(p.h == 16);
  }
  for (const PanelRect& p : fig.panels[1]) {
    CHECK(p.w == 20);
    CHECK(p.h == 10);
  }
  // The layout: margins 10, panels 6 apart, text rows 14 px.
  CHECK(fig.panels[0][0].x == 10);
  CHECK(fig.panels[0][1].x == 10 + 26);
  CHECK(fig.panels[0][0].y == 10 + 14 + 10 + 14 + 8 + 14 + 6);
  CHECK(fig.image.height == fig.panels[1][0].y + 10 + 10 + 14 + 10);

  write_png(dir.file("fig.png"), fig.image);
  const Image im = decode_png(dir.file("fig.png"));
  REQUIRE(im.width == fig.image.width);
  REQUIRE(im.height == fig.image.height);
  CHECK(im.rgb == fig.image.rgb);

  const auto at = [&](size_t row, size_t panel, int x, int y) {
    const PanelRect& p = fig.panels[row][panel];
    return im.at(p.x + x, p.y + y);
  };
  const Rgb ed_on_white{128, 255, 128}, ncr_on_black{128, 0, 0}, et_on_white{255, 255, 128}, et_on_black{128, 128, 0};
  // Axial: column x, row y (BraTS affine: no flips).
  CHECK(at(0, 0, 13, 4) == kWhite);  // FLAIR alone
  CHECK(at(0, 0, 4, 10) == kBlack);
  CHECK(at(0, 1, 13, 4) == ed_on_white);  // ground truth
  CHECK(at(0, 1, 12, 3) == ed_on_white);
  CHECK(at(0, 1, 15, 6) == ed_on_white);
  CHECK(at(0, 1, 16, 6) == kWhite);
  CHECK(at(0, 1, 11, 3) == kWhite);
  CHECK(at(0, 1, 4, 10) == ncr_on_black);
  CHECK(at(0, 1, 5, 11) == ncr_on_black);
  CHECK(at(0, 1, 8, 8) == kBlack);  // ET is on slice 2, not 6
  CHECK(at(0, 2, 13, 4) == ed_on_white);  // "same"
  CHECK(at(0, 3, 13, 4) == et_on_white);  // "all et"
  CHECK(at(0, 3, 4, 10) == et_on_black);
  int blended = 0;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 20; ++x) blended += at(0, 1, x, y) != at(0, 0, x, y);
  CHECK(blended == 16 + 4);
  // Coronal at y = 3: column x, rows z from 9 (top) down to 0; ED at z = 6 → row 3.
  CHECK(at(1, 1, 13, 3) == ed_on_white);
  CHECK(at(1, 1, 13, 2) == kWhite);
  CHECK(at(1, 1, 13, 4) == kWhite);
  CHECK(at(1, 0, 13, 3) == kWhite);
  // Legend swatches in the strip at the bottom, on black.
  const int ly = fig.panels[1][0].y + 10 + 10;
  CHECK(im.at(10, ly + 3) == Rgb{255, 0, 0});
  CHECK(im.at(10 + 26 + text_width("NCR (1)", 2) + 18 + 5, ly + 3) == Rgb{0, 255, 0});
  CHECK(im.at(0, 0) == kBlack);
  // Titles in white above the panels.
  CHECK(count(im, kWhite) > 20 * 16 * 2);

  // --slice, no coronal row, zoom 2, alpha 1.
  opt.slice = 2;
  opt.coronal = false;
  opt.zoom = 2;
  opt.style.alpha = 1;
  const OverlayFigure z = render_overlay(c, opt);
  CHECK(z.axial_slice == 2);
  CHECK(z.coronal_slice == -1);
  REQUIRE(z.panels.size() == 1);
  CHECK(z.panels[0][1].w == 40);
  const PanelRect& p = z.panels[0][1];
  CHECK(z.image.at(p.x + 2 * 8, p.y + 2 * 8 + 1) == Rgb{255, 255, 0});
}

TEST_CASE("figures: overlay errors name the case and the problem", "[figures][overlay]") {
  OverlayCase c = crafted_case();
  OverlayOptions opt;
  opt.names = {"a"};
  CHECK_THROWS_WITH(render_overlay(c, opt), Contains("CASE_1") && Contains("1 names for 2 predictions"));
  opt.names = {"a", "b"};
  opt.slice = 10;
  CHECK_THROWS_WITH(render_overlay(c, opt), Contains("CASE_1") && Contains("slice 10") && Contains("0..9"));
  opt.slice = -1;
  c.preds[1][5] = 3;
  CHECK_THROWS_WITH(render_overlay(c, opt), Contains("prediction b") && Contains("label 3 (1 voxels)"));
  c.preds[1][5] = 0;
  c.truth.pop_back();
  CHECK_THROWS_WITH(render_overlay(c, opt), Contains("ground truth has 3199 voxels"));
  c = crafted_case();
  opt.zoom = 9;
  CHECK_THROWS_WITH(render_overlay(c, opt), Contains("zoom"));
}

// ---- the command --------------------------------------------------------------
