#include "model/loss.h"

#include <stdexcept>

namespace lk::model {

LossTerms deep_supervision_loss(const std::vector<Tensor>& outputs, const Tensor& labels, const LossConfig& cfg) {
  if (outputs.empty() || outputs.size() > cfg.lambdas.size())
    throw std::invalid_argument("deep_supervision_loss: " + std::to_string(outputs.size()) + " outputs for " +
                                std::to_string(cfg.lambdas.size()) + " weights");
  if (static_cast<int64_t>(cfg.class_weights.size()) != outputs[0].size(1))
    throw std::invalid_argument("deep_supervision_loss: " + std::to_string(cfg.class_weights.size()) +
                                " class weights for " + std::to_string(outputs[0].size(1)) + " classes");
  const Tensor w = Tensor::from_vector(cfg.class_weights, {static_cast<int64_t>(cfg.class_weights.size())},
                                       outputs[0].dtype())
                       .to(outputs[0].device());
  const int64_t h = labels.size(1);
  LossTerms t;
  for (size_t i = 0; i < outputs.size(); ++i) {
    Tensor u = outputs[i];
    if (u.size(2) != h) {
      if (h % u.size(2)) shape_error("deep_supervision_loss", "output does not divide the label size", u.shape(), labels.shape());
      const int64_t f = h / u.size(2);
      u = cfg.bilinear_aux ? upsample_bilinear(u, f) : upsample_nearest(u, f);
    }
    const Tensor ce = cross_entropy(u, labels, w);
    const Tensor tv = tversky_loss(softmax(u), labels, cfg.tversky);
    t.ce.push_back(ce.item());
    t.tversky.push_back(tv.item());
    const Tensor term = scale(add(ce, tv), cfg.lambdas[i]);
    t.total = t.total.defined() ? add(t.total, term) : term;
  }
  return t;
}

}  // namespace lk::model
