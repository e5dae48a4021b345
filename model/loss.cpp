#include "model/loss.h"

#include <algorithm>
#include <stdexcept>

#include "engine/backend.h"
#include "kernels/loss_terms.h"

namespace lk::model {

LossTerms DeepSupervisionLoss::operator()(const std::vector<Tensor>& outputs, const Tensor& labels) const {
  if (outputs.empty() || outputs.size() > cfg_.lambdas.size())
    throw std::invalid_argument("deep_supervision_loss: " + std::to_string(outputs.size()) + " outputs for " +
                                std::to_string(cfg_.lambdas.size()) + " weights");
  if (static_cast<int64_t>(cfg_.class_weights.size()) != outputs[0].size(1))
    throw std::invalid_argument("deep_supervision_loss: " + std::to_string(cfg_.class_weights.size()) +
                                " class weights for " + std::to_string(outputs[0].size(1)) + " classes");
  const Device dev = outputs[0].device();
  const DType dt = outputs[0].dtype();
  if (!weights_.defined() || !(weights_.device() == dev) || weights_.dtype() != dt)
    weights_ = Tensor::from_vector(cfg_.class_weights, {static_cast<int64_t>(cfg_.class_weights.size())}, dt).to(dev);
  const int64_t h = labels.size(1), c = outputs[0].size(1);
  LossTerms t;
  std::vector<Tensor> terms;
  for (size_t i = 0; i < outputs.size(); ++i) {
    Tensor u = outputs[i];
    if (u.size(2) != h) {
      if (h % u.size(2)) shape_error("deep_supervision_loss", "output does not divide the label size", u.shape(), labels.shape());
      const int64_t f = h / u.size(2);
      u = cfg_.bilinear_aux ? upsample_bilinear(u, f) : upsample_nearest(u, f);
    }
    // One fused op per output; data-parallel ranks (a BatchReduceScope) take
    // the composition, whose ops sum the whole batch's statistics.
    if (c <= cpu::kCeTverskyMaxClasses && !current_batch_reduce()) {
      Tensor stats;
      terms.push_back(ce_tversky_loss(u, labels, weights_, cfg_.tversky, &stats));
      t.ce.push_back(stats.slice_as(4 * c + 1, {1}));
      t.tversky.push_back(stats.slice_as(4 * c + 2, {1}));
    } else {
      const Tensor ce = cross_entropy(u, labels, weights_);
      const Tensor tv = tversky_loss(softmax(u), labels, cfg_.tversky);
      t.ce.push_back(ce.detach());
      t.tversky.push_back(tv.detach());
      terms.push_back(add(ce, tv));
    }
  }
  t.total = weighted_sum(terms, std::vector<double>(cfg_.lambdas.begin(), cfg_.lambdas.begin() + terms.size()));
  return t;
}

LossTerms deep_supervision_loss(const std::vector<Tensor>& outputs, const Tensor& labels, const LossConfig& cfg) {
  return DeepSupervisionLoss(cfg)(outputs, labels);
}

void LossMeter::add(const Tensor& loss) {
  if (!loss.defined() || loss.numel() != 1) throw std::invalid_argument("LossMeter::add: needs a one-element loss");
  if (!chunks_.empty() && (!(chunks_[0].device() == loss.device()) || chunks_[0].dtype() != loss.dtype())) {
    if (count_ > 0) throw std::invalid_argument("LossMeter::add: a loss on another device or of another dtype");
    chunks_.clear();
  }
  const size_t c = static_cast<size_t>(count_ / kChunk);
  if (c == chunks_.size()) chunks_.push_back(Tensor::empty({kChunk}, loss.dtype(), loss.device()));
  backend(loss.device()).copy(loss.view({1}), chunks_[c].slice_as(count_ % kChunk, {1}));
  ++count_;
}

std::vector<double> LossMeter::take() {
  std::vector<double> all;
  for (size_t c = 0; static_cast<int64_t>(c) * kChunk < count_; ++c) {
    const std::vector<double> v =
        chunks_[c].head(std::min(kChunk, count_ - static_cast<int64_t>(c) * kChunk)).to_vector();
    all.insert(all.end(), v.begin(), v.end());
  }
  count_ = 0;
  return all;
}

}  // namespace lk::model
