// Plots (eval/plot.h): axes, ticks, grid, series and legend on a raster image.
#include "eval/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace lk::eval {

int PlotFrame::col(double x) const {
  return left + static_cast<int>(std::lround((x - xmin) / (xmax - xmin) * (w - 1)));
}

int PlotFrame::row(double y) const {
  return top + static_cast<int>(std::lround((ymax - y) / (ymax - ymin) * (h - 1)));
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi <= lo)
    throw std::invalid_argument("nice_ticks: need finite lo < hi, got " + fmt("%g", lo) + ", " + fmt("%g", hi));
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const double first = std::floor(lo / step + 1e-9) * step;
  std::vector<double> t;
  for (int i = 0;; ++i) {
    double v = first + i * step;
    if (std::abs(v) < step * 1e-9) v = 0;  // no "-0"
    if (v > hi + step * 1e-9) break;
    t.push_back(v);
  }
  return t;
}

namespace {

constexpr int kTextScale = 2;

// Decimals that show ticks `step` apart exactly (1/2/5 x 10^k steps).
int tick_decimals(const std::vector<double>& t) {
  if (t.size() < 2) return 0;
  const double step = t[1] - t[0];
  return std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
}

std::string tick_label(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

// The range of one axis: [lo, hi] with hi from the data when NaN (the first
// tick at or above the maximum); the ticks.
void resolve_axis(double& lo, double& hi, double data_max, std::vector<double>& ticks) {
  if (!std::isfinite(lo)) lo = 0;
  const bool auto_hi = !std::isfinite(hi);
  if (auto_hi) hi = std::isfinite(data_max) ? data_max : lo + 1;
  if (hi <= lo) hi = lo + 1;
  ticks = nice_ticks(lo, hi);
  if (auto_hi) {
    const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : hi - lo;
    while (ticks.back() < hi - step * 1e-9) ticks.push_back(ticks.back() + step);
    hi = ticks.back();
  }
  std::erase_if(ticks, [&](double v) { return v < lo - 1e-9 * (hi - lo); });
}

int legend_width(const PlotSpec& spec) {
  int w = 0;
  for (const PlotSeries& s : spec.series) w = std::max(w, text_width(s.label, kTextScale));
  return spec.series.empty() ? 10 : 10 + 24 + 6 + w + 10;
}

}  // namespace

PlotFrame plot_frame(const PlotSpec& spec) {
  PlotFrame f;
  f.xmin = spec.xmin, f.xmax = spec.xmax, f.ymin = spec.ymin, f.ymax = spec.ymax;
  double mx = -std::numeric_limits<double>::infinity(), my = mx;
  for (const PlotSeries& s : spec.series)
    for (const auto& [x, y] : s.points) {
      if (std::isfinite(x)) mx = std::max(mx, x);
      if (std::isfinite(y)) my = std::max(my, y);
    }
  resolve_axis(f.xmin, f.xmax, mx, f.xticks);
  resolve_axis(f.ymin, f.ymax, my, f.yticks);
  const int dec = tick_decimals(f.yticks);
  int ylab = 0;
  for (double v : f.yticks) ylab = std::max(ylab, text_width(tick_label(v, dec), kTextScale));
  const int th = text_height(kTextScale);
  f.left = 10 + ylab + 10;
  f.top = 10 + th + 14;
  const int bottom = 10 + th + 10 + th + 10;
  f.w = spec.width - f.left - legend_width(spec);
  f.h = spec.height - f.top - bottom;
  if (f.w < 16 || f.h < 16)
    throw std::invalid_argument("plot \"" + spec.title + "\": " + std::to_string(spec.width) + "x" +
                                std::to_string(spec.height) + " is too small for its labels and legend");
  return f;
}

Image render_plot(const PlotSpec& spec) {
  const PlotFrame f = plot_frame(spec);
  Image im(spec.width, spec.height, kWhite);
  const int th = text_height(kTextScale);
  // Grid lines at the ticks.
  for (double x : f.xticks) fill_rect(im, f.col(x), f.top, 1, f.h, kGrid);
  for (double y : f.yticks) fill_rect(im, f.left, f.row(y), f.w, 1, kGrid);
  draw_rect(im, f.left, f.top, f.w, f.h, kBlack);
  // Ticks (5 px outwards) and their labels.
  const int xd = tick_decimals(f.xticks), yd = tick_decimals(f.yticks);
  for (double x : f.xticks) {
    const int c = f.col(x);
    fill_rect(im, c, f.top + f.h, 1, 5, kBlack);
    const std::string s = tick_label(x, xd);
    draw_text(im, c - text_width(s, kTextScale) / 2, f.top + f.h + 10, s, kBlack, kTextScale);
  }
  for (double y : f.yticks) {
    const int r = f.row(y);
    fill_rect(im, f.left - 5, r, 5, 1, kBlack);
    const std::string s = tick_label(y, yd);
    draw_text(im, f.left - 10 - text_width(s, kTextScale), r - th / 2, s, kBlack, kTextScale);
  }
  // Title above, x label below.
  const std::string title = fit_text(spec.title, spec.width - 20, kTextScale);
  draw_text(im, std::max(10, f.left + (f.w - text_width(title, kTextScale)) / 2), 10, title, kBlack, kTextScale);
  draw_text(im, f.left + (f.w - text_width(spec.xlabel, kTextScale)) / 2, f.top + f.h + 10 + th + 10, spec.xlabel,
            kBlack, kTextScale);
  // The series: polylines broken at non-finite points, then markers.
  for (const PlotSeries& s : spec.series) {
    std::vector<std::pair<int, int>> run;
    const auto flush = [&] {
      draw_polyline(im, run, s.colour, s.thickness);
      run.clear();
    };
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) {
        flush();
        continue;
      }
      run.emplace_back(f.col(x), f.row(y));
    }
    flush();
    if (s.markers)
      for (const auto& [x, y] : s.points)
        if (std::isfinite(x) && std::isfinite(y)) fill_rect(im, f.col(x) - 2, f.row(y) - 2, 5, 5, s.colour);
  }
  // Legend: a swatch (line, and a marker when the series has them) and the label.
  const int lx = f.left + f.w + 10;
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const PlotSeries& s = spec.series[i];
    const int ly = f.top + static_cast<int>(i) * (th + 8);
    fill_rect(im, lx, ly + th / 2 - 1, 24, 3, s.colour);
    if (s.markers) fill_rect(im, lx + 10, ly + th / 2 - 2, 5, 5, s.colour);
    draw_text(im, lx + 30, ly, s.label, kBlack, kTextScale);
  }
  return im;
}


}  // namespace lk::eval
