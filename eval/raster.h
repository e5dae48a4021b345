// Raster images for the figures: 8-bit RGB, row-major, (0, 0) the top-left
// pixel; rectangles, Bresenham lines with a square brush, a built-in 5x7
// bitmap font, PNG through stb_image_write (Debian libstb-dev, compiled
// file-local in raster.cpp), written atomically.
//
// Text: A-Z, 0-9, space and . , : ; - _ + = / ( ) [ ] % # ' ! ? < > * |;
// lowercase letters are drawn as capitals, any other character as '?'. A
// glyph occupies a 6x8 cell (one column and one row of spacing), times the
// scale.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lk::eval {

// Thrown for bad input; what() is "<file>: <problem>".
class FigureError : public std::runtime_error {
 public:
  FigureError(const std::string& file, const std::string& problem) : std::runtime_error(file + ": " + problem) {}
};

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
// The PNG carries a tEXt chunk "Software: lkaseg" right after its header,
// which is_lkaseg_png looks for (figures overwrite only their own PNGs).
std::string encode_png(const Image& im);
bool is_lkaseg_png(const std::string& path);
// Encodes and writes `path` atomically; failures name the file.
void write_png(const std::string& path, const Image& im);

// The colours the figures use for text, grid and frames.
inline constexpr Rgb kBlack{0, 0, 0}, kWhite{255, 255, 255}, kGrid{225, 225, 225}, kGrey{170, 170, 170};

// printf of one number ("%g", "%.2f", ...).
std::string fmt(const char* format, double v);

}  // namespace lk::eval
