#include "tests/eval/figure_files.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#include <stb_image.h>

namespace lk::test {

eval::Image decode_png(const std::string& path) {
  int w = 0, h = 0, n = 0;
  unsigned char* px = stbi_load(path.c_str(), &w, &h, &n, 3);
  REQUIRE(px != nullptr);
  eval::Image im(w, h);
  std::copy(px, px + static_cast<size_t>(w) * static_cast<size_t>(h) * 3, im.rgb.begin());
  stbi_image_free(px);
  return im;
}

void write_text(const std::string& path, const std::string& s) {
  std::ofstream(path, std::ios::binary) << s;
}

std::string log_line(int epoch, double loss, const char* val) {
  std::string s = "{\"epoch\": " + std::to_string(epoch) + ", \"steps\": 10, \"loss\": " + std::to_string(loss) +
                  ", \"lr\": 0.0001, \"seconds\": 1.5, \"wait_ms\": 0.1";
  if (val) s += std::string(", \"val\": ") + val;
  return s + "}\n";
}

}  // namespace lk::test
