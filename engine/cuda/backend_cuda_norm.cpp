// The CUDA backend (backend_cuda_impl.h): batch norm, fused BN + ReLU
// (+ residual), synchronised batch norm, the LKA gate.
#include "engine/cuda/backend_cuda_impl.h"

LK_CUDA_NAMESPACE_BEGIN
namespace backend_impl {

void CudaBackend::batch_norm_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                                 const Tensor& rv, bool training, double momentum, double eps, const Tensor& y,
                                 const Tensor& save_mean, const Tensor& save_invstd) {
  const NC s = nc_of(x);
  bn_eps_ = eps;  // cuDNN's backward wants the forward's eps (every BN here shares one)
#if !defined(LKASEG_SIMT)
  if (training && !reduced(x) && LK_CUDNN_REF("batch_norm"))
    return ref_->batch_norm_fwd_train(s.n, s.c, s.hw, cf(x), cf(gamma), cf(beta), mf(rm), mf(rv), momentum, eps, mf(y),
                                      mf(save_mean), mf(save_invstd));
#endif
  const size_t ws = training ? batch_norm_workspace_bytes(s.n, s.c, s.hw) : 0;
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::batch_norm_fwd(s.n, s.c, s.hw, cp<T>(x), cf(gamma), cf(beta), mf(rm), mf(rv), training,
                                         momentum, eps, mp<T>(y), mf(save_mean), mf(save_invstd), scratch(ws), ws,
                                         stream_));
  });
}

void CudaBackend::batch_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                                 const Tensor& save_invstd, bool training, const Tensor& dx, const Tensor& dgamma,
                                 const Tensor& dbeta) {
  const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
  if (training && !reduced(x) && LK_CUDNN_REF("batch_norm"))
    return ref_->batch_norm_bwd_train(s.n, s.c, s.hw, cf(dy), cf(x), cf(gamma), cf(save_mean), cf(save_invstd), bn_eps_,
                                      mf(dx), mf(dgamma), mf(dbeta), acc(dx), acc(dgamma), acc(dbeta));
#endif
  const size_t ws = batch_norm_workspace_bytes(s.n, s.c, s.hw);
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::batch_norm_bwd(s.n, s.c, s.hw, cp<T>(dy), cp<T>(x), cf(gamma), cf(save_mean), cf(save_invstd),
                                         training, mp<T>(dx), mf(dgamma), mf(dbeta), scratch(ws), ws, stream_, acc(dx),
                                         acc(dgamma), acc(dbeta)));
  });
}

void CudaBackend::batch_norm_relu_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                                      const Tensor& rv, bool training, double momentum, double eps, const Tensor& r,
                                      BnResidual mode, const Tensor& y, const Tensor& save_mean,
                                      const Tensor& save_invstd) {
  bn_eps_ = eps;
  if (variant("batch_norm_relu") == KernelVariant::Cudnn) {
    Tensor z = Tensor::empty(x.shape(), x.dtype(), device());
    batch_norm_fwd(x, gamma, beta, rm, rv, training, momentum, eps, z, save_mean, save_invstd);
    if (mode == BnResidual::BeforeRelu) binary_fwd(BinaryOp::Add, z, r, z);
    activation_fwd(Activation::Relu, z, y);
    if (mode == BnResidual::AfterRelu) binary_fwd(BinaryOp::Add, y, r, y);
    return;
  }
  const NC s = nc_of(x);
  const size_t ws = training ? batch_norm_workspace_bytes(s.n, s.c, s.hw) : 0;
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::batch_norm_relu_fwd(s.n, s.c, s.hw, cp<T>(x), cf(gamma), cf(beta), mf(rm), mf(rv), training,
                                              momentum, eps, cp<T>(r), mode, mp<T>(y), mf(save_mean), mf(save_invstd),
                                              scratch(ws), ws, stream_));
  });
}

