// The CUDA UploadRing (engine/backend.h): pinned host tensors, device twins,
// a non-blocking copy stream and two events per slot. Internal to the CUDA
// backend (make_upload_ring); built for the real runtime and the emulator.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// `compute`: the backend's stream, which acquire() makes wait for a slot's
// copy and release() records on. Host tensors come from `pinned`, device
// tensors from `device_alloc`; both must outlive the ring.
std::unique_ptr<UploadRing> make_cuda_upload_ring(int device, cudaStream_t compute, Allocator& device_alloc,
                                                  Allocator& pinned,
                                                  const std::vector<std::pair<Shape, DType>>& parts, int slots);

LK_CUDA_NAMESPACE_END
