#include "engine/cuda/cudnn_conv.h"

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/cuda/cuda_check.h"

LK_CUDA_NAMESPACE_BEGIN

void cudnn_check(cudnnStatus_t s, const char* expr, const char* file, int line) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  throw std::runtime_error(std::string("cuDNN error ") + cudnnGetErrorString(s) + " in " + expr + " at " + file + ":" +
                           std::to_string(line));
}

void cudnn_check_nothrow(cudnnStatus_t s, const char* expr, const char* file, int line) noexcept {
  if (s != CUDNN_STATUS_SUCCESS)
    std::fprintf(stderr, "lkaseg: cuDNN error %s in %s at %s:%d\n", cudnnGetErrorString(s), expr, file, line);
}

namespace {

constexpr size_t kMaxWorkspace = size_t(256) << 20;

// The algorithms cuDNN's "Reproducibility" section names as using atomics
// (checked besides the determinism the heuristic reports).
bool atomic_algo(cudnnConvolutionFwdAlgo_t) { return false; }
bool atomic_algo(cudnnConvolutionBwdDataAlgo_t a) { return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0; }
bool atomic_algo(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

// The first heuristic result (best first) that ran, fits the workspace
// limit, and honours the math mode (16-bit data: tensor cores always
// allowed) and, when asked, determinism.
template <class Perf>
const Perf* pick(const std::vector<Perf>& perf, int found, MathMode math, bool half, bool deterministic) {
  for (int i = 0; i < found; ++i) {
    const Perf& p = perf[static_cast<size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kMaxWorkspace) continue;
    if (deterministic && (p.determinism != CUDNN_DETERMINISTIC || atomic_algo(p.algo))) continue;
    if (math == MathMode::FP32_FMA && !half &&
        (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
      continue;
    return &p;
  }
  return nullptr;
}

[[noreturn]] void no_algorithm(const char* pass, const ConvGeom& g, DType t, MathMode math, bool deterministic) {
  throw std::runtime_error(std::string("cuDNN: no ") + (deterministic ? "deterministic " : "") + dtype_name(t) + " " +
                           pass + " algorithm with " +
                           (is_reduced(t) ? "tensor-core" : math == MathMode::TF32 ? "TF32" : "FP32 FMA") +
                           " math within 256 MiB of workspace for the convolution n" + std::to_string(g.n) + " c" +
                           std::to_string(g.c_in) + "->" + std::to_string(g.c_out) + " " + std::to_string(g.h) + "x" +
                           std::to_string(g.w) + " k" + std::to_string(g.kh) + "x" + std::to_string(g.kw) + " groups " +
                           std::to_string(g.groups) +
                           (deterministic ? " (--fast-nondeterministic allows the others)" : ""));
}

cudnnDataType_t data_type(DType t) {
  switch (t) {
    case DType::F32: return CUDNN_DATA_FLOAT;
    case DType::BF16: return CUDNN_DATA_BFLOAT16;
    case DType::F16: return CUDNN_DATA_HALF;
    default: throw std::invalid_argument(std::string("cuDNN convolution: no ") + dtype_name(t) + " plans");
  }
}

int to_int(int64_t v) {
  if (v < 0 || v > (int64_t(1) << 31) - 1) throw std::invalid_argument("cuDNN convolution: a dimension exceeds int");
  return static_cast<int>(v);
}

}  // namespace

struct CudnnConv::Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  // Each pass's algorithm, the math type it runs with and its workspace,
  // chosen on the pass's first call.
  template <class Algo>
  struct Pass {
    bool chosen = false;
    Algo algo{};
    cudnnMathType_t math = CUDNN_FMA_MATH;
    size_t workspace = 0;
  };
  Pass<cudnnConvolutionFwdAlgo_t> fwd;
  Pass<cudnnConvolutionBwdDataAlgo_t> data;
  Pass<cudnnConvolutionBwdFilterAlgo_t> filter;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (x) LK_CUDNN_CHECK_NOTHROW(cudnnDestroyTensorDescriptor(x));
    if (y) LK_CUDNN_CHECK_NOTHROW(cudnnDestroyTensorDescriptor(y));
    if (b) LK_CUDNN_CHECK_NOTHROW(cudnnDestroyTensorDescriptor(b));
    if (w) LK_CUDNN_CHECK_NOTHROW(cudnnDestroyFilterDescriptor(w));
    if (conv) LK_CUDNN_CHECK_NOTHROW(cudnnDestroyConvolutionDescriptor(conv));
  }
};

namespace {

// A pass's algorithm, from cuDNN's heuristic list (count(&max) and
// list(max, &found, perf) call cudnnGet*AlgorithmMaxCount / *_v7, each
// checked), and its workspace (size(algo, &bytes)), with the math type set
// on the plan's descriptor first.
template <class Perf, class Algo, class Count, class List, class Size>
void choose(CudnnConv::Plan::Pass<Algo>& pass, cudnnConvolutionDescriptor_t conv, const char* name,
            const ConvGeom& g, DType t, MathMode math, bool deterministic, Count count, List list, Size size) {
  int max = 0, found = 0;
  count(&max);
  std::vector<Perf> perf(static_cast<size_t>(max));
  list(max, &found, perf.data());
  const Perf* best = pick(perf, found, math, is_reduced(t), deterministic);
  if (!best) no_algorithm(name, g, t, math, deterministic);
  pass.algo = best->algo;
  pass.math = math == MathMode::TF32 || is_reduced(t) ? best->mathType : CUDNN_FMA_MATH;
  LK_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, pass.math));
  size(pass.algo, &pass.workspace);
  pass.chosen = true;
}

}  // namespace

