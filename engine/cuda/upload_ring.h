// The CUDA UploadRing (engine/backend.h): pinned host tensors, device twins,
// a non-blocking copy stream and two events per slot. Internal to the CUDA
// backend (make_upload_ring); built for the real runtime and the emulator.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda/caching_allocator.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// `compute`: the backend's stream, which acquire() makes wait for a slot's
// copy and release() records on (also once when a slot is made, so that the
// first upload waits for the work that still touches the slot's recycled
// device blocks). Host tensors come from `pinned`, device tensors from
// `device_alloc` (the compute stream's); both record the copy stream as a
// user of the blocks and must outlive the ring. The worker-side calls
// (wait_writable, upload) make `device` current on their thread.
std::unique_ptr<UploadRing> make_cuda_upload_ring(int device, cudaStream_t compute, CachingAllocator& device_alloc,
                                                  CachingAllocator& pinned,
                                                  const std::vector<std::pair<Shape, DType>>& parts, int slots);

LK_CUDA_NAMESPACE_END
