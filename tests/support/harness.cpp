#include "tests/support/harness.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

namespace lk::test {

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

namespace {
double weighted_sum(const Tensor& y, const Tensor& g) {
  const auto vy = y.to_vector(), vg = g.to_vector();
  double s = 0;
  for (size_t i = 0; i < vy.size(); ++i) s += vy[i] * vg[i];
  return s;
}

std::vector<Tensor> fresh_inputs(const LayerCheck& c, DType dt, bool with_grad) {
  std::vector<Tensor> in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    Tensor t = c.inputs[i].dtype() == DType::I32 ? c.inputs[i] : c.inputs[i].to(dt);
    if (with_grad && c.differentiable[i]) t.set_requires_grad(true);
    in.push_back(t);
  }
  return in;
}
}  // namespace

void run_layer_check(const LayerCheck& c) {
  INFO("layer check: " << c.name);
  REQUIRE(c.inputs.size() == c.differentiable.size());

  // Forward in float64 with history.
  std::vector<Tensor> in = fresh_inputs(c, DType::F64, true);
  const Tensor y = c.fn(in);
  REQUIRE(y.requires_grad());
  CHECK(all_finite(y));  // poisoned output: every element must be written

  // Float32 agrees with float64.
  {
    NoGradGuard ng;
    const Tensor y32 = c.fn(fresh_inputs(c, DType::F32, false));
    REQUIRE(y32.dtype() == DType::F32);
    CHECK(scaled_error(y32, y) <= c.f32_tol);
  }

  // Backward in both modes of the backward methods (engine/backend.h): on
  // top of random pre-filled gradients (they must accumulate), and into
  // gradients that do not exist yet (the first contribution overwrites the
  // buffer, which the poisoning allocator filled with NaN).
  const Tensor g = randn(y.shape(), 7001);
  std::vector<Tensor> prefill(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (!c.differentiable[i]) continue;
    prefill[i] = randn(in[i].shape(), 8000 + i);
    grad_buffer(in[i]).copy_from(prefill[i]);
  }
  backward(y, g);
  std::vector<Tensor> fresh = fresh_inputs(c, DType::F64, true);
  backward(c.fn(fresh), g);

  std::mt19937_64 rng(99);
  for (size_t i = 0; i < in.size(); ++i) {
    if (!c.differentiable[i]) continue;
    INFO("input " << i << " of shape " << shape_str(in[i].shape()));
    const Tensor gr = in[i].grad(), gf = fresh[i].grad();
    REQUIRE(gr.defined());
    REQUIRE(gf.defined());
    const auto got = gr.to_vector(), pre = prefill[i].to_vector(), first = gf.to_vector();
    const int64_t n = in[i].numel();
    std::vector<int64_t> probes;
    if (n <= c.max_probes) {
      for (int64_t k = 0; k < n; ++k) probes.push_back(k);
    } else {
      std::uniform_int_distribution<int64_t> pick(0, n - 1);
      for (int k = 0; k < c.max_probes; ++k) probes.push_back(pick(rng));
    }
    double max_err = 0, max_err_first = 0, max_ref = 1e-3;
    for (int64_t k : probes) {
      NoGradGuard ng;
      std::vector<Tensor> p = fresh_inputs(c, DType::F64, false);
      Tensor xi = p[i].clone();
      p[i] = xi;
      double* d = xi.data<double>();
      const double x0 = d[k];
      d[k] = x0 + c.step;
      const double lp = weighted_sum(c.fn(p), g);
      d[k] = x0 - c.step;
      const double lm = weighted_sum(c.fn(p), g);
      const double numeric = (lp - lm) / (2 * c.step);
      const double analytic = got[k] - pre[k];
      max_err = std::max(max_err, std::abs(numeric - analytic));
      max_err_first = std::max(max_err_first, std::abs(numeric - first[k]));
      max_ref = std::max(max_ref, std::abs(numeric));
    }
    INFO("gradients accumulated onto pre-filled ones");
    CHECK(max_err / max_ref <= c.grad_tol);
    INFO("gradients written by the first contribution");
    CHECK(max_err_first / max_ref <= c.grad_tol);
    CHECK(all_finite(gf));  // every element written (the buffer starts as NaN)
  }
}

}  // namespace lk::test
