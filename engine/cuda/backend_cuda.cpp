// The CUDA backend (see backend_cuda.h): construction, memory, convolutions,
// graph capture; the other ops in backend_cuda_norm.cpp and backend_cuda_ops.cpp.
#include "engine/cuda/backend_cuda.h"

#include <mutex>

#include "engine/cuda/backend_cuda_impl.h"

LK_CUDA_NAMESPACE_BEGIN
namespace backend_impl {

namespace {

bool g_tf32 = false;
bool g_deterministic = true;

}  // namespace

// A captured step: its executable graph and its allocator pool.
class CudaGraph final : public Graph {
 public:
  CudaGraph(int device, cudaStream_t stream, CachingAllocator& alloc, cudaGraphExec_t exec, int pool)
      : device_(device), stream_(stream), alloc_(alloc), exec_(exec), pool_(pool) {}
  ~CudaGraph() override {
    // Later work on the stream runs after the last replay, so the pool's
    // blocks may go back to the cache at once.
    try {
      LK_CUDA_CHECK(cudaSetDevice(device_));
      LK_CUDA_CHECK(cudaGraphExecDestroy(exec_));
    } catch (...) {
    }
    alloc_.release_pool(pool_);
  }
  void launch() override { LK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  int device_;
  cudaStream_t stream_;
  CachingAllocator& alloc_;
  cudaGraphExec_t exec_;
  int pool_;
};

CudaBackend::CudaBackend(int device) : device_(device), alloc_(device), pinned_(device, true) {
  LK_CUDA_CHECK(cudaSetDevice(device));
  LK_CUDA_CHECK(cudaStreamCreate(&stream_));
  alloc_.set_stream(stream_);  // device blocks are reused in this stream's order
  label_errors_ = static_cast<LabelError*>(alloc_.allocate(2 * sizeof(LabelError)));
  label_errors_seen_ = static_cast<LabelError*>(pinned_.allocate(2 * sizeof(LabelError)));
  LK_CUDA_CHECK(cudaMemsetAsync(label_errors_, 0xFF, 2 * sizeof(LabelError), stream_));  // none
#if !defined(LKASEG_SIMT)
  cudnn_ = std::make_unique<CudnnConv>(stream_, alloc_);
  ref_ = std::make_unique<CudnnOps>(cudnn_->handle(), alloc_);
#endif
}

CudaBackend::~CudaBackend() {
  for (auto& [owner, u] : table_uploads_)
    if (u.device) cudaFreeAsync(u.device, stream_);
  if (label_errors_) alloc_.deallocate(label_errors_, 2 * sizeof(LabelError));
  if (label_errors_seen_) pinned_.deallocate(label_errors_seen_, 2 * sizeof(LabelError));
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::synchronize() {
  LK_CUDA_CHECK(
      cudaMemcpyAsync(label_errors_seen_, label_errors_, 2 * sizeof(LabelError), cudaMemcpyDeviceToHost, stream_));
  LK_CUDA_CHECK(cudaStreamSynchronize(stream_));
  raise_label_errors();
}

void CudaBackend::fill(const Tensor& y, double v) {
  if (y.dtype() == DType::I32) {
    if (v != 0.0 && v != -1.0) throw std::invalid_argument("CUDA fill of int32 tensors supports 0 and -1 only");
    LK_CUDA_CHECK(cudaMemsetAsync(y.raw(), v == 0.0 ? 0 : 0xFF, y.nbytes(), stream_));
    return;
  }
  if (y.dtype() == DType::F64)  // small state arrays (the optimiser's)
    return LK_LAUNCHED(lk::cuda::fill(y.numel(), v, y.data<double>(), stream_));
  storage(y, [&]<typename T> { LK_LAUNCHED(lk::cuda::fill(y.numel(), static_cast<float>(v), mp<T>(y), stream_)); });
}

void CudaBackend::axpy(double a, const Tensor& x, const Tensor& y) {
  storage(y, [&]<typename T> {
    LK_LAUNCHED(lk::cuda::axpy(y.numel(), static_cast<float>(a), cp<T>(x), mp<T>(y), stream_, acc(y)));
  });
}

void CudaBackend::conv_transpose2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b,
                                       const Tensor& y) {
  conv_bwd_data(g, x, w, y, false);
  if (b.defined()) {  // y += bias, in place (binary_fwd allows y == a when a has y's shape)
    const Dims4 out = dims4(y.shape()), sb{1, g.c_in, 1, 1};
    const Tensor bt = as_storage(b, y.dtype());
    storage(y, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::binary_fwd(BinaryOp::Add, out, cp<T>(y), out, cp<T>(bt), sb, mp<T>(y), stream_));
    });
  }
}

