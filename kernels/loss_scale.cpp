// The loss scaler's unscale on the CPU (kernels/loss_scale.h).
#include "kernels/loss_scale.h"

#include <algorithm>
#include <vector>

namespace lk::cpu {
namespace {

constexpr int64_t kChunk = int64_t(1) << 14;  // elements per task

// g[0, n) *= inv; 1 when a product is not finite. The flag is an OR of exact
// per-element tests (vectorised), so no value can hide or fake another.
int unscale_span(float* g, int64_t n, float inv) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int64_t k = 0; k < n; ++k) {
    const float v = g[k] * inv;
    g[k] = v;
    bad |= loss_scale_finite(v) ? 0 : 1;
  }
  return bad;
}

}  // namespace

void grad_unscale(float* const* grads, const int64_t* numel, int64_t count, float* s) {
  const float inv = s[kLossScaleInv];
  struct Chunk {
    int64_t tensor, begin;
  };
  std::vector<Chunk> chunks;  // every tensor's chunks: one parallel region for all
  for (int64_t i = 0; i < count; ++i)
    for (int64_t b = 0; b < numel[i]; b += kChunk) chunks.push_back({i, b});
  const auto n = static_cast<int64_t>(chunks.size());
  int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > 1)
  for (int64_t q = 0; q < n; ++q) {
    const Chunk c = chunks[q];
    bad |= unscale_span(grads[c.tensor] + c.begin, std::min(kChunk, numel[c.tensor] - c.begin), inv);
  }
  if (bad) s[kLossScaleNonFinite] = 1.0f;
}

}  // namespace lk::cpu
