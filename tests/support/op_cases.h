// The builders behind the op table's entries (op_table.cpp): the benchmark
// cases of each op at the paper model's shapes and the convolutions'
// gradient-check grid. Not a second table: each builder serves one entry,
// which is where an op is listed.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tests/support/model_shapes.h"
#include "tests/support/op_table.h"

namespace lk::test {

// A (transposed) convolution at a model shape: the Backend's geometry (for
// the transposed one, that of its adjoint convolution), tensor shapes, and
// its multiply-adds.
struct ConvShape {
  bool transposed = false;
  int64_t c_in = 0, hw = 0, c_out = 0, k = 1, stride = 1, pad = 0, dil = 1, groups = 1;

  ConvGeom geom(int64_t n) const;
  Shape x(int64_t n) const { return {n, c_in, hw, hw}; }
  Shape w() const { return transposed ? Shape{c_in, c_out, k, k} : Shape{c_out, c_in / groups, k, k}; }
  Shape y(int64_t n) const;
  double macs(int64_t n) const;        // every kernel tap, padding included
  double valid_macs(int64_t n) const;  // only the taps inside the image
};

// C -> C at level l, kernel k (depthwise: groups = C).
ConvShape same_channels(const Level& l, int64_t k, int64_t pad, int64_t dil, bool depthwise);

// The three passes of a convolution, <op>_fwd, _bwd_data, _bwd_weight at
// `label`, with the given implementations.
struct ConvBench {
  bool cpu = true, gpu = true, cpu_plain_loops = false;
  BenchCase::Gpu gpu_impl = BenchCase::Gpu::Ours;
};
std::vector<BenchCase> conv_cases(const std::string& op, const std::string& label, const ConvShape& s,
                                  const ConvBench& how);

// A case with the common fields filled: name, label, the Backend::set_variant
// name, the GPU implementations.
BenchCase bench_case(std::string name, std::string label, std::string variant_op, BenchCase::Gpu gpu_impl);

// The gradient check's convolution grid: batch 1 and 3, odd sizes (13x11),
// channels 1, 3, 17, 64, kernels 1/3/5/7, dilation 1 and 3, stride 1 and 2.
struct ConvCase {
  int64_t n, cin, cout, h, w, k, stride, pad, dil, groups;
  bool depthwise() const { return groups == cin && groups == cout; }
};
const std::vector<ConvCase>& conv_grid();
// Layer checks of conv2d over the cases for which keep(case) holds, each
// with and without bias.
std::vector<LayerCheck> conv_checks(const std::string& name, bool (*keep)(const ConvCase&), uint64_t seed);

// The memory-bound ops at level l, forward and backward: training batch norm
// or (gate) the fused LKA gate x * sigmoid(BN(f)); an activation; the SE
// rescale x (N,C,H,W) * s (N,C,1,1); global average pooling; 2x2 max
// pooling; a decoder skip concat (C + C -> 2C); the SE block's two linear
// layers (C -> max(C/16, 4) -> C). The CPU suite times them at key levels.
// The per-channel normalisations' fwd/bwd cases: batch_norm, lka_gate, and
// batch_norm_relu with ResSE's residual (relu(BN(x)) + skip).
enum class NormCase { BatchNorm, LkaGate, BatchNormRelu };
std::vector<BenchCase> norm_cases(NormCase kind, const Level& l);
std::vector<BenchCase> activation_cases(const std::string& name, Activation a, const Level& l);
std::vector<BenchCase> se_mul_cases(const Level& l);
std::vector<BenchCase> global_avg_pool_cases(const Level& l);
std::vector<BenchCase> max_pool2d_cases(const Level& l);
std::vector<BenchCase> concat_cases(const Level& l);
std::vector<BenchCase> linear_cases(const Level& l);
// The deep-supervision logits at hw brought to 128x128 (bilinear).
std::vector<BenchCase> upsample_cases(int64_t hw);
// The loss head on (8, 4, 128, 128): softmax, the weighted cross-entropy and
// the adaptive Tversky loss with the training loss's parameters.
std::vector<BenchCase> softmax_cases();
std::vector<BenchCase> cross_entropy_cases();
std::vector<BenchCase> tversky_cases();

// Every level of the model through f.
template <class F>
std::vector<BenchCase> at_levels(F f) {
  std::vector<BenchCase> out;
  for (const Level& l : all_levels())
    for (BenchCase& c : f(l)) out.push_back(std::move(c));
  return out;
}
void append(std::vector<BenchCase>& to, std::vector<BenchCase> more);

}  // namespace lk::test
