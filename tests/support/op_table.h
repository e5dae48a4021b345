// THE op table (ggml's test-backend-ops, for lkaseg): one entry per op, in
// op_table.cpp, and everything that proves or times an op reads it:
//   * tests/engine/test_golden.cpp            every fixture on the CPU, each
//                                             CPU variant, float64 and float32
//   * tests/engine/cuda/test_backend_ops.cpp  every fixture on the CUDA backend
//                                             (emulated: label emu; a GPU: gpu),
//                                             each CUDA variant
//   * tests/engine/test_gradcheck.cpp         the float64 gradient check over
//                                             each op's shape grid
//   * bench/bench_cpu_ops, bench/bench_gpu_kernels: each op's benchmark cases,
//                                             validated before they are timed
// Adding an op means one entry here plus its kernels (docs/ARCHITECTURE.md,
// "How to add an op"). An entry's name is the op's one spelling: the fixtures
// are <name>[_<case>].safetensors with metadata op == name, the benchmark rows
// <name>[_<case>]_<pass>/<variant>/<shape>, the tests "<suite> <name>".
//
// This library (lkaseg_op_table) needs the engine and the model's loss
// configuration only, so the tests and the benchmarks, both at the top of the
// tree, link it without an arrow back up; it has no Catch2 (the benchmarks do
// not link it) and no CUDA (the callers bring the device).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backend.h"
#include "tests/support/layer_check.h"

namespace lk::test {

using Named = std::map<std::string, Tensor>;        // tensors by name (a fixture's, a benchmark call's)
using Meta = std::map<std::string, std::string>;    // a fixture's parameters

// Value-scaled errors (compare.h) an op must stay within against PyTorch's
// float64 fixtures. docs/GPU.md, "Tolerances", says why each is what it is.
struct Tolerance {
  double cpu_f64 = 1e-10;  // the CPU backend in float64, every CPU variant
  double cpu_f32 = 2e-5;   // the CPU backend in float32
  double cuda = 1e-4;      // the CUDA backend under the emulator (label emu), every CUDA variant
  double gpu = 1e-4;       // the CUDA backend on a GPU (label gpu): nvcc's FMA contraction, device
                           // expf/logf (2 ulp), cuDNN's algorithms and summation order; TF32 off
};

// Where the benchmarks compare a timed call, and how far apart it may be.
inline constexpr double kBenchValidationTol = 1e-4;

// One benchmarked Backend call at a shape of the paper's model, buildable at
// any batch size (the validations run it at a smaller one).
struct BenchCase {
  std::string name;                      // <op>[_<case>]_<pass>, e.g. depthwise_conv2d_5x5_fwd
  std::string label;                     // the shape, e.g. 128x128x32
  std::function<Named(int64_t n)> make;  // host tensors at batch n: inputs random, outputs zero
  std::function<void(Backend&, const Named&)> run;  // the call; gradients ADD into outputs
  std::vector<std::string> outs;         // compared by the validation
  std::vector<std::string> variant_ops;  // Backend::set_variant names the call depends on
  int64_t items = 0, bytes = 0;          // per call at kBatch: elements of the main activation,
  double flops = 0, flops_valid = 0;     // compulsory bytes, FLOPs (nominal, inside the image)
  bool cpu = true, gpu = true;           // timed by bench_cpu_ops / bench_gpu_kernels
  bool cpu_plain_loops = false;          // bench_cpu_ops also times the PlainLoops variant
  enum class Gpu { Ours, OursAndCudnn, CudnnOnly };
  Gpu gpu_impl = Gpu::Ours;              // the CUDA backend's implementations of the call
  std::string key() const { return name + "/" + label; }
};

struct OpEntry {
  std::string name;   // the op's one spelling
  std::string where;  // the op function and its kernels, for readers
  // Fixtures (tests/golden/ops/<fixture>.safetensors) and how to run one:
  // `in` holds the fixture's inputs (on the device and in the dtype under
  // test); the function returns the output and stores any extra output the
  // fixture holds (alpha, running_mean_after, ...) in `in` under that name.
  std::vector<std::string> fixtures;
  std::function<Tensor(Named& in, const Meta& m)> golden;
  Tolerance tol;
  bool plain_loops = false;  // the CPU backend has PlainLoops kernels for it: the gradient check runs both
  std::function<std::vector<LayerCheck>()> gradcheck;  // the float64 check's shape grid (may be empty)
  std::function<std::vector<BenchCase>()> bench;        // benchmark cases (may be empty)
};

const std::vector<OpEntry>& op_table();
// The entry named `name`, or nullptr.
const OpEntry* find_op(std::string_view name);

// Fixture tensors that are neither inputs nor gradients: the output "out" and
// the extras an op's golden function must provide ("alpha", "*_after").
bool fixture_input(const std::string& tensor_name);

}  // namespace lk::test
