// CLAHE (data/clahe.h): the algorithm and its exact arithmetic are described
// there; this file follows that description step by step.
#include "data/clahe.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace lk::data {

namespace {

[[noreturn]] void bad(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string(fn) + ": " + what);
}

void check_args(const char* fn, int64_t h, int64_t w, const ClaheOptions& o) {
  if (h < 1) bad(fn, "h must be >= 1, got " + std::to_string(h));
  if (w < 1) bad(fn, "w must be >= 1, got " + std::to_string(w));
  if (o.tiles_y < 1 || o.tiles_y > h)
    bad(fn, "tiles_y must be in [1, h = " + std::to_string(h) + "], got " + std::to_string(o.tiles_y));
  if (o.tiles_x < 1 || o.tiles_x > w)
    bad(fn, "tiles_x must be in [1, w = " + std::to_string(w) + "], got " + std::to_string(o.tiles_x));
  if (!(o.clip_limit >= 0.0) || !std::isfinite(o.clip_limit))
    bad(fn, "clip_limit must be finite and >= 0, got " + std::to_string(o.clip_limit));
  if (o.bins < 2 || o.bins > 256) bad(fn, "bins must be in [2, 256], got " + std::to_string(o.bins));
}

// Reflect-101 index into [0, n) for any i >= 0 (folds repeatedly when the
// padding exceeds the image: ..., 2, 1, 0, 1, 2, ..., n-1, n-2, ...).
int64_t reflect101(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  return i < n ? i : period - i;
}

// clahe_u8 on validated arguments.
void clahe_core(const uint8_t* src, uint8_t* dst, int64_t h, int64_t w, const ClaheOptions& o, const char* fn) {
  const int64_t TY = o.tiles_y, TX = o.tiles_x, B = o.bins;
  // 1. Tile grid (padding only when an axis is not divisible; then both axes).
  const bool divisible = h % TY == 0 && w % TX == 0;
  const int64_t hp = divisible ? h : h + TY - h % TY;
  const int64_t wp = divisible ? w : w + TX - w % TX;
  const int64_t th = hp / TY, tw = wp / TX, area = th * tw;

  int64_t limit = 0;
  if (o.clip_limit > 0.0)
    limit = std::max<int64_t>(static_cast<int64_t>(o.clip_limit * static_cast<double>(area) / static_cast<double>(B)), 1);
  const float lut_scale = static_cast<float>(B - 1) / static_cast<float>(area);

  std::vector<uint8_t> luts(static_cast<size_t>(TY * TX * B));
  std::vector<int64_t> hist(static_cast<size_t>(TX * B));
  std::vector<int64_t> cols(static_cast<size_t>(std::max(wp, 2 * w)));  // padded column -> source column
  for (int64_t c = 0; c < wp; ++c) cols[c] = reflect101(c, w);

  for (int64_t ty = 0; ty < TY; ++ty) {
    // 2. Histograms of one band of tiles.
    std::fill(hist.begin(), hist.end(), 0);
    for (int64_t r = ty * th; r < (ty + 1) * th; ++r) {
      const uint8_t* row = src + reflect101(r, h) * w;
      for (int64_t tx = 0; tx < TX; ++tx) {
        int64_t* hb = hist.data() + tx * B;
        for (int64_t c = tx * tw; c < (tx + 1) * tw; ++c) {
          const int v = row[cols[c]];
          if (v >= B) bad(fn, "pixel value " + std::to_string(v) + " >= bins = " + std::to_string(B));
          ++hb[v];
        }
      }
    }
    for (int64_t tx = 0; tx < TX; ++tx) {
      int64_t* hb = hist.data() + tx * B;
      if (limit > 0) {  // clip, then redistribute the excess
        int64_t excess = 0;
        for (int64_t v = 0; v < B; ++v)
          if (hb[v] > limit) {
            excess += hb[v] - limit;
            hb[v] = limit;
          }
        const int64_t batch = excess / B;
        int64_t rest = excess - batch * B;
        for (int64_t v = 0; v < B; ++v) hb[v] += batch;
        if (rest > 0) {
          const int64_t stride = std::max<int64_t>(B / rest, 1);
          for (int64_t v = 0; v < B && rest > 0; v += stride, --rest) ++hb[v];
        }
      }
      // 3. LUT from the cumulative histogram, single precision.
      uint8_t* lut = luts.data() + (ty * TX + tx) * B;
      int64_t cdf = 0;
      for (int64_t v = 0; v < B; ++v) {
        cdf += hb[v];
        const long q = std::lrint(static_cast<float>(cdf) * lut_scale);
        lut[v] = static_cast<uint8_t>(std::clamp<long>(q, 0, static_cast<long>(B - 1)));
      }
    }
  }

  // 4. Bilinear interpolation between the four nearest tile LUTs.
  int64_t* ix1 = cols.data();  // the column map is no longer needed
  int64_t* ix2 = cols.data() + w;
  std::vector<float> wx(static_cast<size_t>(2 * w));
  float* xa = wx.data();
  float* xa1 = wx.data() + w;
  const float inv_tw = 1.0f / static_cast<float>(tw);
  for (int64_t x = 0; x < w; ++x) {
    const float fx = static_cast<float>(x) * inv_tw - 0.5f;
    const int64_t t1 = static_cast<int64_t>(std::floor(fx));
    xa[x] = fx - static_cast<float>(t1);
    xa1[x] = 1.0f - xa[x];
    ix1[x] = std::max<int64_t>(t1, 0) * B;
    ix2[x] = std::min<int64_t>(t1 + 1, TX - 1) * B;
  }
  const float inv_th = 1.0f / static_cast<float>(th);
  const float top = static_cast<float>(B - 1);
  for (int64_t y = 0; y < h; ++y) {
    const float fy = static_cast<float>(y) * inv_th - 0.5f;
    const int64_t t1 = static_cast<int64_t>(std::floor(fy));
    const float ya = fy - static_cast<float>(t1), ya1 = 1.0f - ya;
    const uint8_t* lut1 = luts.data() + std::max<int64_t>(t1, 0) * TX * B;
    const uint8_t* lut2 = luts.data() + std::min<int64_t>(t1 + 1, TY - 1) * TX * B;
    const uint8_t* in = src + y * w;
    uint8_t* out = dst + y * w;
    for (int64_t x = 0; x < w; ++x) {
      const int v = in[x];
      const float r1 = static_cast<float>(lut1[ix1[x] + v]) * xa1[x] + static_cast<float>(lut1[ix2[x] + v]) * xa[x];
      const float r2 = static_cast<float>(lut2[ix1[x] + v]) * xa1[x] + static_cast<float>(lut2[ix2[x] + v]) * xa[x];
      const float res = r1 * ya1 + r2 * ya;
      out[x] = static_cast<uint8_t>(std::clamp(std::nearbyint(res), 0.0f, top));
    }
  }
}

}  // namespace