void CudaBackend::conv_transpose2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw,
                                              const Tensor& db) {
  conv_bwd_weight(g, x, dy, dw, Tensor(), acc(dw), true);
  if (db.defined())
    storage(dy, [&]<typename T> {
      LK_LAUNCHED(channel_sum_acc(g.n, g.c_in, g.h * g.w, cp<T>(dy), mf(db), stream_, acc(db)));
    });
}

std::unique_ptr<Graph> CudaBackend::capture(const std::function<void()>& f, std::string* why) {
  LK_CUDA_CHECK(cudaSetDevice(device_));
  const int pool = alloc_.begin_pool();
  // Thread-local: the loader's worker threads may allocate meanwhile.
  if (const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal); e != cudaSuccess) {
    (void)cudaGetLastError();
    alloc_.release_pool(pool);
    *why = std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(e);
    return nullptr;
  }
  std::string failed;
  try {
    f();
  } catch (const std::exception& e) {
    failed = e.what();
  }
  alloc_.end_pool();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  cudaGraphExec_t exec = nullptr;
  if (failed.empty() && ended != cudaSuccess)
    failed = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(ended);
  if (failed.empty()) {
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    if (made != cudaSuccess) failed = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(made);
  }
  if (graph) LK_CUDA_CHECK(cudaGraphDestroy(graph));
  if (!failed.empty()) {
    (void)cudaGetLastError();  // capture errors are not sticky; clear the last one
    alloc_.release_pool(pool);
    *why = failed;
    return nullptr;
  }
  return std::make_unique<CudaGraph>(device_, stream_, alloc_, exec, pool);
}

Tensor CudaBackend::wide(const Tensor& t) {
  if (!reduced(t)) return t;
  Tensor w = Tensor::empty(t.shape(), DType::F32, device());
  cast(t, w, false);
  return w;
}

void CudaBackend::cast_to(const Tensor& src, const Tensor& dst, bool accumulate) {
  storage(src, [&]<typename S> {
    storage(dst,
            [&]<typename D> { LK_LAUNCHED(lk::cuda::cast(src.numel(), cp<S>(src), mp<D>(dst), stream_, accumulate)); });
  });
}

void CudaBackend::raise_label_errors() {
  static constexpr const char* kOps[2] = {"cross_entropy", "tversky"};
  for (int k = 0; k < 2; ++k) {
    const LabelError e = label_errors_seen_[k];
    if (e.index < 0) continue;
    label_errors_seen_[0].index = label_errors_seen_[1].index = -1;
    LK_CUDA_CHECK(cudaMemsetAsync(label_errors_, 0xFF, 2 * sizeof(LabelError), stream_));
    throw std::invalid_argument(std::string(kOps[k]) + ": label " + std::to_string(e.label) + " at flat index " +
                                std::to_string(e.index) + " is outside [0, " + std::to_string(label_classes_[k]) +
                                ") (found on the device, reported at the next wait for it)");
  }
}

Tensor CudaBackend::as_storage(const Tensor& t, DType to) {
  if (!t.defined() || t.dtype() == to) return t;
  Tensor c = Tensor::empty(t.shape(), to, device());
  cast(t, c, false);
  return c;
}

void CudaBackend::conv_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y,
                           bool acc) {
  if (use_ours_depthwise(g))
    return storage(
        x, [&]<typename T> { LK_LAUNCHED(depthwise_conv2d_fwd(g, cp<T>(x), cf(w), cf(b), mp<T>(y), acc, stream_)); });
#if defined(LKASEG_SIMT)
  if (reduced(x)) {
    const Tensor yw = acc ? wide(y) : wide_out(y);
    conv_fwd(g, wide(x), w, b, yw, acc);
    return narrow(yw, y);
  }
  LK_LAUNCHED(conv2d_direct_fwd(g, cf(x), cf(w), cf(b), mf(y), acc, stream_));
#else
  cudnn_mode();
  const Tensor wt = as_storage(w, x.dtype()), bt = as_storage(b, x.dtype());
  cudnn_->fwd(g, x.dtype(), x.raw(), wt.raw(), bt.defined() ? bt.raw() : nullptr, y.raw(), acc);
#endif
}

