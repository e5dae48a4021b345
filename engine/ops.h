// The differentiable ops of the engine. Each validates its arguments (a bad
// shape throws std::invalid_argument naming the op and the shapes), allocates
// its output on the inputs' device, runs the device's Backend and, when an
// input requires grad, records the backward. Images are NCHW.
//
// Mixed precision: activations may be bfloat16 / float16 while parameters
// (weights, biases, batch-norm parameters and running statistics) stay
// float32: conv2d, conv_transpose2d, linear, batch_norm, batch_norm_relu and
// lka_gate accept float32 parameters with a reduced-precision input; their
// output has the input's dtype, their parameter gradients float32.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/tensor.h"

namespace lk {

struct Conv2dOptions {
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
};

// x (N, C_in, H, W), w (C_out, C_in/groups, KH, KW), b (C_out) or undefined
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o = {});
// x (N, C_in, H, W), w (C_in, C_out, K, K), b (C_out) or undefined
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride = 2,
                        int64_t padding = 0);

// running_mean/var are updated in place in training mode (no grad through them).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// Batch norm fused with ReLU and a residual add, one op (kernels/batch_norm_relu.h):
// relu(batch_norm(x)) (None), relu(batch_norm(x)) + residual (AfterRelu) or
// relu(batch_norm(x) + residual) (BeforeRelu); residual has x's shape (and
// is undefined for None). Same arguments and running-stat update as batch_norm.
Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                       const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5,
                       const Tensor& residual = {}, BnResidual mode = BnResidual::None);

// y = x * sigmoid(batch_norm(f)): the LKA's attention tail as one op (fused
// on CUDA); same arguments and running-stat update as batch_norm.
Tensor lka_gate(const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// x converted to `dtype` (a float type); the gradient converts back. The
// boundary of mixed precision: the network's input to bf16/f16, its logits
// back to float32 (model/networks.h).
Tensor cast(const Tensor& x, DType dtype);

Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
// Broadcasting over equal-rank shapes (each dim equal or 1), rank <= 4.
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double s);

Tensor global_avg_pool(const Tensor& x);  // (N, C, H, W) -> (N, C, 1, 1)
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);  // (N, IN) x (OUT, IN)
Tensor max_pool2d(const Tensor& x, int64_t kernel = 2, int64_t stride = 2);
Tensor upsample_bilinear(const Tensor& x, int64_t factor);  // align_corners=False
Tensor upsample_nearest(const Tensor& x, int64_t factor);
Tensor concat(const std::vector<Tensor>& xs);  // along channels (dim 1)
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor softmax(const Tensor& x);  // over channels (dim 1)

// Weighted cross-entropy over softmax(logits), PyTorch's weight= with mean
// reduction. target: int32 (N, H, W) with labels in [0, C). weight (C).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight);
// Adaptive Tversky loss on probabilities (N, C, H, W); see kernels/tversky.h.
// If stats is given it receives TP, FP, FN, alpha per class (4*C).
Tensor tversky_loss(const Tensor& probs, const Tensor& target, const TverskyParams& p = {},
                    Tensor* stats = nullptr);

// One deep-supervision term on logits: CE_w(logits) + Tversky(softmax(logits))
// as one op (kernels/loss_terms.h; equal to the composition of the two ops,
// fused on CUDA), at most 8 classes. If stats is given it receives TP, FP, FN,
// alpha per class, then wsum, the CE and the Tversky loss (4C + 3).
Tensor ce_tversky_loss(const Tensor& logits, const Tensor& target, const Tensor& weight, const TverskyParams& p = {},
                       Tensor* stats = nullptr);
// sum_i w_i xs[i] over same-shape tensors (the weighted total of loss terms).
Tensor weighted_sum(const std::vector<Tensor>& xs, const std::vector<double>& w);

// Whole-batch statistics over data-parallel ranks (engine/dist.h). While a
// BatchReduceScope is alive on this thread, the ops whose value depends on
// the whole batch sum their per-batch statistics over the ranks with
// `sum(v, n)` (n host doubles, in place, the same call on every rank) before
// using them, so N ranks at batch B compute what one process computes at
// batch N*B:
//   cross_entropy  the weighted log-likelihood and the weight sum,
//   tversky_loss   the soft counts TP, FP, FN per class,
//   batch_norm, lka_gate in training, when sync_bn: per channel sum x and
//                sum x^2 and the value count (forward), sum dy and
//                sum dy*xhat (backward; dgamma, dbeta stay this rank's share).
// Each rank's backward then gives its share of the gradient of the global
// loss; GradSync adds the shares. The backward of an op recorded inside the
// scope reduces too, wherever it runs.
struct BatchReduce {
  std::function<void(double* v, int64_t n)> sum;
  bool sync_bn = false;
};
class BatchReduceScope {
 public:
  explicit BatchReduceScope(std::shared_ptr<const BatchReduce> r);
  ~BatchReduceScope();
  BatchReduceScope(const BatchReduceScope&) = delete;
  BatchReduceScope& operator=(const BatchReduceScope&) = delete;

 private:
  std::shared_ptr<const BatchReduce> prev_;
};
// The innermost active one on this thread, or null.
const std::shared_ptr<const BatchReduce>& current_batch_reduce();

// Training augmentation (kernels/augment.h) of a batch on its device, no
// autograd: draws int32 (B, kAugDrawWords) (pack_augment_draws), images
// float32 (B, 4, S, S), labels int32 (B, S, S) or undefined -> images
// (B, 4, O, O) and labels (B, O, O) (undefined without labels), O = out_side.
std::pair<Tensor, Tensor> augment_batch(const Tensor& draws, const Tensor& images, const Tensor& labels,
                                        int64_t out_side = 128, int64_t pad = 16);

}  // namespace lk
