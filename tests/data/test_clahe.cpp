// CLAHE (data/clahe.h): OpenCV's outputs on the golden fixtures
// (tests/golden/clahe, tools/golden/make_clahe_fixtures.py) reproduced
// exactly, hand-computed known answers, and clahe_slice's contract on
// z-scored slices (background, mean/std, contrast, constant slices, argument
// checks, thread safety).
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "data/clahe.h"

using namespace lk::data;
using Catch::Matchers::Contains;

namespace {

// One fixture file (format: tests/golden/clahe/README.md).
struct FixtureResult {
  int tiles_x = 0, tiles_y = 0;
  double clip = 0;
  std::vector<uint8_t> out;
};
struct Fixture {
  std::string name;
  int64_t h = 0, w = 0;
  std::vector<uint8_t> in;
  std::vector<FixtureResult> results;
};

uint32_t get_u32(const std::vector<char>& b, size_t& off) {
  REQUIRE(off + 4 <= b.size());
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[off + static_cast<size_t>(i)]);
  off += 4;
  return v;
}
std::vector<uint8_t> get_bytes(const std::vector<char>& b, size_t& off, size_t n) {
  REQUIRE(off + n <= b.size());
  std::vector<uint8_t> v(n);
  std::memcpy(v.data(), b.data() + off, n);
  off += n;
  return v;
}

Fixture read_fixture(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE(f.good());
  const std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  REQUIRE(b.size() >= 20);
  REQUIRE(std::string(b.data(), 8) == "LKCLAHE1");
  size_t off = 8;
  Fixture fx;
  fx.name = p.filename().string();
  fx.h = get_u32(b, off);
  fx.w = get_u32(b, off);
  const uint32_t n = get_u32(b, off);
  const size_t px = static_cast<size_t>(fx.h * fx.w);
  fx.in = get_bytes(b, off, px);
  for (uint32_t k = 0; k < n; ++k) {
    FixtureResult r;
    r.tiles_x = static_cast<int>(get_u32(b, off));
    r.tiles_y = static_cast<int>(get_u32(b, off));
    const uint64_t lo = get_u32(b, off), hi = get_u32(b, off);
    const uint64_t bits = lo | (hi << 32);
    std::memcpy(&r.clip, &bits, sizeof r.clip);  // IEEE-754 binary64, little-endian on disk
    r.out = get_bytes(b, off, px);
    fx.results.push_back(std::move(r));
  }
  REQUIRE(off == b.size());
  return fx;
}

// A z-scored BraTS-like slice: an elliptic brain (everything else exactly 0)
// whose left half is a low-contrast texture (raw 100 +- 3) and whose right
// half holds high-contrast structures (raw 40..220), z-scored over the brain.
// region (optional): 1 for left-half brain pixels, 0 elsewhere.
std::vector<float> brain_slice(int64_t H, int64_t W, unsigned seed, std::vector<uint8_t>* region = nullptr) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::vector<double> raw(static_cast<size_t>(H * W), 0.0);
  std::vector<uint8_t> mask(raw.size(), 0);
  const double cy = 0.5 * (H - 1), cx = 0.5 * (W - 1), ry = 0.42 * H, rx = 0.38 * W;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const double dy = (y - cy) / ry, dx = (x - cx) / rx;
      if (dy * dy + dx * dx > 1.0) continue;
      const size_t i = static_cast<size_t>(y * W + x);
      mask[i] = 1;
      if (x < cx) {
        raw[i] = 100.0 + 3.0 * std::sin(0.35 * x) * std::cos(0.27 * y) + noise(rng);
      } else {
        const bool bright = ((x / 6) + (y / 9)) % 3 == 0;
        raw[i] = (bright ? 200.0 : 60.0) + 0.15 * (y % 40) + 4.0 * noise(rng);
      }
    }
  double s = 0, s2 = 0, n = 0;
  for (size_t i = 0; i < raw.size(); ++i)
    if (mask[i]) {
      s += raw[i];
      s2 += raw[i] * raw[i];
      n += 1;
    }
  const double mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  std::vector<float> z(raw.size(), 0.0f);
  for (size_t i = 0; i < raw.size(); ++i)
    if (mask[i]) {
      z[i] = static_cast<float>((raw[i] - mean) / sd);
      if (z[i] == 0.0f) z[i] = 1e-6f;  // keep the brain mask exact
    }
  if (region) {
    region->assign(raw.size(), 0);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) (*region)[static_cast<size_t>(y * W + x)] = mask[static_cast<size_t>(y * W + x)] && x < cx;
  }
  return z;
}

