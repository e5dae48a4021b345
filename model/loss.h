// The paper's training loss (SPEC.md, paper §3.4) with deep supervision:
//   total = sum_i lambda_i (CE_w(U_i) + Tversky(softmax(U_i)))
// U_i = output i upsampled to the label size (bilinear, align_corners=False,
// or nearest), CE_w weighted cross-entropy, Tversky the adaptive Tversky loss.
#pragma once

#include <vector>

#include "engine/ops.h"

namespace lk::model {

struct LossConfig {
  std::vector<double> class_weights{0.1, 1.0, 1.0, 1.0};
  std::vector<double> lambdas{1.0, 0.4, 0.3, 0.2};  // main, 1/2, 1/4, 1/8
  TverskyParams tversky{};
  bool bilinear_aux = true;  // false: nearest upsampling of the auxiliary logits
};

struct LossTerms {
  Tensor total;                  // one element, differentiable
  std::vector<double> ce, tversky;  // per output, for logging
};

// outputs as returned by SegNet::forward; labels (N, H, W) int32.
LossTerms deep_supervision_loss(const std::vector<Tensor>& outputs, const Tensor& labels, const LossConfig& cfg = {});

}  // namespace lk::model
