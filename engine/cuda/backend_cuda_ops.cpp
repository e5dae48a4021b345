// The CUDA backend (backend_cuda_impl.h): pointwise ops, pooling, resampling,
// layout, softmax and losses, AdamW and the loss scaler's unscale, augmentation.
#include "engine/cuda/backend_cuda_impl.h"

LK_CUDA_NAMESPACE_BEGIN
namespace backend_impl {

void CudaBackend::activation_fwd(Activation a, const Tensor& x, const Tensor& y) {
#if !defined(LKASEG_SIMT)
  if (!reduced(x) && LK_CUDNN_REF("activation")) return ref_->activation_fwd(a, x.numel(), cf(x), mf(y));
#endif
  storage(x, [&]<typename T> { LK_LAUNCHED(lk::cuda::activation_fwd(a, x.numel(), cp<T>(x), mp<T>(y), stream_)); });
}

void CudaBackend::activation_bwd(Activation a, const Tensor& dy, const Tensor& y, const Tensor& dx) {
#if !defined(LKASEG_SIMT)
  if (!reduced(y) && LK_CUDNN_REF("activation"))
    return ref_->activation_bwd(a, y.numel(), cf(dy), cf(y), mf(dx), acc(dx));
#endif
  storage(y, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::activation_bwd(a, y.numel(), cp<T>(dy), cp<T>(y), mp<T>(dx), stream_, acc(dx)));
  });
}

void CudaBackend::binary_fwd(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) {
#if !defined(LKASEG_SIMT)
  if (!reduced(y) && LK_CUDNN_REF("binary"))
    return ref_->binary_fwd(op, dims4(y.shape()), cf(a), dims4(a.shape()), cf(b), dims4(b.shape()), mf(y));
#endif
  storage(y, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::binary_fwd(op, dims4(y.shape()), cp<T>(a), dims4(a.shape()), cp<T>(b), dims4(b.shape()),
                                     mp<T>(y), stream_));
  });
}

void CudaBackend::binary_bwd(BinaryOp op, const Tensor& dy, const Tensor& other, const Tensor& d_self) {
  const bool mul = op == BinaryOp::Mul;
#if !defined(LKASEG_SIMT)
  if (!reduced(dy) && LK_CUDNN_REF("binary"))
    return ref_->binary_bwd(op, dims4(dy.shape()), cf(dy), dims4(d_self.shape()), mul ? cf(other) : nullptr,
                            mul ? dims4(other.shape()) : Dims4{1, 1, 1, 1}, mf(d_self), acc(d_self));
#endif
  storage(dy, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::binary_bwd(op, dims4(dy.shape()), cp<T>(dy), dims4(d_self.shape()),
                                     mul ? cp<T>(other) : nullptr, mul ? dims4(other.shape()) : Dims4{1, 1, 1, 1},
                                     mp<T>(d_self), stream_, acc(d_self)));
  });
}

void CudaBackend::global_avg_pool_fwd(const Tensor& x, const Tensor& y) {
  const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
  if (!reduced(x) && LK_CUDNN_REF("global_avg_pool")) return ref_->global_avg_pool_fwd(s.n, s.c, s.hw, cf(x), mf(y));
#endif
  storage(
      x, [&]<typename T> { LK_LAUNCHED(lk::cuda::global_avg_pool_fwd(s.n * s.c, s.hw, cp<T>(x), mp<T>(y), stream_)); });
}

void CudaBackend::global_avg_pool_bwd(const Tensor& dy, const Tensor& dx) {
  const NC s = nc_of(dx);
#if !defined(LKASEG_SIMT)
  if (!reduced(dx) && LK_CUDNN_REF("global_avg_pool"))
    return ref_->global_avg_pool_bwd(s.n, s.c, s.hw, cf(dy), mf(dx), acc(dx));
#endif
  storage(dx, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::global_avg_pool_bwd(s.n * s.c, s.hw, cp<T>(dy), mp<T>(dx), stream_, acc(dx)));
  });
}

