#include "eval/figures.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "eval/metrics.h"
#include "data/nifti_read.h"
#include "util/atomic_file.h"

// stb_image_write: the implementation lives here, file-local (STATIC), and
// without its stdio functions: every PNG goes through encode_png.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

namespace lk::eval {

using namespace lk::data;

namespace fs = std::filesystem;

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// ---- the 5x7 font -------------------------------------------------------------
// Seven rows of five columns per glyph, '#' ink.
struct GlyphDef {
  char c;
  const char* rows[7];
};

constexpr GlyphDef kGlyphDefs[] = {
    {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
    {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
    {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
    {'D', {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."}},
    {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
    {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
    {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
    {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
    {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
    {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
    {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
    {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
    {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
    {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
    {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
    {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
    {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
    {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
    {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
    {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},
    {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
    {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},
    {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
    {';', {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."}},
    {'-', {".....", ".....", ".....", ".###.", ".....", ".....", "....."}},
    {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
    {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
    {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
    {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
    {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
    {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
    {'[', {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}},
    {']', {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}},
    {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},
    {'#', {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."}},
    {'\'', {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."}},
    {'!', {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."}},
    {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
    {'<', {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."}},
    {'>', {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."}},
    {'*', {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."}},
    {'|', {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
};

// The glyph table indexed by ASCII code, rows as 5-bit masks (bit 4 left).
struct Font {
  std::array<std::array<uint8_t, 7>, 128> rows{};
  std::array<bool, 128> has{};
  Font() {
    for (const GlyphDef& g : kGlyphDefs) {
      const auto i = static_cast<size_t>(g.c);
      has[i] = true;
      for (size_t r = 0; r < 7; ++r) {
        uint8_t m = 0;
        for (int k = 0; k < 5; ++k) m = static_cast<uint8_t>((m << 1) | (g.rows[r][k] == '#' ? 1 : 0));
        rows[i][r] = m;
      }
    }
  }
};

const Font& font() {
  static const Font f;
  return f;
}

// Black text on a light background or white on dark: the colours we use.
constexpr Rgb kBlack{0, 0, 0}, kWhite{255, 255, 255}, kGrid{225, 225, 225}, kGrey{170, 170, 170};

}  // namespace

// ---- images -----------------------------------------------------------------------

Image::Image(int w, int h, Rgb fill) : width(w), height(h) {
  if (w < 0 || h < 0) throw std::invalid_argument("Image: negative size");
  rgb.resize(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  for (size_t i = 0; i < rgb.size(); i += 3) rgb[i] = fill.r, rgb[i + 1] = fill.g, rgb[i + 2] = fill.b;
}

Rgb Image::at(int x, int y) const {
  if (x < 0 || y < 0 || x >= width || y >= height)
    throw std::out_of_range("Image::at(" + std::to_string(x) + ", " + std::to_string(y) + ") outside " +
                            std::to_string(width) + "x" + std::to_string(height));
  const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * 3;
  return {rgb[i], rgb[i + 1], rgb[i + 2]};
}

void Image::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * 3;
  rgb[i] = c.r, rgb[i + 1] = c.g, rgb[i + 2] = c.b;
}

Rgb blend(Rgb base, Rgb over, double alpha) {
  const auto mix = [alpha](uint8_t b, uint8_t o) {
    return static_cast<uint8_t>(std::clamp<long>(std::lround((1 - alpha) * b + alpha * o), 0, 255));
  };
  return {mix(base.r, over.r), mix(base.g, over.g), mix(base.b, over.b)};
}

void fill_rect(Image& im, int x, int y, int w, int h, Rgb c) {
  const int x0 = std::max(0, x), y0 = std::max(0, y);
  const int x1 = std::min(im.width, x + w), y1 = std::min(im.height, y + h);
  for (int yy = y0; yy < y1; ++yy)
    for (int xx = x0; xx < x1; ++xx) im.set(xx, yy, c);
}

void draw_rect(Image& im, int x, int y, int w, int h, Rgb c) {
  if (w <= 0 || h <= 0) return;
  fill_rect(im, x, y, w, 1, c);
  fill_rect(im, x, y + h - 1, w, 1, c);
  fill_rect(im, x, y, 1, h, c);
  fill_rect(im, x + w - 1, y, 1, h, c);
}

void draw_line(Image& im, int x0, int y0, int x1, int y1, Rgb c, int thickness) {
  // The same pixels whichever end comes first.
  if (x1 < x0 || (x1 == x0 && y1 < y0)) std::swap(x0, x1), std::swap(y0, y1);
  const int t = std::max(1, thickness), off = (t - 1) / 2;
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    fill_rect(im, x0 - off, y0 - off, t, t, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

void draw_polyline(Image& im, const std::vector<std::pair<int, int>>& pts, Rgb c, int thickness) {
  if (pts.size() == 1) draw_line(im, pts[0].first, pts[0].second, pts[0].first, pts[0].second, c, thickness);
  for (size_t i = 1; i < pts.size(); ++i)
    draw_line(im, pts[i - 1].first, pts[i - 1].second, pts[i].first, pts[i].second, c, thickness);
}

void blit(Image& dst, const Image& src, int x, int y) {
  for (int yy = 0; yy < src.height; ++yy)
    for (int xx = 0; xx < src.width; ++xx) dst.set(x + xx, y + yy, src.at(xx, yy));
}

uint8_t glyph_row(char c, int row) {
  if (row < 0 || row > 6) return 0;
  unsigned char u = static_cast<unsigned char>(c);
  if (u >= 'a' && u <= 'z') u = static_cast<unsigned char>(u - 'a' + 'A');
  const Font& f = font();
  if (u >= 128 || !f.has[u]) u = '?';
  return f.rows[u][static_cast<size_t>(row)];
}

int text_width(const std::string& text, int scale) {
  return text.empty() ? 0 : (6 * static_cast<int>(text.size()) - 1) * scale;
}

int text_height(int scale) { return 7 * scale; }

int draw_text(Image& im, int x, int y, const std::string& text, Rgb c, int scale) {
  const int s = std::max(1, scale);
  for (size_t i = 0; i < text.size(); ++i) {
    const int gx = x + static_cast<int>(i) * 6 * s;
    for (int r = 0; r < 7; ++r) {
      const uint8_t m = glyph_row(text[i], r);
      for (int k = 0; k < 5; ++k)
        if (m & (1u << (4 - k))) fill_rect(im, gx + k * s, y + r * s, s, s, c);
    }
  }
  return text_width(text, s);
}

std::string fit_text(const std::string& text, int max_width, int scale) {
  if (text_width(text, scale) <= max_width) return text;
  std::string t = text;
  while (!t.empty() && text_width(t + "..", scale) > max_width) t.pop_back();
  return t.empty() ? std::string() : t + "..";
}

std::string encode_png(const Image& im) {
  if (im.width <= 0 || im.height <= 0) throw std::runtime_error("encode_png: empty image");
  std::string out;
  const auto sink = [](void* ctx, void* data, int size) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  if (!stbi_write_png_to_func(sink, &out, im.width, im.height, 3, im.rgb.data(), im.width * 3) || out.empty())
    throw std::runtime_error("PNG encoding of a " + std::to_string(im.width) + "x" + std::to_string(im.height) +
                             " image failed");
  return out;
}

void write_png(const std::string& path, const Image& im) {
  std::string bytes;
  try {
    bytes = encode_png(im);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  write_file_atomically(path, bytes);  // throws naming the path
}

// ---- plots ------------------------------------------------------------------------

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

// ---- training curves ----------------------------------------------------------------

std::vector<EpochPoint> read_training_log(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw FigureError(path, "cannot open the training log");
  std::vector<EpochPoint> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string where = "line " + std::to_string(n) + ": ";
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw FigureError(path, where + "not JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw FigureError(path, where + "not a JSON object");
    const auto number = [&](const nlohmann::json& o, const char* key, const std::string& ctx) {
      if (!o.contains(key)) throw FigureError(path, where + ctx + "\"" + key + "\" is missing");
      const nlohmann::json& v = o.at(key);
      if (!v.is_number() || !std::isfinite(v.get<double>()))
        throw FigureError(path, where + ctx + "\"" + key + "\" is not a finite number: " + v.dump());
      return v.get<double>();
    };
    EpochPoint p;
    if (!j.contains("epoch") || !j.at("epoch").is_number_integer() || j.at("epoch").get<int64_t>() < 1)
      throw FigureError(path, where + "\"epoch\" must be an integer >= 1" +
                                  (j.contains("epoch") ? ", got " + j.at("epoch").dump() : std::string(", missing")));
    p.epoch = j.at("epoch").get<int64_t>();
    p.loss = number(j, "loss", "");
    p.lr = number(j, "lr", "");
    if (j.contains("val") && !j.at("val").is_null()) {
      const nlohmann::json& v = j.at("val");
      if (!v.is_object()) throw FigureError(path, where + "\"val\" is not an object");
      std::array<double, 4> d{};
      const char* keys[4] = {"dice_ncr", "dice_et", "dice_ed", "mean"};
      for (size_t k = 0; k < 4; ++k) {
        d[k] = number(v, keys[k], "val.");
        if (d[k] < 0 || d[k] > 1)
          throw FigureError(path, where + "val.\"" + keys[k] + "\" = " + fmt("%g", d[k]) + " is outside [0, 1]");
      }
      p.val = d;
    }
    if (!out.empty() && p.epoch <= out.back().epoch)
      throw FigureError(path, where + "epoch " + std::to_string(p.epoch) + " after epoch " +
                                  std::to_string(out.back().epoch) + " (epochs must increase)");
    out.push_back(p);
  }
  if (in.bad()) throw FigureError(path, "read error after line " + std::to_string(n));
  return out;
}

namespace {

// k of a folder named fold_<k>; -1 otherwise.
int fold_number(const std::string& name) {
  if (name.rfind("fold_", 0) != 0 || name.size() == 5 || name.size() > 12) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoi(name.substr(5));
}

}  // namespace

std::vector<FoldLog> find_fold_logs(const std::string& run, const std::function<void(const std::string&)>& warn) {
  const auto say = [&](const std::string& m) {
    if (warn)
      warn(m);
    else
      std::fprintf(stderr, "lkaseg: warning: %s\n", m.c_str());
  };
  std::error_code ec;
  if (!fs::is_directory(run, ec)) throw FigureError(run, "not a folder (--run wants a run folder with fold_<k>/)");
  std::vector<FoldLog> folds;
  const fs::path own = fs::path(run) / "log.jsonl";
  if (fs::exists(own, ec)) {  // a fold folder itself
    FoldLog f;
    const fs::path norm = fs::path(run).lexically_normal();
    const std::string name = norm.has_filename() ? norm.filename().string() : norm.parent_path().filename().string();
    f.fold = std::max(0, fold_number(name));
    f.path = own.string();
    f.epochs = read_training_log(f.path);
    if (f.epochs.empty()) throw FigureError(f.path, "no epoch logged yet");
    folds.push_back(std::move(f));
    return folds;
  }
  std::map<int, fs::path> dirs;
  for (const auto& e : fs::directory_iterator(run))
    if (e.is_directory())
      if (const int k = fold_number(e.path().filename().string()); k >= 0) dirs[k] = e.path();
  for (const auto& [k, dir] : dirs) {
    const fs::path log = dir / "log.jsonl";
    if (!fs::exists(log)) {
      say(dir.string() + ": no log.jsonl yet; fold " + std::to_string(k) + " left out of the curves");
      continue;
    }
    FoldLog f;
    f.fold = k;
    f.path = log.string();
    f.epochs = read_training_log(f.path);
    if (f.epochs.empty()) {
      say(f.path + ": no epoch logged yet; fold " + std::to_string(k) + " left out of the curves");
      continue;
    }
    folds.push_back(std::move(f));
  }
  if (folds.empty()) throw FigureError(run, "no fold_<k>/log.jsonl with a logged epoch");
  return folds;
}

Rgb fold_colour(int k) {
  static constexpr Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                                     {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                     {188, 189, 34},  {23, 190, 207}};
  constexpr int n = static_cast<int>(sizeof kPalette / sizeof kPalette[0]);
  return kPalette[((k % n) + n) % n];
}

namespace {

constexpr Rgb kCurveNcr{200, 30, 30}, kCurveEt{205, 150, 0}, kCurveEd{30, 150, 30};

Image side_by_side(const Image& a, const Image& b) {
  Image out(a.width + b.width, std::max(a.height, b.height), kWhite);
  blit(out, a, 0, 0);
  blit(out, b, a.width, 0);
  return out;
}

PlotSeries loss_series(const FoldLog& f, const std::string& label, Rgb c) {
  PlotSeries s{label, c, {}, false, 2};
  for (const EpochPoint& p : f.epochs) s.points.emplace_back(static_cast<double>(p.epoch), p.loss);
  return s;
}

PlotSeries dice_series(const FoldLog& f, size_t k, const std::string& label, Rgb c) {
  PlotSeries s{label, c, {}, true, 2};
  for (const EpochPoint& p : f.epochs)
    if (p.val) s.points.emplace_back(static_cast<double>(p.epoch), (*p.val)[k]);
  return s;
}

}  // namespace

Image render_fold_curves(const FoldLog& fold) {
  const std::string name = "FOLD " + std::to_string(fold.fold);
  PlotSpec loss;
  loss.title = name + ": TRAINING LOSS";
  loss.xlabel = "EPOCH";
  loss.series.push_back(loss_series(fold, "LOSS", fold_colour(0)));
  PlotSpec dice;
  dice.title = name + ": VALIDATION DICE";
  dice.xlabel = "EPOCH";
  dice.ymax = 1;
  dice.series.push_back(dice_series(fold, 0, "NCR", kCurveNcr));
  dice.series.push_back(dice_series(fold, 1, "ET", kCurveEt));
  dice.series.push_back(dice_series(fold, 2, "ED", kCurveEd));
  dice.series.push_back(dice_series(fold, 3, "MEAN", kBlack));
  // Both plots share the epoch axis.
  dice.xmax = plot_frame(loss).xmax;
  return side_by_side(render_plot(loss), render_plot(dice));
}

Image render_run_curves(const std::vector<FoldLog>& folds) {
  PlotSpec loss;
  loss.title = "TRAINING LOSS, " + std::to_string(folds.size()) + (folds.size() == 1 ? " FOLD" : " FOLDS");
  loss.xlabel = "EPOCH";
  PlotSpec dice;
  dice.title = "VALIDATION DICE, MEAN OF NCR ET ED";
  dice.xlabel = "EPOCH";
  dice.ymax = 1;
  for (const FoldLog& f : folds) {
    const std::string name = "FOLD " + std::to_string(f.fold);
    loss.series.push_back(loss_series(f, name, fold_colour(f.fold)));
    dice.series.push_back(dice_series(f, 3, name, fold_colour(f.fold)));
  }
  dice.xmax = plot_frame(loss).xmax;
  return side_by_side(render_plot(loss), render_plot(dice));
}

// ---- overlays -------------------------------------------------------------------------

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
