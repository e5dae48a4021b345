// softmax over channels, weighted cross-entropy, adaptive Tversky, their
// fused sum on logits, the weighted sum of loss terms.
#include "engine/ops/common.h"
#include "kernels/loss_terms.h"

namespace lk {
using namespace detail;

Tensor softmax(const Tensor& x) {
  const char* op = "softmax";
  if (!x.defined() || x.ndim() < 2) shape_error(op, "input must be (N, C, ...)", x.defined() ? x.shape() : Shape{});
  require_float(op, x);
  Tensor y = new_like(x, x.shape());
  be(x).softmax_fwd(x, y);
  if (needs_grad({&x})) {
    Tensor ys = y.detach();
    record(y, op, {x}, [x, ys](const Tensor& dy) { be(dy).softmax_bwd(dy, ys, grad_buffer(x)); });
  }
  return y;
}

namespace {
void check_target(const char* op, const Tensor& x, const Tensor& target) {
  require_rank(op, "input", x, 4);
  require_float(op, x);
  if (!target.defined() || target.dtype() != DType::I32)
    throw std::invalid_argument(std::string(op) + ": target must be an int32 label map");
  const Shape want{x.size(0), x.size(2), x.size(3)};
  if (target.shape() != want) shape_error(op, "target must be (N, H, W) of the input", x.shape(), target.shape());
  if (!(target.device() == x.device())) throw std::invalid_argument(std::string(op) + ": target on another device");
}

void check_weight(const char* op, const Tensor& logits, const Tensor& weight) {
  if (!weight.defined() || weight.ndim() != 1 || weight.size(0) != logits.size(1))
    shape_error(op, "class weights must be (C)", logits.shape(), weight.defined() ? weight.shape() : Shape{});
  check_dtype_match(op, logits, weight);
}

void check_tversky(const char* op, const TverskyParams& p) {
  if (!(p.alpha_min <= p.alpha_max) || p.alpha_min < 0 || p.alpha_max > 1 || !(p.eps >= 0))
    throw std::invalid_argument(std::string(op) + ": need 0 <= alpha_min <= alpha_max <= 1 and eps >= 0");
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight) {
  const char* op = "cross_entropy";
  check_target(op, logits, target);
  check_weight(op, logits, weight);
  Tensor loss = new_like(logits, {1});
  Tensor probs = new_like(logits, logits.shape());
  Tensor wsum = new_like(logits, {1});
  be(logits).cross_entropy_fwd(logits, target, weight, loss, probs, wsum);
  if (const auto& r = current_batch_reduce()) {
    // The whole batch's weighted mean: the ranks add up the weighted sum of
    // -log p and the weight sum; the backward divides by the latter.
    const double w = host_values(wsum)[0];
    double v[2] = {host_values(loss)[0] * w, w};
    r->sum(v, 2);
    set_values(loss, {v[0] / v[1]});
    set_values(wsum, {v[1]});
  }
  if (needs_grad({&logits}))
    record(loss, op, {logits}, [logits, target, weight, probs, wsum](const Tensor& dl) {
      be(dl).cross_entropy_bwd(dl, probs, target, weight, wsum, grad_buffer(logits));
    });
  return loss;
}

Tensor tversky_loss(const Tensor& probs, const Tensor& target, const TverskyParams& p, Tensor* stats_out) {
  const char* op = "tversky_loss";
  check_target(op, probs, target);
  check_tversky(op, p);
  Tensor loss = new_like(probs, {1});
  Tensor stats = new_like(probs, {4 * probs.size(1)});
  be(probs).tversky_fwd(p, probs, target, loss, stats);
  if (const auto& r = current_batch_reduce()) {
    // The soft counts of the whole batch: the ranks add up TP, FP and FN;
    // alpha and the loss follow from the sums (the backward reads stats).
    const int64_t c = probs.size(1);
    std::vector<double> v = host_values(stats);
    v.resize(static_cast<size_t>(3 * c));
    r->sum(v.data(), 3 * c);
    double l = 0;
    std::vector<double> st(static_cast<size_t>(4 * c));
    cpu::tversky_finish(p, c, v.data(), v.data() + c, v.data() + 2 * c, &l, st.data());
    set_values(loss, {l});
    set_values(stats, st);
  }
  if (stats_out) *stats_out = stats;
  if (needs_grad({&probs}))
    record(loss, op, {probs}, [p, probs, target, stats](const Tensor& dl) {
      be(dl).tversky_bwd(p, dl, target, stats, grad_buffer(probs));
    });
  return loss;
}

Tensor ce_tversky_loss(const Tensor& logits, const Tensor& target, const Tensor& weight, const TverskyParams& p,
                       Tensor* stats_out) {
  const char* op = "ce_tversky_loss";
  check_target(op, logits, target);
  check_weight(op, logits, weight);
  check_tversky(op, p);
  const int64_t c = logits.size(1);
  if (c > cpu::kCeTverskyMaxClasses)
    shape_error(op, "at most " + std::to_string(cpu::kCeTverskyMaxClasses) +
                        " classes (compose cross_entropy and tversky_loss beyond)", logits.shape());
  Tensor loss = new_like(logits, {1});
  Tensor stats = new_like(logits, {cpu::ce_tversky_stats(c)});
  be(logits).ce_tversky_fwd(p, logits, target, weight, loss, stats);
  if (stats_out) *stats_out = stats;
  if (needs_grad({&logits}))
    record(loss, op, {logits}, [p, logits, target, weight, stats](const Tensor& dl) {
      be(dl).ce_tversky_bwd(p, dl, logits.detach(), target, weight, stats, grad_buffer(logits));
    });
  return loss;
}

Tensor weighted_sum(const std::vector<Tensor>& xs, const std::vector<double>& w) {
  const char* op = "weighted_sum";
  if (xs.empty() || xs.size() != w.size())
    throw std::invalid_argument("weighted_sum: " + std::to_string(xs.size()) + " tensors for " +
                                std::to_string(w.size()) + " weights (need as many, at least one)");
  for (const Tensor& x : xs) {
    if (!x.defined()) throw std::invalid_argument("weighted_sum: an input is undefined");
    require_float(op, x);
    check_dtype_match(op, xs[0], x);
    if (x.shape() != xs[0].shape()) shape_error(op, "inputs must have one shape", xs[0].shape(), x.shape());
  }
  Tensor y = new_like(xs[0], xs[0].shape());
  be(xs[0]).weighted_sum_fwd(xs, w, y);
  bool any = false;
  for (const Tensor& x : xs) any = any || needs_grad({&x});
  if (any)
    record(y, op, xs, [xs, w](const Tensor& dy) {
      std::vector<Tensor> dxs;
      for (const Tensor& x : xs) dxs.push_back(x.requires_grad() ? grad_buffer(x) : Tensor());
      be(dy).weighted_sum_bwd(dy, w, dxs);
    });
  return y;
}

}  // namespace lk