void clahe_u8(const uint8_t* src, uint8_t* dst, int64_t h, int64_t w, const ClaheOptions& o) {
  check_args("clahe_u8", h, w, o);
  if (src == nullptr || dst == nullptr) bad("clahe_u8", "null image pointer");
  clahe_core(src, dst, h, w, o, "clahe_u8");
}

void clahe_slice(float* plane, int64_t h, int64_t w, const ClaheOptions& o) {
  constexpr const char* fn = "clahe_slice";
  check_args(fn, h, w, o);
  if (plane == nullptr) bad(fn, "null plane pointer");
  const int64_t n = h * w, B = o.bins;

  // 1. Brain pixels (!= 0): count, range, mean.
  int64_t count = 0;
  float lo = 0.0f, hi = 0.0f;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = plane[i];
    if (v == 0.0f) continue;
    if (!std::isfinite(v)) bad(fn, "non-finite value " + std::to_string(v) + " at index " + std::to_string(i));
    if (count == 0 || v < lo) lo = v;
    if (count == 0 || v > hi) hi = v;
    sum += v;
    ++count;
  }
  if (count == 0 || lo == hi) return;
  const double mean = sum / static_cast<double>(count);

  // 2. Brain range onto the grey levels 0..B-1, background to level 0; the
  //    standard deviation on the way.
  std::vector<uint8_t> q(static_cast<size_t>(n));
  const double scale = static_cast<double>(B - 1) / (static_cast<double>(hi) - static_cast<double>(lo));
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = plane[i];
    if (v == 0.0f) {
      q[i] = 0;
      continue;
    }
    const double d = static_cast<double>(v) - mean;
    ss += d * d;
    const long l = std::lrint((static_cast<double>(v) - static_cast<double>(lo)) * scale);
    q[i] = static_cast<uint8_t>(std::clamp<long>(l, 0, static_cast<long>(B - 1)));
  }
  const double sd = std::sqrt(ss / static_cast<double>(count));

  // 3. CLAHE, in place.
  clahe_core(q.data(), q.data(), h, w, o, fn);

  // 4. Affine map of the brain's new levels back to the old mean and std.
  int64_t lh[256] = {};
  for (int64_t i = 0; i < n; ++i)
    if (plane[i] != 0.0f) ++lh[q[i]];
  double lsum = 0.0;
  for (int64_t l = 0; l < B; ++l) lsum += static_cast<double>(l) * static_cast<double>(lh[l]);
  const double lmean = lsum / static_cast<double>(count);
  double lss = 0.0;
  for (int64_t l = 0; l < B; ++l) lss += static_cast<double>(lh[l]) * (static_cast<double>(l) - lmean) * (static_cast<double>(l) - lmean);
  if (!(lss > 0.0)) return;  // every brain pixel on one level: cannot restore the std
  const double gain = sd / std::sqrt(lss / static_cast<double>(count));
  float table[256];
  for (int64_t l = 0; l < B; ++l) {
    const double t = (static_cast<double>(l) - lmean) * gain + mean;
    float f = static_cast<float>(t);
    if (f == 0.0f) f = t >= 0.0 ? FLT_MIN : -FLT_MIN;  // keep the brain mask (pixels != 0)
    table[l] = f;
  }
  for (int64_t i = 0; i < n; ++i)
    if (plane[i] != 0.0f) plane[i] = table[q[i]];
}

}  // namespace lk::data
