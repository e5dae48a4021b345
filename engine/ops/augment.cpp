// augment_batch: shape checks and outputs for Backend::augment.
#include <stdexcept>
#include <string>

#include "engine/ops/common.h"
#include "kernels/augment.h"

namespace lk {

std::pair<Tensor, Tensor> augment_batch(const Tensor& draws, const Tensor& images, const Tensor& labels,
                                        int64_t out_side, int64_t pad) {
  const char* op = "augment_batch";
  detail::require_rank(op, "images", images, 4);
  detail::require_rank(op, "draws", draws, 2);
  if (images.dtype() != DType::F32) throw std::invalid_argument("augment_batch: images must be float32");
  const int64_t B = images.size(0), S = images.size(2);
  if (images.size(1) != data::kAugChannels || images.size(3) != S)
    shape_error(op, "images must be (B, 4, S, S)", images.shape());
  if (draws.dtype() != DType::I32 || draws.size(0) != B || draws.size(1) != data::kAugDrawWords)
    shape_error(op, "draws must be int32 (B, " + std::to_string(data::kAugDrawWords) + ")", draws.shape(),
                images.shape());
  if (labels.defined()) {
    detail::require_rank(op, "labels", labels, 3);
    if (labels.dtype() != DType::I32 || labels.size(0) != B || labels.size(1) != S || labels.size(2) != S)
      shape_error(op, "labels must be int32 (B, S, S)", labels.shape(), images.shape());
  }
  for (const Tensor* t : {&draws, &labels})
    if (t->defined() && !(t->device() == images.device()))
      throw std::invalid_argument("augment_batch: tensors on " + images.device().str() + " and " +
                                  t->device().str());
  if (out_side < 1 || pad < 0 || out_side > S + 2 * pad)
    throw std::invalid_argument("augment_batch: output side " + std::to_string(out_side) + " with pad " +
                                std::to_string(pad) + " does not fit slices of side " + std::to_string(S));
  Tensor out_img = Tensor::empty({B, data::kAugChannels, out_side, out_side}, DType::F32, images.device());
  Tensor out_lab = labels.defined() ? Tensor::empty({B, out_side, out_side}, DType::I32, images.device()) : Tensor();
  if (B > 0) detail::be(images).augment(draws, pad, images, labels, out_img, out_lab);
  return {out_img, out_lab};
}

}  // namespace lk
