#include "engine/cuda/upload_ring.h"

#include <stdexcept>
#include <string>

#include "engine/cuda/cuda_check.h"

LK_CUDA_NAMESPACE_BEGIN

namespace {

class CudaUploadRing final : public UploadRing {
 public:
  CudaUploadRing(int device, cudaStream_t compute, Allocator& device_alloc, Allocator& pinned,
                 const std::vector<std::pair<Shape, DType>>& parts, int slots)
      : device_(device), compute_(compute), parts_(static_cast<int>(parts.size())) {
    if (slots < 1 || parts.empty()) throw std::invalid_argument("make_upload_ring: needs at least one slot and part");
    LK_CUDA_CHECK(cudaSetDevice(device_));
    LK_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
    slots_.resize(static_cast<size_t>(slots));
    for (Slot& s : slots_) {
      LK_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
      LK_CUDA_CHECK(cudaEventCreateWithFlags(&s.consumed, cudaEventDisableTiming));
      for (const auto& [shape, dtype] : parts) {
        s.host.push_back(Tensor::empty_in(shape, dtype, pinned));
        s.dev.push_back(Tensor::empty_in(shape, dtype, device_alloc));
      }
    }
  }
  ~CudaUploadRing() override {
    // Copies still in flight write device blocks that go back to the cache
    // and read pinned blocks that go back to theirs: wait for them first.
    if (copy_) (void)cudaStreamSynchronize(copy_);
    for (Slot& s : slots_) {
      if (s.copied) (void)cudaEventDestroy(s.copied);
      if (s.consumed) (void)cudaEventDestroy(s.consumed);
    }
    if (copy_) (void)cudaStreamDestroy(copy_);
  }

  int slots() const override { return static_cast<int>(slots_.size()); }
  int parts() const override { return parts_; }
  const Tensor& host(int slot, int part) const override { return at(slot).host.at(static_cast<size_t>(part)); }

  void wait_writable(int slot) override { LK_CUDA_CHECK(cudaEventSynchronize(at(slot).copied)); }

  void upload(int slot, int64_t rows) override {
    Slot& s = at(slot);
    // The device tensors may still be read by work queued before release().
    LK_CUDA_CHECK(cudaStreamWaitEvent(copy_, s.consumed, 0));
    for (int p = 0; p < parts_; ++p) {
      const Tensor h = s.host[static_cast<size_t>(p)].head(rows);
      LK_CUDA_CHECK(cudaMemcpyAsync(s.dev[static_cast<size_t>(p)].raw(), h.raw(), h.nbytes(),
                                    cudaMemcpyHostToDevice, copy_));
    }
    LK_CUDA_CHECK(cudaEventRecord(s.copied, copy_));
  }

  std::vector<Tensor> acquire(int slot, int64_t rows) override {
    Slot& s = at(slot);
    LK_CUDA_CHECK(cudaStreamWaitEvent(compute_, s.copied, 0));
    std::vector<Tensor> out;
    for (const Tensor& d : s.dev) out.push_back(d.head(rows));
    return out;
  }

  void release(int slot) override { LK_CUDA_CHECK(cudaEventRecord(at(slot).consumed, compute_)); }

 private:
  struct Slot {
    std::vector<Tensor> host, dev;
    cudaEvent_t copied = nullptr;    // recorded on the copy stream after the slot's upload
    cudaEvent_t consumed = nullptr;  // recorded on the compute stream at release()
  };
  Slot& at(int slot) {
    if (slot < 0 || slot >= slots()) throw std::out_of_range("UploadRing: slot " + std::to_string(slot));
    return slots_[static_cast<size_t>(slot)];
  }
  const Slot& at(int slot) const { return const_cast<CudaUploadRing*>(this)->at(slot); }

  const int device_;
  cudaStream_t compute_;
  cudaStream_t copy_ = nullptr;
  const int parts_;
  std::vector<Slot> slots_;
};

}  // namespace

std::unique_ptr<UploadRing> make_cuda_upload_ring(int device, cudaStream_t compute, Allocator& device_alloc,
                                                  Allocator& pinned,
                                                  const std::vector<std::pair<Shape, DType>>& parts, int slots) {
  return std::make_unique<CudaUploadRing>(device, compute, device_alloc, pinned, parts, slots);
}

LK_CUDA_NAMESPACE_END