CudnnConv::CudnnConv(cudaStream_t stream, Allocator& workspace) : ws_(workspace) {
  LK_CUDNN_CHECK(cudnnCreate(&handle_));
  LK_CUDNN_CHECK(cudnnSetStream(handle_, stream));
}

CudnnConv::~CudnnConv() {
  plans_.clear();
  if (handle_) LK_CUDNN_CHECK_NOTHROW(cudnnDestroy(handle_));
}

// Grown in the stream's order: the old block goes back to the caching
// allocator, whose stream is the handle's, so queued work finishes with it first.
void* CudnnConv::workspace(size_t bytes) { return ws_.get(bytes); }

CudnnConv::Plan& CudnnConv::plan(const ConvGeom& g, DType t) {
  const Key k{g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad,
              g.dil, g.groups, static_cast<int>(math_), deterministic_, static_cast<int>(t)};
  const cudnnDataType_t dt = data_type(t);
  std::unique_ptr<Plan>& slot = plans_[k];
  if (slot) return *slot;
  auto p = std::make_unique<Plan>();
  LK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  LK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  LK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->b));
  LK_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  LK_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  LK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, dt, to_int(g.n), to_int(g.c_in),
                                            to_int(g.h), to_int(g.w)));
  LK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, dt, to_int(g.n), to_int(g.c_out),
                                            to_int(g.oh), to_int(g.ow)));
  LK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->b, CUDNN_TENSOR_NCHW, dt, 1, to_int(g.c_out), 1, 1));
  LK_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NCHW, to_int(g.c_out),
                                            to_int(g.c_in / g.groups), to_int(g.kh), to_int(g.kw)));
  LK_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, to_int(g.pad), to_int(g.pad), to_int(g.stride),
                                                 to_int(g.stride), to_int(g.dil), to_int(g.dil),
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));  // float32 accumulation
  LK_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->conv, to_int(g.groups)));
  LK_CUDNN_CHECK(cudnnSetConvolutionMathType(
      p->conv, is_reduced(t) ? CUDNN_TENSOR_OP_MATH : math_ == MathMode::TF32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  // Our geometry and cuDNN's must agree on the output.
  int on = 0, oc = 0, oh = 0, ow = 0;
  LK_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc, &oh, &ow));
  if (on != g.n || oc != g.c_out || oh != g.oh || ow != g.ow)
    throw std::logic_error("cuDNN convolution: output " + std::to_string(oh) + "x" + std::to_string(ow) +
                           " differs from the geometry's " + std::to_string(g.oh) + "x" + std::to_string(g.ow));
  slot = std::move(p);
  return *slot;
}