void CudaBackend::batch_norm_relu_bwd(BnResidual mode, const Tensor& dy, const Tensor& x, const Tensor& y,
                                      const Tensor& gamma, const Tensor& beta, const Tensor& save_mean,
                                      const Tensor& save_invstd, bool training, const Tensor& dx, const Tensor& dr,
                                      const Tensor& dgamma, const Tensor& dbeta) {
  if (variant("batch_norm_relu") == KernelVariant::Cudnn) {
    // g = dy through the ReLU (its output y, or relu of BN(x) recomputed), then batch norm's backward.
    Tensor out = y;
    if (mode != BnResidual::BeforeRelu) {
      out = Tensor::empty(x.shape(), x.dtype(), device());
      activation_fwd(Activation::Relu, bn_recompute(x, gamma, beta, save_mean, save_invstd), out);
    }
    Tensor g = Tensor::empty(x.shape(), x.dtype(), device()).as_first_write();
    activation_bwd(Activation::Relu, dy, out, g);
    if (dr.defined()) axpy(1.0, mode == BnResidual::AfterRelu ? dy : g, dr);
    batch_norm_bwd(g, x, gamma, save_mean, save_invstd, training, dx, dgamma, dbeta);
    return;
  }
  const NC s = nc_of(x);
  const size_t ws = batch_norm_workspace_bytes(s.n, s.c, s.hw);
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::batch_norm_relu_bwd(s.n, s.c, s.hw, mode, cp<T>(dy), cp<T>(x), cp<T>(y), cf(gamma), cf(beta),
                                              cf(save_mean), cf(save_invstd), training, mp<T>(dx), mp<T>(dr),
                                              mf(dgamma), mf(dbeta), scratch(ws), ws, stream_, acc(dx), acc(dr),
                                              acc(dgamma), acc(dbeta)));
  });
}

std::vector<double> CudaBackend::batch_norm_sums(const Tensor& x, const std::vector<double>& mean, const Tensor& dy,
                                                 const Tensor& save_mean, const Tensor& save_invstd) {
  const NC s = nc_of(x);
  if (reduced(x)) return batch_norm_sums(wide(x), mean, wide(dy), save_mean, save_invstd);
  const Tensor out = Tensor::empty({(dy.defined() ? 2 : 1) * s.c}, DType::F64, device());
  Tensor mu;
  if (!mean.empty()) mu = Tensor::from_vector(mean, {s.c}, DType::F64).to(device());
  LK_LAUNCHED(lk::cuda::batch_norm_sums(s.n, s.c, s.hw, cf(x), mu.defined() ? mu.data<double>() : nullptr, cf(dy),
                                        cf(save_mean), cf(save_invstd), out.data<double>(), stream_));
  return out.to(cpu_device()).to_vector();
}

void CudaBackend::batch_norm_fwd_stats(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const std::vector<double>& mean, const std::vector<double>& var, double eps,
                                       const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd) {
  const NC s = nc_of(x);
  const Tensor m = Tensor::from_vector(mean, {s.c}).to(device()), v = Tensor::from_vector(var, {s.c}).to(device());
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::batch_norm_fwd(s.n, s.c, s.hw, cp<T>(x), cf(gamma), cf(beta), mf(m), mf(v), false, 0.0, eps,
                                         mp<T>(y), mf(save_mean), mf(save_invstd), nullptr, 0, stream_));
  });
}

void CudaBackend::batch_norm_bwd_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                                    const Tensor& save_invstd, const std::vector<double>& means, const Tensor& dx) {
  if (reduced(x)) {
    const Tensor dxw = wide_grad(dx);
    batch_norm_bwd_dx(wide(dy), wide(x), gamma, save_mean, save_invstd, means, dxw);
    return narrow(dxw, dx);
  }
  const NC s = nc_of(x);
  const Tensor m = Tensor::from_vector(means, {static_cast<int64_t>(means.size())}).to(device());
  if (dx.first_write()) fill(dx, 0.0);  // the kernel adds
  LK_LAUNCHED(lk::cuda::batch_norm_bwd_dx(s.n, s.c, s.hw, cf(dy), cf(x), cf(gamma), cf(save_mean), cf(save_invstd),
                                          cf(m), mf(dx), stream_));
}

