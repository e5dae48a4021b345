// The paper's training loss (SPEC.md, paper §3.4) with deep supervision:
//   total = sum_i lambda_i (CE_w(U_i) + Tversky(softmax(U_i)))
// U_i = output i upsampled to the label size (bilinear, align_corners=False,
// or nearest), CE_w weighted cross-entropy, Tversky the adaptive Tversky loss.
//
// Nothing here waits for the device: the terms stay one-element tensors on
// the outputs' device (reading one synchronises, so read them when a log line
// is printed: LossMeter), and DeepSupervisionLoss uploads the class weights
// once, not at every call.
#pragma once

#include <cstdint>
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
  Tensor total;                     // one element, differentiable
  std::vector<Tensor> ce, tversky;  // per output: one element each, no history (on the device)
};

// The loss of one configuration; keeps the class weights on the last device
// (and dtype) it ran on. outputs as returned by SegNet::forward; labels
// (N, H, W) int32 with classes in [0, C) (on CUDA a bad label is reported
// at the next read of device data, engine/backend.h).
class DeepSupervisionLoss {
 public:
  explicit DeepSupervisionLoss(LossConfig cfg = {}) : cfg_(std::move(cfg)) {}
  LossTerms operator()(const std::vector<Tensor>& outputs, const Tensor& labels) const;
  const LossConfig& config() const { return cfg_; }

 private:
  LossConfig cfg_;
  mutable Tensor weights_;
};

// One call of DeepSupervisionLoss(cfg) (uploads the class weights each time).
LossTerms deep_supervision_loss(const std::vector<Tensor>& outputs, const Tensor& labels, const LossConfig& cfg = {});

// Keeps one-element losses on their device without reading them (one
// device-to-device copy per add, into a slot of a kept buffer), so a training
// loop reads the loss only when it logs. take() hands back every loss added,
// in order, so the loop sums them as if it had read each step (a run resumed
// between reads reports the uninterrupted run's epoch loss exactly).
class LossMeter {
 public:
  void add(const Tensor& loss);
  int64_t count() const { return count_; }
  // The losses added since the last take, in order; reads the device (waits
  // for it) and starts anew.
  std::vector<double> take();

 private:
  static constexpr int64_t kChunk = 64;  // slots per buffer; buffers are kept
  std::vector<Tensor> chunks_;
  int64_t count_ = 0;
};

}  // namespace lk::model