struct Stats {
  double mean = 0, sd = 0;
  int64_t n = 0;
};
// Population mean/std of the pixels != 0 (and, with sel, where sel != 0).
Stats brain_stats(const std::vector<float>& p, const std::vector<uint8_t>* sel = nullptr) {
  double s = 0, s2 = 0;
  int64_t n = 0;
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != 0.0f && (!sel || (*sel)[i])) {
      s += p[i];
      s2 += double(p[i]) * p[i];
      ++n;
    }
  Stats st;
  st.n = n;
  if (n == 0) return st;
  st.mean = s / double(n);
  st.sd = std::sqrt(std::max(0.0, s2 / double(n) - st.mean * st.mean));
  return st;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("clahe_u8 reproduces OpenCV on every golden fixture", "[data][clahe]") {
  // Allowed: max |diff| = 0, no +-1 differences (the float arithmetic and
  // rounding follow OpenCV's; see data/clahe.h).
  const std::filesystem::path dir = LKASEG_GOLDEN_DIR "/clahe";
  REQUIRE(std::filesystem::is_directory(dir));
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".bin") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 6);
  int results = 0;
  for (const auto& p : files) {
    const Fixture fx = read_fixture(p);
    for (const FixtureResult& r : fx.results) {
      INFO(fx.name << " " << fx.h << "x" << fx.w << " clip " << r.clip << " tiles_x " << r.tiles_x << " tiles_y "
                   << r.tiles_y);
      const ClaheOptions o{r.clip, r.tiles_y, r.tiles_x, 256};
      std::vector<uint8_t> out(fx.in.size(), 0);
      clahe_u8(fx.in.data(), out.data(), fx.h, fx.w, o);
      int max_diff = 0, n_diff = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        const int d = std::abs(int(out[i]) - int(r.out[i]));
        max_diff = std::max(max_diff, d);
        n_diff += d != 0;
      }
      CHECK(max_diff == 0);
      CHECK(n_diff == 0);
      std::vector<uint8_t> inplace = fx.in;  // dst == src gives the same
      clahe_u8(inplace.data(), inplace.data(), fx.h, fx.w, o);
      CHECK(inplace == out);
      ++results;
    }
  }
  CHECK(results >= 34);
}

TEST_CASE("clahe_u8 hand-computed known answers", "[data][clahe]") {
  SECTION("one tile, no clipping: global equalisation, round half to even") {
    // cdf(0) = 2, cdf(128) = 3, cdf(255) = 4 of 4 pixels; LUT = cdf * 63.75:
    // 127.5 -> 128 (half to even), 191.25 -> 191, 255.
    const uint8_t in[4] = {0, 0, 128, 255};
    uint8_t out[4] = {};
    clahe_u8(in, out, 2, 2, {0.0, 1, 1, 256});
    CHECK(out[0] == 128);
    CHECK(out[1] == 128);
    CHECK(out[2] == 191);
    CHECK(out[3] == 255);
  }
  SECTION("one tile, clip 2.0: clipping and strided redistribution") {
    // 16 pixels: 10 x8, 20 x3, 30 x4, 200 x1. Limit max(int(2*16/256), 1) = 1,
    // excess 7 + 2 + 3 = 12: 12 / 256 = 0 per bin, the 12 left go to bins
    // 0, 21, ..., 231 (stride 256 / 12 = 21). cdf: 10 -> 2, 20 -> 3, 30 -> 5
    // (bin 21), 200 -> 14; times 255/16: 31.9, 47.8, 79.7, 223.1.
    std::vector<uint8_t> in = {10, 10, 10, 10, 10, 10, 10, 10, 20, 20, 20, 200, 30, 30, 30, 30};
    std::vector<uint8_t> out(16);
    clahe_u8(in.data(), out.data(), 4, 4, {2.0, 1, 1, 256});
    const std::vector<uint8_t> want = {32, 32, 32, 32, 32, 32, 32, 32, 48, 48, 48, 223, 80, 80, 80, 80};
    CHECK(out == want);
  }
  SECTION("fewer bins: values stay below bins") {
    std::mt19937 rng(5);
    std::vector<uint8_t> in(37 * 29), out(in.size());
    for (auto& v : in) v = static_cast<uint8_t>(rng() % 16);
    clahe_u8(in.data(), out.data(), 37, 29, {2.0, 4, 3, 16});
    CHECK(*std::max_element(out.begin(), out.end()) <= 15);
    CHECK(*std::max_element(out.begin(), out.end()) >= 14);  // equalisation spreads to the top
    in[100] = 16;
    CHECK_THROWS_WITH(clahe_u8(in.data(), out.data(), 37, 29, {2.0, 4, 3, 16}),
                      Contains("clahe_u8") && Contains("16"));
  }
}