void CudaBackend::max_pool2d_fwd(int64_t k, int64_t st, const Tensor& x, const Tensor& y, const Tensor& idx) {
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::max_pool2d_fwd(x.size(0) * x.size(1), x.size(2), x.size(3), k, st, cp<T>(x), mp<T>(y),
                                         idx.data<int32_t>(), stream_));
  });
}

void CudaBackend::max_pool2d_bwd(int64_t k, int64_t st, const Tensor& dy, const Tensor& idx, const Tensor& dx) {
  storage(dx, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::max_pool2d_bwd(dx.size(0) * dx.size(1), dx.size(2), dx.size(3), k, st, cp<T>(dy),
                                         idx.data<int32_t>(), mp<T>(dx), stream_, acc(dx)));
  });
}

void CudaBackend::upsample_fwd(UpsampleMode m, int64_t f, const Tensor& x, const Tensor& y) {
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::upsample_fwd(m, x.size(0) * x.size(1), x.size(2), x.size(3), f, cp<T>(x), mp<T>(y), stream_));
  });
}

void CudaBackend::upsample_bwd(UpsampleMode m, int64_t f, const Tensor& dy, const Tensor& dx) {
  storage(dx, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::upsample_bwd(m, dx.size(0) * dx.size(1), dx.size(2), dx.size(3), f, cp<T>(dy), mp<T>(dx),
                                       stream_, acc(dx)));
  });
}

void CudaBackend::concat_fwd(int64_t offset, const Tensor& src, const Tensor& dst) {
  const NC s = nc_of(src);
  storage(dst, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::concat_fwd(s.n, s.c, dst.size(1), offset, s.hw, cp<T>(src), mp<T>(dst), stream_));
  });
}

void CudaBackend::concat_bwd(int64_t offset, const Tensor& ddst, const Tensor& dsrc) {
  const NC s = nc_of(dsrc);
  storage(dsrc, [&]<typename T> {
    LK_LAUNCHED(
        lk::cuda::concat_bwd(s.n, s.c, ddst.size(1), offset, s.hw, cp<T>(ddst), mp<T>(dsrc), stream_, acc(dsrc)));
  });
}

void CudaBackend::linear_fwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) {
  if (reduced(x)) {
    const Tensor yw = wide_out(y);
    linear_fwd(wide(x), w, b, yw);
    return narrow(yw, y);
  }
  LK_LAUNCHED(lk::cuda::linear_fwd(x.size(0), x.size(1), w.size(0), cf(x), cf(w), cf(b), mf(y), stream_));
}

void CudaBackend::linear_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx, const Tensor& dw,
                             const Tensor& db) {
  if (reduced(x)) {
    const Tensor dxw = wide_grad(dx);
    linear_bwd(wide(dy), wide(x), w, dxw, dw, db);
    return narrow(dxw, dx);
  }
  LK_LAUNCHED(lk::cuda::linear_bwd(x.size(0), x.size(1), w.size(0), cf(dy), cf(x), cf(w), mf(dx), mf(dw), mf(db),
                                   stream_, acc(dx), acc(dw), acc(db)));
}

void CudaBackend::softmax_fwd(const Tensor& x, const Tensor& y) {
  if (reduced(x)) {
    const Tensor yw = wide_out(y);
    softmax_fwd(wide(x), yw);
    return narrow(yw, y);
  }
  const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
  if (LK_CUDNN_REF("softmax")) return ref_->softmax_fwd(s.n, s.c, s.hw, cf(x), mf(y));
#endif
  LK_LAUNCHED(lk::cuda::softmax_fwd(s.n, s.c, s.hw, cf(x), mf(y), stream_));
}

void CudaBackend::softmax_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) {
  if (reduced(y)) {
    const Tensor dxw = wide_grad(dx);
    softmax_bwd(wide(dy), wide(y), dxw);
    return narrow(dxw, dx);
  }
  const NC s = nc_of(y);
#if !defined(LKASEG_SIMT)
  if (LK_CUDNN_REF("softmax")) return ref_->softmax_bwd(s.n, s.c, s.hw, cf(dy), cf(y), mf(dx), acc(dx));
#endif
  LK_LAUNCHED(lk::cuda::softmax_bwd(s.n, s.c, s.hw, cf(dy), cf(y), mf(dx), stream_, acc(dx)));
}