void CudnnConv::fwd(const ConvGeom& g, DType t, const void* x, const void* w, const void* b, void* y,
                    bool accumulate) {
  Plan& p = plan(g, t);
  if (!p.fwd.chosen)
    choose<cudnnConvolutionFwdAlgoPerf_t>(
        p.fwd, p.conv, "forward", g, t, math_, deterministic_,
        [&](int* max) { LK_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle_, max)); },
        [&](int max, int* found, cudnnConvolutionFwdAlgoPerf_t* perf) {
          LK_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle_, p.x, p.w, p.conv, p.y, max, found, perf));
        },
        [&](cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
          LK_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle_, p.x, p.w, p.conv, p.y, algo, bytes));
        });
  LK_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.fwd.math));
  const float one = 1.f, beta = accumulate ? 1.f : 0.f;
  LK_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.x, x, p.w, w, p.conv, p.fwd.algo,
                                         workspace(p.fwd.workspace), p.fwd.workspace, &beta, p.y, y));
  if (b) LK_CUDNN_CHECK(cudnnAddTensor(handle_, &one, p.b, b, &one, p.y, y));
}

void CudnnConv::bwd_data(const ConvGeom& g, DType t, const void* dy, const void* w, void* dx, bool accumulate) {
  Plan& p = plan(g, t);
  if (!p.data.chosen)
    choose<cudnnConvolutionBwdDataAlgoPerf_t>(
        p.data, p.conv, "backward-data", g, t, math_, deterministic_,
        [&](int* max) { LK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle_, max)); },
        [&](int max, int* found, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
          LK_CUDNN_CHECK(
              cudnnGetConvolutionBackwardDataAlgorithm_v7(handle_, p.w, p.y, p.conv, p.x, max, found, perf));
        },
        [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
          LK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle_, p.w, p.y, p.conv, p.x, algo, bytes));
        });
  LK_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.data.math));
  const float one = 1.f, beta = accumulate ? 1.f : 0.f;
  LK_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.w, w, p.y, dy, p.conv, p.data.algo,
                                              workspace(p.data.workspace), p.data.workspace, &beta, p.x, dx));
}

void CudnnConv::bwd_filter(const ConvGeom& g, DType t, const void* dy, const void* x, void* dw, void* db,
                           bool acc_dw, bool acc_db) {
  Plan& p = plan(g, t);
  if (dw && !p.filter.chosen)
    choose<cudnnConvolutionBwdFilterAlgoPerf_t>(
        p.filter, p.conv, "backward-filter", g, t, math_, deterministic_,
        [&](int* max) { LK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle_, max)); },
        [&](int max, int* found, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
          LK_CUDNN_CHECK(
              cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle_, p.x, p.y, p.conv, p.w, max, found, perf));
        },
        [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
          LK_CUDNN_CHECK(
              cudnnGetConvolutionBackwardFilterWorkspaceSize(handle_, p.x, p.y, p.conv, p.w, algo, bytes));
        });
  const float one = 1.f, beta_w = acc_dw ? 1.f : 0.f, beta_b = acc_db ? 1.f : 0.f;
  if (dw) {
    LK_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.filter.math));
    LK_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.x, x, p.y, dy, p.conv, p.filter.algo,
                                                  workspace(p.filter.workspace), p.filter.workspace, &beta_w, p.w, dw));
  }
  if (db) LK_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle_, &one, p.y, dy, &beta_b, p.b, db));
}

LK_CUDA_NAMESPACE_END