TEST_CASE("clahe_u8 and clahe_slice reject bad arguments", "[data][clahe]") {
  std::vector<uint8_t> u(64 * 64, 7), v(64 * 64);
  std::vector<float> f(64 * 64, 0.5f);
  auto both = [&](int64_t h, int64_t w, ClaheOptions o, const std::string& what) {
    INFO(what);
    CHECK_THROWS_AS(clahe_u8(u.data(), v.data(), h, w, o), std::invalid_argument);
    CHECK_THROWS_WITH(clahe_u8(u.data(), v.data(), h, w, o), Contains("clahe_u8") && Contains(what));
    CHECK_THROWS_AS(clahe_slice(f.data(), h, w, o), std::invalid_argument);
    CHECK_THROWS_WITH(clahe_slice(f.data(), h, w, o), Contains("clahe_slice") && Contains(what));
  };
  both(0, 64, {}, "h must be >= 1, got 0");
  both(64, -3, {}, "w must be >= 1, got -3");
  both(64, 64, {2.0, 0, 8, 256}, "tiles_y must be in [1, h = 64], got 0");
  both(5, 64, {2.0, 8, 8, 256}, "tiles_y must be in [1, h = 5], got 8");
  both(64, 64, {2.0, 8, -1, 256}, "tiles_x must be in [1, w = 64], got -1");
  both(64, 7, {2.0, 8, 8, 256}, "tiles_x must be in [1, w = 7], got 8");
  both(64, 64, {-0.5, 8, 8, 256}, "clip_limit must be finite and >= 0, got -0.5");
  both(64, 64, {std::numeric_limits<double>::quiet_NaN(), 8, 8, 256}, "clip_limit");
  both(64, 64, {std::numeric_limits<double>::infinity(), 8, 8, 256}, "clip_limit");
  both(64, 64, {2.0, 8, 8, 1}, "bins must be in [2, 256], got 1");
  both(64, 64, {2.0, 8, 8, 257}, "bins must be in [2, 256], got 257");
  f[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(clahe_slice(f.data(), 64, 64), Contains("clahe_slice") && Contains("index 5"));
  f[5] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(clahe_slice(f.data(), 64, 64), std::invalid_argument);
  // the limits themselves are fine: tiles == size, clip 0
  CHECK_NOTHROW(clahe_u8(u.data(), v.data(), 8, 13, {0.0, 8, 13, 256}));
}

TEST_CASE("clahe_slice: background, mean/std, brain mask and the documented mapping", "[data][clahe]") {
  constexpr int64_t H = 128, W = 128;
  std::vector<uint8_t> left;
  const std::vector<float> before = brain_slice(H, W, 11, &left);
  std::vector<float> after = before;
  clahe_slice(after.data(), H, W);

  // Background stays exactly 0 (bit for bit), brain stays != 0.
  int bg_changed = 0, brain_zero = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] == 0.0f) bg_changed += std::memcmp(&before[i], &after[i], sizeof(float)) != 0;
    else brain_zero += after[i] == 0.0f;
  }
  CHECK(bg_changed == 0);
  CHECK(brain_zero == 0);
  CHECK(!same_bits(before, after));

  // Mean and std of the brain are kept.
  const Stats s0 = brain_stats(before), s1 = brain_stats(after);
  REQUIRE(s0.n == s1.n);
  CHECK(std::abs(s1.mean - s0.mean) < 1e-4);
  CHECK(std::abs(s1.sd - s0.sd) < 1e-4);

  // Local contrast rises: the low-contrast half gets a larger share of the
  // (unchanged) total spread.
  const Stats l0 = brain_stats(before, &left), l1 = brain_stats(after, &left);
  INFO("low-contrast region std before " << l0.sd << ", after " << l1.sd);
  CHECK(l1.sd > 3.0 * l0.sd);

  // The documented mapping: brain range -> 0..255 (background at level 0),
  // clahe_u8, then one affine map of the levels to the old mean/std.
  float lo = 1e30f, hi = -1e30f;
  for (float v : before)
    if (v != 0.0f) lo = std::min(lo, v), hi = std::max(hi, v);
  std::vector<uint8_t> q(before.size(), 0);
  for (size_t i = 0; i < q.size(); ++i)
    if (before[i] != 0.0f) q[i] = static_cast<uint8_t>(std::lrint((double(before[i]) - lo) * 255.0 / (double(hi) - lo)));
  clahe_u8(q.data(), q.data(), H, W);
  double sl = 0, sl2 = 0;
  for (size_t i = 0; i < q.size(); ++i)
    if (before[i] != 0.0f) sl += q[i], sl2 += double(q[i]) * q[i];
  const double lm = sl / double(s0.n), lsd = std::sqrt(sl2 / double(s0.n) - lm * lm);
  double worst = 0;
  for (size_t i = 0; i < q.size(); ++i)
    if (before[i] != 0.0f) worst = std::max(worst, std::abs(after[i] - ((q[i] - lm) * s0.sd / lsd + s0.mean)));
  CHECK(worst < 1e-5);

  // Deterministic.
  std::vector<float> again = before;
  clahe_slice(again.data(), H, W);
  CHECK(same_bits(after, again));
}

