// Figures: the paper's qualitative overlays (Figs. 8-9: FLAIR with the ground
// truth and each model's prediction, side by side) and training curves from
// a run's log.jsonl files, drawn by a small rasteriser of our own and written
// as PNG (stb_image_write, Debian libstb-dev) atomically.
//
// Images are 8-bit RGB, row-major, (0, 0) the top-left pixel. Text uses a
// built-in 5x7 bitmap font (eval/figures.cpp): A-Z, 0-9, space and
// . , : ; - _ + = / ( ) [ ] % # ' ! ? < > * |; lowercase letters are drawn
// as capitals, any other character as '?'. A glyph occupies a 6x8 cell
// (one column and one row of spacing), times the scale.
//
// Overlay figure (render_overlay): a black canvas holding
//   the case id;
//   column titles: FLAIR, GROUND TRUTH, then one per prediction (its name);
//   the axial row: FLAIR alone, FLAIR + ground truth, FLAIR + each
//     prediction; captioned "AXIAL SLICE k" (k the 0-based voxel index along
//     the volume axis closest to superior);
//   the coronal row (optional), the same panels, "CORONAL SLICE j";
//   a legend strip: a swatch per label and the blend alpha.
// Orientation from the affine (radiological convention): patient left on
// the image's right, anterior up (axial), superior up (coronal). The
// in-plane voxel axes are those closest to the world (RAS+) axes; pixels are
// resampled (nearest neighbour) to square pixels of the finer in-plane
// spacing, then enlarged `zoom` times. FLAIR is windowed at the [0.5, 99.5]
// percentiles (numpy 'linear') of its non-zero (brain) voxels over the whole
// volume: grey = round(255 * clamp((v - lo) / (hi - lo), 0, 1)); black when
// hi <= lo. Labels are alpha-blended over the grey:
//   c = round((1 - alpha) * grey + alpha * colour) per channel,
// NCR (1) red (255, 0, 0), ED (2) green (0, 255, 0), ET (4) yellow
// (255, 255, 0), alpha 0.5 by default.
// Slice choice: the axial (coronal) slice with the most ground-truth tumour
// voxels (any label != 0), the lowest index on a tie; a case without tumour
// takes the slice with the most brain (FLAIR != 0) voxels, else the middle.
//
// Training curves (render_fold_curves, render_run_curves): white canvases of
// two plots side by side. Per fold: the mean training loss per epoch, and the
// validation Dice of NCR, ET, ED and their mean at each validation epoch.
// Per run: every fold's loss, and every fold's mean validation Dice, one
// colour per fold. Axes start at 0 (Dice 0..1), ticks at 1/2/5 x 10^k steps,
// light grid lines, polylines 2 px wide, square markers at validation
// points, a legend with colour swatches right of each plot.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "data/brats_cases.h"
#include "data/volume.h"

namespace lk::eval {

// Thrown for bad input; what() is "<file>: <problem>".
class FigureError : public std::runtime_error {
 public:
  FigureError(const std::string& file, const std::string& problem) : std::runtime_error(file + ": " + problem) {}
};

// ---- raster images ----------------------------------------------------------

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3

  Image() = default;
  Image(int w, int h, Rgb fill = {});
  Rgb at(int x, int y) const;  // throws std::out_of_range outside
  // Pixels outside the image are ignored (clipping).
  void set(int x, int y, Rgb c);
};

// round((1 - alpha) * base + alpha * over) per channel; alpha in [0, 1].
Rgb blend(Rgb base, Rgb over, double alpha);

void fill_rect(Image& im, int x, int y, int w, int h, Rgb c);
// A 1-px outline of the rectangle [x, x + w) x [y, y + h).
void draw_rect(Image& im, int x, int y, int w, int h, Rgb c);
// Bresenham's line including both ends (the same pixels either way round); each point is a thickness x
// thickness square whose top-left corner is offset by -(thickness - 1) / 2.
void draw_line(Image& im, int x0, int y0, int x1, int y1, Rgb c, int thickness = 1);
void draw_polyline(Image& im, const std::vector<std::pair<int, int>>& pts, Rgb c, int thickness = 1);
// Copies `src` with its top-left corner at (x, y), clipped.
void blit(Image& dst, const Image& src, int x, int y);

// The 5x7 font. Each glyph pixel becomes a scale x scale square; the text's
// top-left is (x, y); '\n' is not special. Returns the width drawn.
int draw_text(Image& im, int x, int y, const std::string& text, Rgb c, int scale = 1);
int text_width(const std::string& text, int scale = 1);   // 6 * scale per character, less the last column
int text_height(int scale = 1);                           // 7 * scale
// Row `row` (0..6) of the glyph drawn for `c`: bit 4 is the leftmost column.
uint8_t glyph_row(char c, int row);
// The longest prefix of text (ending in "..", when cut) fitting max_width.
std::string fit_text(const std::string& text, int max_width, int scale = 1);

// PNG bytes (stbi_write_png_to_func); throws std::runtime_error on failure.
std::string encode_png(const Image& im);
// Encodes and writes `path` atomically; failures name the file.
void write_png(const std::string& path, const Image& im);

