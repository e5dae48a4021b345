// A grow-only device buffer for kernel and cuDNN workspaces, the one the CUDA
// backend, its cuDNN convolutions and its other cuDNN paths each hold: one
// user at a time on one stream, so get(bytes) may hand out the same memory
// again; it reallocates (through the caching allocator, no driver call after
// warm-up) only when a call asks for more than it holds. A captured training
// step (engine/step_graph.h) finds it sized by the eager warm-up step.
#pragma once

#include <cstddef>

#include "engine/tensor.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

class Workspace {
 public:
  explicit Workspace(Allocator& alloc) : alloc_(alloc) {}
  ~Workspace() {
    if (p_) alloc_.deallocate(p_, bytes_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // At least `bytes` of device memory; nullptr for 0. Valid until the next
  // call that grows it.
  void* get(size_t bytes) {
    if (bytes == 0) return nullptr;
    if (bytes > bytes_) {
      if (p_) alloc_.deallocate(p_, bytes_);
      p_ = nullptr;
      bytes_ = 0;
      p_ = alloc_.allocate(bytes);
      bytes_ = bytes;
    }
    return p_;
  }

 private:
  Allocator& alloc_;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

LK_CUDA_NAMESPACE_END