void CudaBackend::cross_entropy_fwd(const Tensor& logits, const Tensor& target, const Tensor& weight,
                                    const Tensor& loss, const Tensor& probs, const Tensor& wsum) {
  const NC s = nc_of(logits);
  const size_t ws = lk::cuda::cross_entropy_workspace_bytes(s.n, s.hw);
  label_classes_[0] = s.c;
  LK_LAUNCHED(lk::cuda::cross_entropy_fwd(s.n, s.c, s.hw, cf(logits), target.data<int32_t>(), cf(weight), mf(probs),
                                          mf(loss), mf(wsum), &label_errors_[0], scratch(ws), ws, stream_));
}

void CudaBackend::cross_entropy_bwd(const Tensor& dloss, const Tensor& probs, const Tensor& target,
                                    const Tensor& weight, const Tensor& wsum, const Tensor& dlogits) {
  const NC s = nc_of(probs);
  LK_LAUNCHED(lk::cuda::cross_entropy_bwd(s.n, s.c, s.hw, cf(dloss), cf(probs), target.data<int32_t>(), cf(weight),
                                          cf(wsum), mf(dlogits), stream_, acc(dlogits)));
}

void CudaBackend::tversky_fwd(const TverskyParams& p, const Tensor& probs, const Tensor& target, const Tensor& loss,
                              const Tensor& stats) {
  const NC s = nc_of(probs);
  const size_t ws = tversky_workspace_bytes(s.n, s.c, s.hw);
  label_classes_[1] = s.c;
  LK_LAUNCHED(lk::cuda::tversky_fwd(p, s.n, s.c, s.hw, cf(probs), target.data<int32_t>(), mf(loss), mf(stats),
                                    &label_errors_[1], scratch(ws), ws, stream_));
}

void CudaBackend::tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& target, const Tensor& stats,
                              const Tensor& dprobs) {
  const NC s = nc_of(dprobs);
  LK_LAUNCHED(lk::cuda::tversky_bwd(p, s.n, s.c, s.hw, cf(dloss), target.data<int32_t>(), cf(stats), mf(dprobs),
                                    stream_, acc(dprobs)));
}

void CudaBackend::ce_tversky_fwd(const TverskyParams& p, const Tensor& logits, const Tensor& target,
                                 const Tensor& weight, const Tensor& loss, const Tensor& stats) {
  const NC s = nc_of(logits);
  const size_t ws = ce_tversky_workspace_bytes(s.n, s.c, s.hw);
  label_classes_[0] = s.c;
  LK_LAUNCHED(lk::cuda::ce_tversky_fwd(p, s.n, s.c, s.hw, cf(logits), target.data<int32_t>(), cf(weight), mf(loss),
                                       mf(stats), &label_errors_[0], scratch(ws), ws, stream_));
}

void CudaBackend::ce_tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& logits,
                                 const Tensor& target, const Tensor& weight, const Tensor& stats,
                                 const Tensor& dlogits) {
  const NC s = nc_of(logits);
  LK_LAUNCHED(lk::cuda::ce_tversky_bwd(p, s.n, s.c, s.hw, cf(dloss), cf(logits), target.data<int32_t>(), cf(weight),
                                       cf(stats), mf(dlogits), stream_, acc(dlogits)));
}

void CudaBackend::weighted_sum_fwd(const std::vector<Tensor>& xs, const std::vector<double>& w, const Tensor& y) {
  for (size_t i0 = 0; i0 < xs.size(); i0 += kWeightedSumMax) {
    const size_t k = std::min<size_t>(kWeightedSumMax, xs.size() - i0);
    std::vector<const float*> p;
    for (size_t i = i0; i < i0 + k; ++i) p.push_back(cf(xs[i]));
    LK_LAUNCHED(
        lk::cuda::weighted_sum_fwd(static_cast<int>(k), p.data(), w.data() + i0, y.numel(), mf(y), stream_, i0 > 0));
  }
}

