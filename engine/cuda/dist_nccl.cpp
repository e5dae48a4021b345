// The NCCL communicator (engine/cuda/dist_nccl.h).
#include "engine/cuda/dist_nccl.h"

#include <nccl.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "engine/cuda/backend_cuda.h"
#include "engine/cuda/cuda_check.h"

namespace lk::cuda {

namespace {

void nccl_check(ncclResult_t r, ncclComm_t comm, const char* expr, const char* file, int line) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  std::string detail = ncclGetErrorString(r);
  if (const char* last = ncclGetLastError(comm); last && *last) detail += ": " + std::string(last);
  throw std::runtime_error("NCCL error (" + detail + ") in " + expr + " at " + file + ":" + std::to_string(line));
}
#define LK_NCCL_CHECK(expr, comm) nccl_check((expr), (comm), #expr, __FILE__, __LINE__)

ncclDataType_t nccl_type(const Tensor& t) {
  switch (t.dtype()) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::I32: return ncclInt32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
  }
  return ncclFloat32;
}

// An event recorded on `stream` now (the caller destroys it).
cudaEvent_t record(cudaStream_t stream) {
  cudaEvent_t e = nullptr;
  LK_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  LK_CUDA_CHECK(cudaEventRecord(e, stream));
  return e;
}

class NcclPending final : public dist::Pending {
 public:
  NcclPending(cudaEvent_t done, cudaStream_t compute) : done_(done), compute_(compute) {}
  ~NcclPending() override {
    if (done_) cudaEventDestroy(done_);  // released once the event completes
  }
  void wait() override {
    if (!done_) return;
    LK_CUDA_CHECK(cudaStreamWaitEvent(compute_, done_, 0));
    LK_CUDA_CHECK(cudaEventDestroy(done_));
    done_ = nullptr;
  }

 private:
  cudaEvent_t done_;
  cudaStream_t compute_;
};

class Nccl final : public dist::Communicator {
 public:
  Nccl(int device, std::unique_ptr<dist::Communicator> host) : host_(std::move(host)), device_(device) {
    compute_ = compute_stream(device_);  // creates the device's backend (and context) when needed
    LK_CUDA_CHECK(cudaSetDevice(device_));
    ncclUniqueId id{};
    if (host_->rank() == 0) LK_NCCL_CHECK(ncclGetUniqueId(&id), nullptr);
    host_->broadcast_host(&id, sizeof id, 0);
    LK_NCCL_CHECK(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()), nullptr);
    LK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    int v = 0;
    LK_NCCL_CHECK(ncclGetVersion(&v), comm_);
    version_ = std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  }
  ~Nccl() override {
    if (stream_) cudaStreamSynchronize(stream_);
    if (comm_) {
      ncclCommFinalize(comm_);
      ncclCommDestroy(comm_);
    }
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string describe() const override {
    return "NCCL " + version_ + " on cuda:" + std::to_string(device_) + ", host side " + host_->describe();
  }
  void sum_host(double* v, int64_t n) override { host_->sum_host(v, n); }
  void broadcast_host(void* data, int64_t bytes, int root) override { host_->broadcast_host(data, bytes, root); }
  void barrier() override { host_->barrier(); }
  [[noreturn]] void abort(int code) override {
    if (comm_) ncclCommAbort(comm_);  // kernels waiting for a dead peer give up
    comm_ = nullptr;
    host_->abort(code);
    std::_Exit(code);  // not reached: abort() ends the process
  }

  std::unique_ptr<dist::Pending> start_sum(std::vector<Tensor> ts) override {
    for (const Tensor& t : ts) check_device(t, "sum");
    after_compute();
    LK_NCCL_CHECK(ncclGroupStart(), comm_);
    for (const Tensor& t : ts)
      LK_NCCL_CHECK(ncclAllReduce(t.raw(), t.raw(), static_cast<size_t>(t.numel()), nccl_type(t), ncclSum, comm_,
                                  stream_),
                    comm_);
    LK_NCCL_CHECK(ncclGroupEnd(), comm_);
    return std::make_unique<NcclPending>(record(stream_), compute_);
  }

  void broadcast(const Tensor& t, int root) override {
    check_device(t, "broadcast");
    after_compute();
    LK_NCCL_CHECK(ncclBroadcast(t.raw(), t.raw(), static_cast<size_t>(t.numel()), nccl_type(t), root, comm_, stream_),
                  comm_);
    NcclPending(record(stream_), compute_).wait();
  }

 private:
  void check_device(const Tensor& t, const char* what) const {
    if (!(t.device() == Device{DeviceType::CUDA, device_}))
      throw std::invalid_argument(std::string("NCCL ") + what + ": '" + t.name() + "' lives on " + t.device().str() +
                                  ", not cuda:" + std::to_string(device_));
  }
  // NCCL's stream waits for everything queued on the compute stream so far.
  void after_compute() {
    const cudaEvent_t e = record(compute_);
    const cudaError_t rc = cudaStreamWaitEvent(stream_, e, 0);
    cudaEventDestroy(e);
    LK_CUDA_CHECK(rc);
  }

  std::unique_ptr<dist::Communicator> host_;
  int device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr, compute_ = nullptr;
  std::string version_;
};

}  // namespace

std::unique_ptr<dist::Communicator> make_nccl(int device, std::unique_ptr<dist::Communicator> host) {
  if (!host) throw std::invalid_argument("make_nccl: no host communicator");
  return std::make_unique<Nccl>(device, std::move(host));
}

}  // namespace lk::cuda