TEST_CASE("clahe_slice leaves constant and empty slices untouched", "[data][clahe]") {
  constexpr int64_t H = 40, W = 56;
  std::vector<float> empty(H * W, 0.0f);
  empty[3] = -0.0f;
  std::vector<float> e2 = empty;
  clahe_slice(e2.data(), H, W);
  CHECK(same_bits(empty, e2));

  std::vector<float> flat(H * W, 0.0f);  // a constant brain disc on background
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      if ((y - 20) * (y - 20) + (x - 28) * (x - 28) < 15 * 15) flat[y * W + x] = 0.73f;
  std::vector<float> f2 = flat;
  clahe_slice(f2.data(), H, W);
  CHECK(same_bits(flat, f2));

  std::vector<float> full(H * W, -1.25f);  // constant everywhere, no background
  std::vector<float> g2 = full;
  clahe_slice(g2.data(), H, W);
  CHECK(same_bits(full, g2));
}

TEST_CASE("clahe_slice works on odd sizes, other grids and bins", "[data][clahe]") {
  const std::vector<float> before = brain_slice(75, 100, 3);
  for (const ClaheOptions& o : {ClaheOptions{}, ClaheOptions{4.0, 2, 4, 256}, ClaheOptions{0.0, 3, 5, 64}}) {
    INFO("clip " << o.clip_limit << " tiles_y " << o.tiles_y << " tiles_x " << o.tiles_x << " bins " << o.bins);
    std::vector<float> after = before;
    clahe_slice(after.data(), 75, 100, o);
    const Stats s0 = brain_stats(before), s1 = brain_stats(after);
    CHECK(s0.n == s1.n);
    CHECK(std::abs(s1.mean - s0.mean) < 1e-4);
    CHECK(std::abs(s1.sd - s0.sd) < 1e-4);
    int bg = 0;
    for (size_t i = 0; i < before.size(); ++i) bg += (before[i] == 0.0f) != (after[i] == 0.0f);
    CHECK(bg == 0);
  }
}

TEST_CASE("clahe_slice from several threads equals the sequential result", "[data][clahe]") {
  constexpr int64_t H = 96, W = 80;
  constexpr int kSlices = 48, kThreads = 4;
  std::vector<std::vector<float>> input;
  for (int s = 0; s < kSlices; ++s) input.push_back(brain_slice(H, W, 100u + static_cast<unsigned>(s)));
  std::vector<std::vector<float>> seq = input, par = input;
  for (auto& p : seq) clahe_slice(p.data(), H, W);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&par, t] {
      for (int s = t; s < kSlices; s += kThreads) clahe_slice(par[static_cast<size_t>(s)].data(), H, W);
    });
  for (auto& th : threads) th.join();
  int differ = 0;
  for (int s = 0; s < kSlices; ++s) differ += !same_bits(seq[static_cast<size_t>(s)], par[static_cast<size_t>(s)]);
  CHECK(differ == 0);
  CHECK(!same_bits(seq[0], input[0]));
}
