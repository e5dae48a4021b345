// Weighted cross-entropy over softmax, mean reduction as PyTorch's
// F.cross_entropy(logits, target, weight=w): for the pixels i
//   loss = sum_i w[t_i] * -log softmax(z_i)[t_i] / sum_i w[t_i]
//   logits (N, C, HW), target (N, HW) int32 in [0, C), weight (C)
#pragma once

#include <cstdint>

#include "kernels/common.h"

namespace lk::cpu {

// Writes loss[0], the softmax probabilities (for the backward) and
// wsum[0] = sum_i w[t_i]. Returns the first out-of-range label index, or -1.
template <typename T>
i64 cross_entropy_fwd(i64 n, i64 c, i64 hw, const T* logits, const int32_t* target,
                      const T* weight, T* loss, T* probs, T* wsum);
// dlogits += dloss * w[t_i] * (p_i - onehot(t_i)) / wsum (= without accumulate)
template <typename T>
void cross_entropy_bwd(i64 n, i64 c, i64 hw, const T* dloss, const T* probs,
                       const int32_t* target, const T* weight, const T* wsum, T* dlogits, bool accumulate = true);

}  // namespace lk::cpu
