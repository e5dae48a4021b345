// Plots for the training curves: a white panel with a title, axes starting
// at 0 (Dice 0..1), ticks at 1/2/5 x 10^k steps, light grid lines, polylines
// 2 px wide, square markers, a legend with colour swatches right of the data.
#pragma once

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "eval/raster.h"

namespace lk::eval {

struct PlotSeries {
  std::string label;
  Rgb colour;
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite points break the line
  bool markers = false;                           // a 5x5 square at each point
  int thickness = 2;
};

struct PlotSpec {
  std::string title, xlabel;
  // Axis ranges; NaN: from the data (0 to the next tick at or above the maximum).
  double xmin = 0, xmax = std::numeric_limits<double>::quiet_NaN();
  double ymin = 0, ymax = std::numeric_limits<double>::quiet_NaN();
  std::vector<PlotSeries> series;
  int width = 640, height = 420;  // the whole panel, margins and legend included
};

// Where the data rectangle of a plot lies and how values map into it:
// column = left + round((x - xmin) / (xmax - xmin) * (w - 1)),
// row = top + round((ymax - y) / (ymax - ymin) * (h - 1)).
struct PlotFrame {
  int left = 0, top = 0, w = 0, h = 0;
  double xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  std::vector<double> xticks, yticks;
  int col(double x) const;
  int row(double y) const;
};

// Ticks covering [lo, hi] at a step of 1, 2 or 5 x 10^k giving about
// `target` intervals; the first tick is the largest multiple <= lo.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// The frame render_plot uses for `spec` (ranges resolved, ticks chosen).
PlotFrame plot_frame(const PlotSpec& spec);
// White panel: title, grid, frame, ticks and their labels, x label, series,
// legend (swatch + label per series) right of the data rectangle.
Image render_plot(const PlotSpec& spec);

}  // namespace lk::eval
