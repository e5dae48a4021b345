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