void CudaBackend::conv_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx, bool acc_dx) {
  if (use_ours_depthwise(g))
    return storage(dy, [&]<typename T> {
      LK_LAUNCHED(depthwise_conv2d_bwd_data(g, cp<T>(dy), cf(w), mp<T>(dx), stream_, acc_dx));
    });
#if defined(LKASEG_SIMT)
  if (reduced(dy)) {
    const Tensor dxw = acc_dx ? wide(dx) : wide_out(dx);
    conv_bwd_data(g, wide(dy), w, dxw, acc_dx);
    return narrow(dxw, dx);
  }
  LK_LAUNCHED(conv2d_direct_bwd_data(g, cf(dy), cf(w), mf(dx), stream_, acc_dx));
#else
  cudnn_mode();
  cudnn_->bwd_data(g, dy.dtype(), dy.raw(), as_storage(w, dy.dtype()).raw(), dx.raw(), acc_dx);
#endif
}

void CudaBackend::conv_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw,
                                  const Tensor& db, bool acc_dw, bool acc_db) {
  if (use_ours_depthwise(g)) {
    const size_t ws = depthwise_conv2d_bwd_weight_workspace_bytes(g);
    return storage(x, [&]<typename T> {
      LK_LAUNCHED(depthwise_conv2d_bwd_weight(g, cp<T>(dy), cp<T>(x), mf(dw), mf(db), scratch(ws), ws, stream_, acc_dw,
                                              acc_db));
    });
  }
#if defined(LKASEG_SIMT)
  if (reduced(x)) return conv_bwd_weight(g, wide(dy), wide(x), dw, db, acc_dw, acc_db);
  LK_LAUNCHED(conv2d_direct_bwd_weight(g, cf(dy), cf(x), mf(dw), mf(db), stream_, acc_dw, acc_db));
#else
  cudnn_mode();
  if (!reduced(x)) return cudnn_->bwd_filter(g, cf(dy), cf(x), mf(dw), mf(db), acc_dw, acc_db);
  if (dw.defined()) {  // written by cuDNN (beta 0), then added to (or written into) the float32 gradient
    const Tensor dw16 = Tensor::empty(dw.shape(), x.dtype(), device());
    cudnn_->bwd_filter(g, x.dtype(), dy.raw(), x.raw(), dw16.raw(), nullptr, false, true);
    cast_to(dw16, dw, acc_dw);
  }
  if (db.defined())
    storage(dy, [&]<typename T> {
      LK_LAUNCHED(channel_sum_acc(g.n, g.c_out, g.oh * g.ow, cp<T>(dy), mf(db), stream_, acc_db));
    });
#endif
}

#if !defined(LKASEG_SIMT)
void CudaBackend::cudnn_mode() {
  cudnn_->set_math(g_tf32 ? MathMode::TF32 : MathMode::FP32_FMA);
  cudnn_->set_deterministic(g_deterministic);
}
#endif

}  // namespace backend_impl

using backend_impl::CudaBackend;

Backend& cuda_backend(int device) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<CudaBackend>> instances;  // one per device
  std::lock_guard lock(mu);
  std::unique_ptr<CudaBackend>& instance = instances[device];
  if (!instance) {
    if (device_count() <= device)
      throw std::runtime_error("cuda:" + std::to_string(device) + " is not available (" +
                               (device_count() ? std::to_string(device_count()) + " device(s)" : why_none()) + ")");
    instance = std::make_unique<CudaBackend>(device);
    register_backend({DeviceType::CUDA, device}, instance.get());
  }
  return *instance;
}

void set_tf32(bool on) { backend_impl::g_tf32 = on; }
void set_deterministic(bool on) { backend_impl::g_deterministic = on; }

cudaStream_t compute_stream(int device) { return static_cast<CudaBackend&>(cuda_backend(device)).stream(); }

LK_CUDA_NAMESPACE_END
