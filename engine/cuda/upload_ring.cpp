#include "engine/cuda/upload_ring.h"

#include <stdexcept>
#include <string>

#include "engine/cuda/cuda_check.h"

LK_CUDA_NAMESPACE_BEGIN

namespace {

class CudaUploadRing final : public UploadRing {
 public:
  CudaUploadRing(int device, cudaStream_t compute, CachingAllocator& device_alloc, CachingAllocator& pinned,
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
        // The copy stream reads the host block and writes the device block:
        // neither is reused before the copy stream's work queued by then.
        pinned.record_stream(s.host.back().raw(), copy_);
        device_alloc.record_stream(s.dev.back().raw(), copy_);
      }
      // The device blocks come from the compute stream's cache: work queued
      // there by their previous owner (and their poisoning) may still touch
      // them. The first upload waits for it as every later one waits for
      // the consumer's release.
      LK_CUDA_CHECK(cudaEventRecord(s.consumed, compute_));
    }
  }
  ~CudaUploadRing() override {
    // Copies still in flight write device blocks and read pinned blocks: wait
    // for them, and give the blocks back while the copy stream (on which
    // their frees record events) still exists.
    if (copy_) (void)cudaStreamSynchronize(copy_);
    for (Slot& s : slots_) {
      s.host.clear();
      s.dev.clear();
      if (s.copied) (void)cudaEventDestroy(s.copied);
      if (s.consumed) (void)cudaEventDestroy(s.consumed);
    }
    if (copy_) (void)cudaStreamDestroy(copy_);
  }

  int slots() const override { return static_cast<int>(slots_.size()); }
  int parts() const override { return parts_; }
  const Tensor& host(int slot, int part) const override { return at(slot).host.at(static_cast<size_t>(part)); }

  // wait_writable and upload run on the loader's worker threads: each call
  // makes the ring's device current there (a thread starts on device 0, whose
  // context CUDA would otherwise create, and cuda:1 would not be used).
  void wait_writable(int slot) override {
    LK_CUDA_CHECK(cudaSetDevice(device_));
    LK_CUDA_CHECK(cudaEventSynchronize(at(slot).copied));
  }

  void upload(int slot, int64_t rows) override {
    LK_CUDA_CHECK(cudaSetDevice(device_));
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
    cudaEvent_t consumed = nullptr;  // recorded on the compute stream when made and at release()
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

std::unique_ptr<UploadRing> make_cuda_upload_ring(int device, cudaStream_t compute, CachingAllocator& device_alloc,
                                                  CachingAllocator& pinned,
                                                  const std::vector<std::pair<Shape, DType>>& parts, int slots) {
  return std::make_unique<CudaUploadRing>(device, compute, device_alloc, pinned, parts, slots);
}

LK_CUDA_NAMESPACE_END
