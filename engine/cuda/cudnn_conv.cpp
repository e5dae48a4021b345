#include "engine/cuda/cudnn_conv.h"

#include <stdexcept>
#include <string>

#include "engine/cuda/cuda_check.h"

LK_CUDA_NAMESPACE_BEGIN

void cudnn_check(cudnnStatus_t s, const char* expr, const char* file, int line) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  throw std::runtime_error(std::string("cuDNN error ") + cudnnGetErrorString(s) + " in " + expr + " at " + file + ":" +
                           std::to_string(line));
}

namespace {
constexpr size_t kMaxWorkspace = size_t(256) << 20;
}

// The four descriptors of one convolution; destroyed with the struct.
struct CudnnConv::Descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descs() = default;
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;
  Descs(Descs&& o) noexcept : x(o.x), y(o.y), b(o.b), w(o.w), conv(o.conv) { o.x = o.y = o.b = nullptr, o.w = nullptr, o.conv = nullptr; }
  ~Descs() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (b) cudnnDestroyTensorDescriptor(b);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

CudnnConv::CudnnConv(cudaStream_t stream, Allocator& workspace) : ws_(workspace) {
  LK_CUDNN_CHECK(cudnnCreate(&handle_));
  LK_CUDNN_CHECK(cudnnSetStream(handle_, stream));
}

CudnnConv::~CudnnConv() {
  if (handle_) cudnnDestroy(handle_);
}

void* CudnnConv::workspace(size_t bytes) { return ws_.get(bytes); }

CudnnConv::Key CudnnConv::key(const ConvGeom& g) const {
  return {g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.dil, g.groups, static_cast<int>(math_)};
}

CudnnConv::Descs CudnnConv::describe(const ConvGeom& g) const {
  Descs d;
  LK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.x));
  LK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.y));
  LK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.b));
  LK_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d.w));
  LK_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d.conv));
  LK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(g.n), int(g.c_in), int(g.h), int(g.w)));
  LK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(g.n), int(g.c_out), int(g.oh), int(g.ow)));
  LK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, int(g.c_out), 1, 1));
  LK_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(g.c_out), int(g.c_in / g.groups),
                                            int(g.kh), int(g.kw)));
  LK_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d.conv, int(g.pad), int(g.pad), int(g.stride), int(g.stride), int(g.dil),
                                                 int(g.dil), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  LK_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d.conv, int(g.groups)));
  LK_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, math_ == MathMode::TF32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  return d;
}

void CudnnConv::fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y, bool accumulate) {
  const Descs d = describe(g);
  const Key k = key(g);
  if (!fwd_algo_.count(k)) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int found = 0;
    LK_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle_, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                          &found, perf));
    int pick = -1;
    for (int i = 0; i < found && pick < 0; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspace) pick = i;
    if (pick < 0) throw std::runtime_error("cuDNN: no forward algorithm for this convolution");
    fwd_algo_[k] = perf[pick].algo;
  }
  size_t ws = 0;
  LK_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle_, d.x, d.w, d.conv, d.y, fwd_algo_[k], &ws));
  const float one = 1.f, beta = accumulate ? 1.f : 0.f;
  LK_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, d.x, x, d.w, w, d.conv, fwd_algo_[k], ws ? workspace(ws) : nullptr,
                                         ws, &beta, d.y, y));
  if (b) LK_CUDNN_CHECK(cudnnAddTensor(handle_, &one, d.b, b, &one, d.y, y));
}

void CudnnConv::bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  const Descs d = describe(g);
  const Key k = key(g);
  if (!bwd_data_algo_.count(k)) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int found = 0;
    LK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle_, d.w, d.y, d.conv, d.x,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, perf));
    int pick = -1;
    for (int i = 0; i < found && pick < 0; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspace) pick = i;
    if (pick < 0) throw std::runtime_error("cuDNN: no backward-data algorithm for this convolution");
    bwd_data_algo_[k] = perf[pick].algo;
  }
  size_t ws = 0;
  LK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle_, d.w, d.y, d.conv, d.x, bwd_data_algo_[k], &ws));
  const float one = 1.f;
  LK_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, d.w, w, d.y, dy, d.conv, bwd_data_algo_[k],
                                              ws ? workspace(ws) : nullptr, ws, &one, d.x, dx));
}

void CudnnConv::bwd_filter(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db) {
  const Descs d = describe(g);
  const Key k = key(g);
  if (!bwd_filter_algo_.count(k)) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int found = 0;
    LK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle_, d.x, d.y, d.conv, d.w,
                                                                 CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, perf));
    int pick = -1;
    for (int i = 0; i < found && pick < 0; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspace) pick = i;
    if (pick < 0) throw std::runtime_error("cuDNN: no backward-filter algorithm for this convolution");
    bwd_filter_algo_[k] = perf[pick].algo;
  }
  size_t ws = 0;
  LK_CUDNN_CHECK(
      cudnnGetConvolutionBackwardFilterWorkspaceSize(handle_, d.x, d.y, d.conv, d.w, bwd_filter_algo_[k], &ws));
  const float one = 1.f;
  if (dw)
    LK_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, d.x, x, d.y, dy, d.conv, bwd_filter_algo_[k],
                                                  ws ? workspace(ws) : nullptr, ws, &one, d.w, dw));
  if (db) LK_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle_, &one, d.y, dy, &one, d.b, db));
}

LK_CUDA_NAMESPACE_END
