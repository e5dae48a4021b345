// Helpers shared by the op implementations (not part of the public API).
#pragma once

#include <string>
#include <vector>

#include "engine/ops.h"

namespace lk::detail {

inline void require_rank(const char* op, const char* what, const Tensor& t, int rank) {
  if (!t.defined()) throw std::invalid_argument(std::string(op) + ": " + what + " is undefined");
  if (t.ndim() != rank)
    shape_error(op, std::string(what) + " must have rank " + std::to_string(rank), t.shape());
}

inline void require_float(const char* op, const Tensor& t) {
  if (t.dtype() == DType::I32) throw std::invalid_argument(std::string(op) + ": expects a float tensor");
}

// A parameter p of an op on x: x's dtype, or float32 when x is bfloat16 /
// float16 (mixed precision: float32 master parameters); x's device.
inline void check_param_dtype(const std::string& op, const Tensor& x, const Tensor& p) {
  if (is_reduced(x.dtype()) && p.dtype() == DType::F32) {
    if (!(x.device() == p.device()))
      throw std::invalid_argument(op + ": device mismatch (" + x.device().str() + " vs " + p.device().str() + ")");
    return;
  }
  check_dtype_match(op, x, p);
}

// Output on x's device with x's dtype.
inline Tensor new_like(const Tensor& x, const Shape& shape) { return Tensor::empty(shape, x.dtype(), x.device()); }

// The gradient buffer of t when it takes part in backward, else undefined.
inline Tensor grad_of(const Tensor& t) { return t.defined() && t.requires_grad() ? grad_buffer(t) : Tensor(); }

inline Backend& be(const Tensor& t) { return backend(t.device()); }

// Small tensors (statistics) read on the host and written back, any device.
inline std::vector<double> host_values(const Tensor& t) { return t.to_vector(); }
inline void set_values(const Tensor& t, const std::vector<double>& v) {
  t.copy_from(Tensor::from_vector(v, t.shape(), t.dtype()));
}

}  // namespace lk::detail