// ---- plots ------------------------------------------------------------------

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

// ---- training curves --------------------------------------------------------

struct EpochPoint {
  int64_t epoch = 0;
  double loss = 0, lr = 0;
  // dice_ncr, dice_et, dice_ed, mean of the validation after this epoch.
  std::optional<std::array<double, 4>> val;
};

// One JSON object per line (train/trainer.cpp's log.jsonl): "epoch"
// (integer >= 1), "loss", "lr" (finite numbers), optional "val" with
// "dice_ncr", "dice_et", "dice_ed", "mean" in [0, 1]; epochs strictly
// increasing; blank lines ignored. Throws FigureError "<path>: line N: ...".
std::vector<EpochPoint> read_training_log(const std::string& path);

struct FoldLog {
  int fold = 0;
  std::string path;  // its log.jsonl
  std::vector<EpochPoint> epochs;
};

// The folds of a run folder: <run>/fold_<k>/log.jsonl, by k; a folder that
// holds log.jsonl itself is one fold (k from its name fold_<k>, else 0).
// fold_<k> folders without a log, or with an empty one, go to `warn` and are
// left out; none left is a FigureError naming the run folder.
std::vector<FoldLog> find_fold_logs(const std::string& run,
                                    const std::function<void(const std::string&)>& warn = {});

// Loss and validation Dice (NCR, ET, ED, mean) of one fold.
Image render_fold_curves(const FoldLog& fold);
// Every fold's loss and mean validation Dice.
Image render_run_curves(const std::vector<FoldLog>& folds);
// The colour of fold k in render_run_curves.
Rgb fold_colour(int k);

// ---- overlay figures --------------------------------------------------------

struct LabelStyle {
  Rgb ncr{255, 0, 0}, ed{0, 255, 0}, et{255, 255, 0};
  double alpha = 0.5;
  // The colour of a BraTS 2021 label (1, 2, 4); nullopt for 0 and others.
  std::optional<Rgb> colour(uint8_t label) const;
};

// How a plane of the volume is shown: the voxel axis fixed by the slice,
// the axes along the panel's columns and rows, and whether each runs
// backwards (column 0 shows the last voxel).
struct ViewAxes {
  int slice_axis = 2, col_axis = 0, row_axis = 1;
  bool flip_col = false, flip_row = false;
};
// From the affine (see the top of this file). For BraTS' affine
// diag(-1, -1, 1): axial = slice z, columns x, rows y, no flips;
// coronal = slice y, columns x, rows z flipped (superior up).
ViewAxes axial_view(const data::Affine& a);
ViewAxes coronal_view(const data::Affine& a);

// [lo, hi]: the 0.5 and 99.5 percentiles of the non-zero voxels (0, 0 when none).
std::array<double, 2> flair_window(const std::vector<float>& flair);
// The index along axis `axis` with the most voxels of `labels` != 0 (lowest
// on a tie); when there are none, the most voxels of `brain` != 0 (when
// given and not empty); else dims[axis] / 2.
int64_t largest_tumour_slice(const std::vector<uint8_t>& labels, const data::Geometry& g, int axis,
                             const std::vector<float>* brain = nullptr);

// A plane of the volume in display orientation, square-pixel resampled and
// zoomed: its size, and per display pixel the voxel index (x fastest).
struct SliceSampling {
  int width = 0, height = 0;
  std::vector<int64_t> voxel;  // width * height
};
SliceSampling sample_slice(const data::Geometry& g, const ViewAxes& v, int64_t index, int zoom = 1);

// One case, in memory: the FLAIR and the label maps on its grid.
struct OverlayCase {
  std::string id;
  data::Geometry geom;
  std::vector<float> flair;
  std::vector<uint8_t> truth;               // BraTS 2021 values {0, 1, 2, 4}
  std::vector<std::vector<uint8_t>> preds;  // the same, one per model
};

struct OverlayOptions {
  std::vector<std::string> names;  // one per prediction
  int64_t slice = -1;              // the axial slice; -1: largest tumour area
  bool coronal = true;
  int zoom = 1;                    // 1..8
  LabelStyle style;
};

struct PanelRect {
  int x = 0, y = 0, w = 0, h = 0;
};

struct OverlayFigure {
  Image image;
  int64_t axial_slice = 0, coronal_slice = -1;  // -1: no coronal row
  std::array<double, 2> window{0, 0};
  // Per row (axial, then coronal), per panel (FLAIR, truth, predictions):
  // where the image lies in the figure.
  std::vector<std::vector<PanelRect>> panels;
};

// Throws FigureError (naming the case) for voxel counts that do not match
// the grid, labels outside {0, 1, 2, 4}, a names count that does not match
// the predictions, or a slice outside the volume.
OverlayFigure render_overlay(const OverlayCase& c, const OverlayOptions& opt);

// Reads a case's FLAIR and segmentation (c.images[0], c.seg) and the
// prediction files (one per model, in the case's grid: dimensions, spacing
// and affine; labels in `pred_coding`). Errors name the file and the problem.
OverlayCase load_overlay_case(const data::BratsCase& c, const std::vector<std::string>& pred_files, data::BratsNaming pred_coding);

}  // namespace lk::eval
