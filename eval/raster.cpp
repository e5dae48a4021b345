// Raster images (eval/raster.h): pixels, rectangles, lines, the 5x7 font,
// PNG encoding.
#include "eval/raster.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "util/atomic_file.h"

#include <zlib.h>

#include <fstream>

// stb_image_write: the implementation lives here, file-local (STATIC), and
// without its stdio functions: every PNG goes through encode_png.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

namespace lk::eval {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

namespace {

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

}  // namespace

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

namespace {
// PNG: an 8-byte signature, then the IHDR chunk (4 length + 4 type + 13 data
// + 4 CRC bytes); ancillary chunks may follow it.
constexpr char kPngSignature[] = "\x89PNG\r\n\x1a\n";
constexpr size_t kIhdrEnd = 8 + 4 + 4 + 13 + 4;

void put_be32(std::string& s, uint32_t v) {
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<char>((v >> sh) & 0xFF));
}

// The tEXt chunk "Software\0lkaseg": length, type, data, CRC-32 of type + data.
const std::string& software_chunk() {
  static const std::string chunk = [] {
    const std::string body = std::string("tEXt") + std::string("Software\0lkaseg", 15);
    std::string c;
    put_be32(c, static_cast<uint32_t>(body.size() - 4));
    c += body;
    put_be32(c, static_cast<uint32_t>(
                    crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
    return c;
  }();
  return chunk;
}
}  // namespace

std::string encode_png(const Image& im) {
  if (im.width <= 0 || im.height <= 0) throw std::runtime_error("encode_png: empty image");
  std::string out;
  const auto sink = [](void* ctx, void* data, int size) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  if (!stbi_write_png_to_func(sink, &out, im.width, im.height, 3, im.rgb.data(), im.width * 3) || out.empty())
    throw std::runtime_error("PNG encoding of a " + std::to_string(im.width) + "x" + std::to_string(im.height) +
                             " image failed");
  return out.insert(kIhdrEnd, software_chunk());
}

bool is_lkaseg_png(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string head(kIhdrEnd + software_chunk().size(), '\0');
  return f.read(head.data(), static_cast<std::streamsize>(head.size())) && head.compare(0, 8, kPngSignature, 8) == 0 &&
         head.compare(kIhdrEnd, std::string::npos, software_chunk()) == 0;
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

}  // namespace lk::eval
