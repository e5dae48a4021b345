// Overlay figures (eval/overlay.h): FLAIR with the ground truth and each
// model's prediction, side by side.
#include "eval/overlay.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "data/nifti_read.h"
#include "eval/metrics.h"

namespace lk::eval {

using namespace lk::data;

std::optional<Rgb> LabelStyle::colour(uint8_t label) const {
  switch (label) {
    case 1: return ncr;
    case 2: return ed;
    case 4: return et;
    default: return std::nullopt;
  }
}

namespace {

// The voxel axes closest to world S (slice), then R (columns), the rest (rows).
std::array<int, 3> view_axes(const Affine& a) {
  int s = 0;
  for (int v = 1; v < 3; ++v)
    if (std::abs(a[2][static_cast<size_t>(v)]) > std::abs(a[2][static_cast<size_t>(s)])) s = v;
  int c = -1;
  for (int v = 0; v < 3; ++v)
    if (v != s && (c < 0 || std::abs(a[0][static_cast<size_t>(v)]) > std::abs(a[0][static_cast<size_t>(c)]))) c = v;
  return {s, c, 3 - s - c};
}

}  // namespace

ViewAxes axial_view(const Affine& a) {
  const auto [s, c, r] = view_axes(a);
  // Columns run towards patient left (world x decreasing), rows towards posterior (y decreasing).
  return {s, c, r, a[0][static_cast<size_t>(c)] > 0, a[1][static_cast<size_t>(r)] > 0};
}

ViewAxes coronal_view(const Affine& a) {
  const auto [s, c, r] = view_axes(a);
  // Slice along the anterior axis; rows run towards inferior (z decreasing).
  return {r, c, s, a[0][static_cast<size_t>(c)] > 0, a[2][static_cast<size_t>(s)] > 0};
}

std::array<double, 2> flair_window(const std::vector<float>& flair) {
  std::vector<double> v;
  for (float x : flair)
    if (x != 0) v.push_back(x);
  if (v.empty()) return {0, 0};
  const double lo = percentile_linear(v, 0.5);
  return {lo, percentile_linear(std::move(v), 99.5)};
}

int64_t largest_tumour_slice(const std::vector<uint8_t>& labels, const Geometry& g, int axis,
                             const std::vector<float>* brain) {
  if (axis < 0 || axis > 2) throw std::invalid_argument("largest_tumour_slice: axis must be 0, 1 or 2");
  const auto n = static_cast<size_t>(g.numel());
  if (labels.size() != n)
    throw std::invalid_argument("largest_tumour_slice: " + std::to_string(labels.size()) + " labels for the grid " +
                                dims_str(g.dims));
  const auto count = [&](auto&& on) {
    std::vector<int64_t> c(static_cast<size_t>(g.dims[static_cast<size_t>(axis)]), 0);
    int64_t total = 0;
    size_t i = 0;
    for (int64_t z = 0; z < g.dims[2]; ++z)
      for (int64_t y = 0; y < g.dims[1]; ++y)
        for (int64_t x = 0; x < g.dims[0]; ++x, ++i)
          if (on(i)) {
            const int64_t at = axis == 0 ? x : axis == 1 ? y : z;
            ++c[static_cast<size_t>(at)];
            ++total;
          }
    return std::pair{c, total};
  };
  const auto pick = [](const std::vector<int64_t>& c) {
    return static_cast<int64_t>(std::max_element(c.begin(), c.end()) - c.begin());  // the first maximum
  };
  if (auto [c, total] = count([&](size_t i) { return labels[i] != 0; }); total > 0) return pick(c);
  if (brain && brain->size() == n)
    if (auto [c, total] = count([&](size_t i) { return (*brain)[i] != 0; }); total > 0) return pick(c);
  return g.dims[static_cast<size_t>(axis)] / 2;
}

SliceSampling sample_slice(const Geometry& g, const ViewAxes& v, int64_t index, int zoom) {
  const auto sa = static_cast<size_t>(v.slice_axis), ca = static_cast<size_t>(v.col_axis),
             ra = static_cast<size_t>(v.row_axis);
  if (index < 0 || index >= g.dims[sa])
    throw std::out_of_range("slice " + std::to_string(index) + " outside 0.." + std::to_string(g.dims[sa] - 1));
  if (zoom < 1 || zoom > 64) throw std::invalid_argument("zoom must be 1..64");
  const double sc = g.spacing[ca], sr = g.spacing[ra];
  if (!(sc > 0) || !(sr > 0) || !std::isfinite(sc) || !std::isfinite(sr))
    throw std::invalid_argument("sample_slice: spacing must be finite and > 0");
  const double px = std::min(sc, sr);
  const int64_t nc = g.dims[ca], nr = g.dims[ra];
  SliceSampling s;
  s.width = static_cast<int>(std::max<int64_t>(1, std::llround(static_cast<double>(nc) * sc / px)) * zoom);
  s.height = static_cast<int>(std::max<int64_t>(1, std::llround(static_cast<double>(nr) * sr / px)) * zoom);
  s.voxel.resize(static_cast<size_t>(s.width) * static_cast<size_t>(s.height));
  std::array<int64_t, 3> at{};
  at[sa] = index;
  for (int r = 0; r < s.height; ++r) {
    // Nearest source voxel of the display pixel's centre, in integers.
    int64_t vr = std::min<int64_t>(nr - 1, (2 * int64_t{r} + 1) * nr / (2 * int64_t{s.height}));
    if (v.flip_row) vr = nr - 1 - vr;
    at[ra] = vr;
    for (int c = 0; c < s.width; ++c) {
      int64_t vc = std::min<int64_t>(nc - 1, (2 * int64_t{c} + 1) * nc / (2 * int64_t{s.width}));
      if (v.flip_col) vc = nc - 1 - vc;
      at[ca] = vc;
      s.voxel[static_cast<size_t>(r) * static_cast<size_t>(s.width) + static_cast<size_t>(c)] =
          g.index(at[0], at[1], at[2]);
    }
  }
  return s;
}

namespace {

void check_labels(const std::vector<uint8_t>& l, const std::string& id, const std::string& what) {
  std::array<int64_t, 256> count{};
  for (uint8_t v : l) ++count[v];
  for (int v = 0; v < 256; ++v)
    if (count[static_cast<size_t>(v)] && v != 0 && v != 1 && v != 2 && v != 4)
      throw FigureError(id, what + " has label " + std::to_string(v) + " (" +
                                std::to_string(count[static_cast<size_t>(v)]) + " voxels) outside {0, 1, 2, 4}");
}

}  // namespace

OverlayFigure render_overlay(const OverlayCase& c, const OverlayOptions& opt) {
  const auto n = static_cast<size_t>(c.geom.numel());
  if (c.flair.size() != n)
    throw FigureError(c.id, "FLAIR has " + std::to_string(c.flair.size()) + " voxels, the grid " +
                                dims_str(c.geom.dims) + " " + std::to_string(n));
  if (c.truth.size() != n)
    throw FigureError(c.id, "ground truth has " + std::to_string(c.truth.size()) + " voxels, the grid " +
                                dims_str(c.geom.dims) + " " + std::to_string(n));
  check_labels(c.truth, c.id, "the ground truth");
  if (opt.names.size() != c.preds.size())
    throw FigureError(c.id, std::to_string(opt.names.size()) + " names for " + std::to_string(c.preds.size()) +
                                " predictions");
  for (size_t p = 0; p < c.preds.size(); ++p) {
    if (c.preds[p].size() != n)
      throw FigureError(c.id, "prediction " + opt.names[p] + " has " + std::to_string(c.preds[p].size()) +
                                  " voxels, the grid " + std::to_string(n));
    check_labels(c.preds[p], c.id, "prediction " + opt.names[p]);
  }
  if (opt.zoom < 1 || opt.zoom > 8) throw std::invalid_argument("zoom must be 1..8, got " + std::to_string(opt.zoom));
  if (!(opt.style.alpha >= 0 && opt.style.alpha <= 1))
    throw std::invalid_argument("alpha must be in [0, 1], got " + fmt("%g", opt.style.alpha));

  OverlayFigure fig;
  const ViewAxes av = axial_view(c.geom.affine), cv = coronal_view(c.geom.affine);
  const int64_t nz = c.geom.dims[static_cast<size_t>(av.slice_axis)];
  if (opt.slice >= nz)
    throw FigureError(c.id, "slice " + std::to_string(opt.slice) + " is outside its axial slices 0.." +
                                std::to_string(nz - 1));
  fig.axial_slice = opt.slice >= 0 ? opt.slice : largest_tumour_slice(c.truth, c.geom, av.slice_axis, &c.flair);
  if (opt.coronal) fig.coronal_slice = largest_tumour_slice(c.truth, c.geom, cv.slice_axis, &c.flair);
  fig.window = flair_window(c.flair);
  const double lo = fig.window[0], hi = fig.window[1];
  const auto grey = [&](float v) -> Rgb {
    const double t = hi > lo ? std::clamp((v - lo) / (hi - lo), 0.0, 1.0) : 0.0;
    const auto g = static_cast<uint8_t>(std::lround(255 * t));
    return {g, g, g};
  };

  struct Row {
    std::string caption;
    SliceSampling s;
  };
  std::vector<Row> rows;
  rows.push_back({"AXIAL SLICE " + std::to_string(fig.axial_slice), sample_slice(c.geom, av, fig.axial_slice, opt.zoom)});
  if (opt.coronal)
    rows.push_back(
        {"CORONAL SLICE " + std::to_string(fig.coronal_slice), sample_slice(c.geom, cv, fig.coronal_slice, opt.zoom)});

  // Layout (text at scale 2: 14 px high, 12 px per character).
  constexpr int kM = 10, kGap = 6, kS = 2;
  const int th = text_height(kS);
  const int ncols = 2 + static_cast<int>(c.preds.size());
  int panel_w = 0;
  for (const Row& r : rows) panel_w = std::max(panel_w, r.s.width);
  std::vector<std::string> titles = {"FLAIR", "GROUND TRUTH"};
  for (const std::string& nm : opt.names) titles.push_back(nm);
  std::vector<std::pair<std::string, Rgb>> legend = {
      {"NCR (1)", opt.style.ncr}, {"ED (2)", opt.style.ed}, {"ET (4)", opt.style.et}};
  const std::string alpha_text = "ALPHA " + fmt("%.2g", opt.style.alpha);
  int legend_w = 0;
  for (const auto& [t, col] : legend) legend_w += 20 + 6 + text_width(t, kS) + 18;
  legend_w += text_width(alpha_text, kS);
  int width = 2 * kM + ncols * panel_w + (ncols - 1) * kGap;
  width = std::max({width, 2 * kM + legend_w, 2 * kM + text_width(c.id, kS)});
  int height = kM + th + 10 + th + 8;
  for (const Row& r : rows) height += th + 6 + r.s.height + 10;
  height += th + kM;

  fig.image = Image(width, height, kBlack);
  Image& im = fig.image;
  int y = kM;
  draw_text(im, kM, y, c.id, kWhite, kS);
  y += th + 10;
  const auto panel_x = [&](int p) { return kM + p * (panel_w + kGap); };
  for (int p = 0; p < ncols; ++p)
    draw_text(im, panel_x(p), y, fit_text(titles[static_cast<size_t>(p)], panel_w, kS), kWhite, kS);
  y += th + 8;
  for (const Row& r : rows) {
    draw_text(im, kM, y, r.caption, kGrey, kS);
    y += th + 6;
    std::vector<PanelRect> rects;
    for (int p = 0; p < ncols; ++p) {
      const std::vector<uint8_t>* lab = p == 0 ? nullptr : p == 1 ? &c.truth : &c.preds[static_cast<size_t>(p - 2)];
      const int x0 = panel_x(p);
      for (int yy = 0; yy < r.s.height; ++yy)
        for (int xx = 0; xx < r.s.width; ++xx) {
          const auto vox = static_cast<size_t>(r.s.voxel[static_cast<size_t>(yy) * static_cast<size_t>(r.s.width) +
                                                         static_cast<size_t>(xx)]);
          Rgb px = grey(c.flair[vox]);
          if (lab)
            if (const std::optional<Rgb> lc = opt.style.colour((*lab)[vox])) px = blend(px, *lc, opt.style.alpha);
          im.set(x0 + xx, y + yy, px);
        }
      rects.push_back({x0, y, r.s.width, r.s.height});
    }
    fig.panels.push_back(std::move(rects));
    y += r.s.height + 10;
  }
  // The legend strip.
  int x = kM;
  for (const auto& [t, col] : legend) {
    fill_rect(im, x, y, 20, th, col);
    x += 26;
    x += draw_text(im, x, y, t, kWhite, kS) + 18;
  }
  draw_text(im, x, y, alpha_text, kWhite, kS);
  return fig;
}

namespace {

std::string spacing_text(const std::array<double, 3>& s) {
  return fmt("%g", s[0]) + " x " + fmt("%g", s[1]) + " x " + fmt("%g", s[2]) + " mm";
}

void check_finite(const Volume& v) {
  if (v.storage.nonfinite_voxels > 0)
    throw FigureError(v.path, std::to_string(v.storage.nonfinite_voxels) + " voxels are NaN or Inf (the first at index " +
                                  std::to_string(v.storage.first_nonfinite) + ")");
}

// `v` must lie on `ref`'s grid; the error names both files.
void check_grid(const Volume& v, const Volume& ref, const std::string& what) {
  if (v.geom.dims != ref.geom.dims)
    throw FigureError(v.path, what + " shape " + dims_str(v.geom.dims) + " differs from " + dims_str(ref.geom.dims) +
                                  " of " + ref.path);
  for (size_t a = 0; a < 3; ++a)
    if (std::abs(v.geom.spacing[a] - ref.geom.spacing[a]) > 1e-3 * std::max(1.0, std::abs(ref.geom.spacing[a])))
      throw FigureError(v.path, what + " spacing " + spacing_text(v.geom.spacing) + " differs from " +
                                    spacing_text(ref.geom.spacing) + " of " + ref.path);
  if (!same_grid(v.geom, ref.geom))
    throw FigureError(v.path, what + " affine differs from that of " + ref.path + " by up to " +
                                  fmt("%g", affine_max_diff(v.geom.affine, ref.geom.affine)) + " mm");
}

}  // namespace

OverlayCase load_overlay_case(const BratsCase& c, const std::vector<std::string>& pred_files,
                              BratsNaming pred_coding) {
  if (c.seg.empty()) throw FigureError(c.dir, "no segmentation file (the ground truth panel needs one)");
  OverlayCase oc;
  oc.id = c.id;
  Volume flair = data::load_brats_channel(c, 0);
  check_finite(flair);
  const Volume seg = read_nifti(c.seg);
  check_finite(seg);
  check_grid(seg, flair, "segmentation");
  oc.geom = seg.geom;
  oc.flair = std::move(flair.data);
  oc.truth = to_brats_labels(seg.data, c.naming, c.seg);
  for (const std::string& p : pred_files) {
    const Volume v = read_nifti(p);
    check_finite(v);
    check_grid(v, seg, "prediction");
    oc.preds.push_back(to_brats_labels(v.data, pred_coding, p));
  }
  return oc;
}


}  // namespace lk::eval
