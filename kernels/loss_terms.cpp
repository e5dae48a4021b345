#include "kernels/loss_terms.h"

#include <vector>

#include "kernels/cross_entropy.h"
#include "kernels/softmax.h"
#include "kernels/tversky.h"

namespace lk::cpu {

template <typename T>
i64 ce_tversky_fwd(const TverskyParams& tp, i64 n, i64 c, i64 hw, const T* logits, const int32_t* target,
                   const T* weight, T* loss, T* stats) {
  std::vector<T> probs(static_cast<size_t>(n * c * hw));
  T* tail = stats + 4 * c;  // wsum, ce, tversky
  const i64 bad = cross_entropy_fwd<T>(n, c, hw, logits, target, weight, &tail[1], probs.data(), &tail[0]);
  if (bad >= 0) return bad;
  tversky_fwd<T>(tp, n, c, hw, probs.data(), target, &tail[2], stats);
  loss[0] = tail[1] + tail[2];
  return -1;
}

template <typename T>
void ce_tversky_bwd(const TverskyParams& tp, i64 n, i64 c, i64 hw, const T* dloss, const T* logits,
                    const int32_t* target, const T* weight, const T* stats, T* dlogits, bool accumulate) {
  const size_t size = static_cast<size_t>(n * c * hw);
  std::vector<T> probs(size), dprobs(size);
  softmax_fwd<T>(n, c, hw, logits, probs.data());
  cross_entropy_bwd<T>(n, c, hw, dloss, probs.data(), target, weight, stats + 4 * c, dlogits, accumulate);
  tversky_bwd<T>(tp, n, c, hw, dloss, target, stats, dprobs.data(), false);
  softmax_bwd<T>(n, c, hw, dprobs.data(), probs.data(), dlogits, true);
}

template <typename T>
void weighted_sum_fwd(i64 k, const T* const* xs, const double* w, i64 n, T* y) {
#pragma omp parallel for if (n > 4096)
  for (i64 e = 0; e < n; ++e) {
    double s = 0;
    for (i64 i = 0; i < k; ++i) s += w[i] * static_cast<double>(xs[i][e]);
    y[e] = static_cast<T>(s);
  }
}

template <typename T>
void weighted_sum_bwd(i64 k, const T* dy, const double* w, i64 n, T* const* dxs, const bool* accumulate) {
  for (i64 i = 0; i < k; ++i) {
    if (!dxs[i]) continue;
#pragma omp parallel for if (n > 4096)
    for (i64 e = 0; e < n; ++e) put_grad(dxs[i][e], static_cast<T>(w[i] * static_cast<double>(dy[e])), accumulate[i]);
  }
}

#define LK_INST(T)                                                                                               \
  template i64 ce_tversky_fwd<T>(const TverskyParams&, i64, i64, i64, const T*, const int32_t*, const T*, T*, T*); \
  template void ce_tversky_bwd<T>(const TverskyParams&, i64, i64, i64, const T*, const T*, const int32_t*, const T*, \
                                  const T*, T*, bool);                                                           \
  template void weighted_sum_fwd<T>(i64, const T* const*, const double*, i64, T*);                              \
  template void weighted_sum_bwd<T>(i64, const T*, const double*, i64, T* const*, const bool*);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