void CudaBackend::lka_gate_fwd(const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta,
                               const Tensor& rm, const Tensor& rv, bool training, double momentum, double eps,
                               const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd) {
  const NC s = nc_of(x);
  bn_eps_ = eps;
  if (variant("lka_gate") == KernelVariant::Cudnn) {
    Tensor z = Tensor::empty(x.shape(), x.dtype(), device());
    batch_norm_fwd(f, gamma, beta, rm, rv, training, momentum, eps, z, save_mean, save_invstd);
    Tensor a = Tensor::empty(x.shape(), x.dtype(), device());
    activation_fwd(Activation::Sigmoid, z, a);
    binary_fwd(BinaryOp::Mul, x, a, y);
    return;
  }
  const size_t ws = lka_gate_workspace_bytes(s.n, s.c, s.hw);
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::lka_gate_fwd(s.n, s.c, s.hw, cp<T>(x), cp<T>(f), cf(gamma), cf(beta), mf(rm), mf(rv),
                                       training, momentum, eps, mp<T>(y), mf(save_mean), mf(save_invstd),
                                       static_cast<T*>(nullptr), scratch(ws), ws, stream_));
  });
}

void CudaBackend::lka_gate_bwd(const Tensor& dy, const Tensor& x, const Tensor& f, const Tensor& gamma,
                               const Tensor& beta, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                               const Tensor& dx, const Tensor& df, const Tensor& dgamma, const Tensor& dbeta) {
  const NC s = nc_of(x);
  if (variant("lka_gate") == KernelVariant::Cudnn) {
    // A = sigmoid(BN(f)) recomputed from the saved statistics, then the three backward passes.
    Tensor a = Tensor::empty(x.shape(), x.dtype(), device());
    activation_fwd(Activation::Sigmoid, bn_recompute(f, gamma, beta, save_mean, save_invstd), a);
    if (dx.defined()) binary_bwd(BinaryOp::Mul, dy, a, dx);  // dx += dy * A
    Tensor da = Tensor::empty(x.shape(), x.dtype(), device()).as_first_write();
    binary_bwd(BinaryOp::Mul, dy, x, da);  // dA = dy * x
    Tensor dz = Tensor::empty(x.shape(), x.dtype(), device()).as_first_write();
    activation_bwd(Activation::Sigmoid, da, a, dz);
    batch_norm_bwd(dz, f, gamma, save_mean, save_invstd, training, df, dgamma, dbeta);
    return;
  }
  const size_t ws = lka_gate_workspace_bytes(s.n, s.c, s.hw);
  storage(x, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::lka_gate_bwd(s.n, s.c, s.hw, cp<T>(dy), cp<T>(x), cp<T>(f), cf(gamma), cf(beta),
                                       cf(save_mean), cf(save_invstd), training, mp<T>(dx), mp<T>(df), mf(dgamma),
                                       mf(dbeta), scratch(ws), ws, stream_, acc(dx), acc(df), acc(dgamma), acc(dbeta)));
  });
}

Tensor CudaBackend::bn_recompute(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& save_mean,
                                 const Tensor& save_invstd) {
  std::vector<double> inv = save_invstd.to_vector(), v(inv.size());
  for (size_t k = 0; k < inv.size(); ++k) v[k] = 1.0 / (inv[k] * inv[k]) - bn_eps_;
  Tensor var = Tensor::empty(save_mean.shape(), DType::F32, device());
  var.copy_from(Tensor::from_vector(v, save_mean.shape()));
  Tensor mean = save_mean.clone(), m2 = Tensor::empty(save_mean.shape(), DType::F32, device()),
         i2 = Tensor::empty(save_mean.shape(), DType::F32, device());
  Tensor z = Tensor::empty(x.shape(), x.dtype(), device());
  batch_norm_fwd(x, gamma, beta, mean, var, false, 0.0, bn_eps_, z, m2, i2);
  return z;
}

}  // namespace backend_impl
LK_CUDA_NAMESPACE_END