void CudaBackend::weighted_sum_bwd(const Tensor& dy, const std::vector<double>& w, const std::vector<Tensor>& dxs) {
  for (size_t i0 = 0; i0 < dxs.size(); i0 += kWeightedSumMax) {
    const size_t k = std::min<size_t>(kWeightedSumMax, dxs.size() - i0);
    std::vector<float*> p;
    bool flags[kWeightedSumMax];
    for (size_t i = i0; i < i0 + k; ++i) p.push_back(mf(dxs[i])), flags[i - i0] = acc(dxs[i]);
    LK_LAUNCHED(
        lk::cuda::weighted_sum_bwd(static_cast<int>(k), cf(dy), w.data() + i0, dy.numel(), p.data(), flags, stream_));
  }
}

void CudaBackend::adamw_step(const AdamWParams& a, const Tensor& state, const std::vector<Tensor>& params,
                             const std::vector<Tensor>& m, const std::vector<Tensor>& v, const Tensor& skip) {
  if (state.dtype() != DType::F64 || state.numel() != cpu::kAdamWStateSize)
    throw std::invalid_argument("adamw_step: the state must be lk::adamw_state");
  std::vector<AdamWTensor> tensors;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor g = params[i].grad();
    tensors.push_back({mf(params[i]), g.defined() ? cf(g) : nullptr, mf(m[i]), mf(v[i]), params[i].numel()});
  }
  TensorTable table;
  LK_CUDA_CHECK(adamw_table(tensors, &table));
  const TableUpload& u = upload_table(state.raw(), std::move(table));
  LK_LAUNCHED(lk::cuda::adamw_step(u.table, u.device, state.data<double>(), a.beta1, a.beta2, a.eps, a.weight_decay,
                                   stream_, skip.defined() ? cf(skip) : nullptr));
}

void CudaBackend::grad_unscale(const std::vector<Tensor>& grads, const cpu::LossScaleParams& p, const Tensor& state) {
  check_grad_unscale(grads, state);
  std::vector<GradUnscaleTensor> tensors;
  for (const Tensor& g : grads) tensors.push_back({mf(g), g.numel()});
  TensorTable table;
  LK_CUDA_CHECK(grad_unscale_table(tensors, &table));
  const TableUpload& u = upload_table(state.raw(), std::move(table));
  LK_LAUNCHED(lk::cuda::grad_unscale(u.table, u.device, p, mf(state), stream_));
}

const CudaBackend::TableUpload& CudaBackend::upload_table(const void* owner, TensorTable&& table) {
  TableUpload& u = table_uploads_[owner];
  if (table.bytes == u.table.bytes && table.tensor_bytes == u.table.tensor_bytes) return u;
  u.table = {};  // not valid on the device until the copy is queued
  if (table.bytes.size() > u.bytes) {
    if (u.device) LK_CUDA_CHECK(cudaFreeAsync(u.device, stream_));
    u.device = nullptr;
    u.bytes = 0;
    LK_CUDA_CHECK(cudaMallocAsync(&u.device, table.bytes.size(), stream_));
    u.bytes = table.bytes.size();
  }
  if (!table.bytes.empty())
    LK_CUDA_CHECK(cudaMemcpyAsync(u.device, table.bytes.data(), table.bytes.size(), cudaMemcpyHostToDevice, stream_));
  u.table = std::move(table);  // kept alive (the same buffer): the source of the copy
  return u;
}

void CudaBackend::augment(const Tensor& draws, int64_t pad, const Tensor& images, const Tensor& labels,
                          const Tensor& out_images, const Tensor& out_labels) {
  const auto* d = reinterpret_cast<const data::AugmentDraw*>(draws.data<int32_t>());
  LK_LAUNCHED(lk::cuda::augment_batch(
      d, images.size(0), cf(images), labels.defined() ? labels.data<int32_t>() : nullptr, images.size(2),
      mf(out_images), out_labels.defined() ? out_labels.data<int32_t>() : nullptr, out_images.size(2), pad, stream_));
}

}  // namespace backend_impl
LK_CUDA_NAMESPACE_END
