// Device and pinned-host memory for the CUDA backend.
//
// CachingAllocator keeps freed device blocks in size-sorted free lists and
// hands them out again, so a training step allocates nothing from the driver
// after warm-up (cudaMalloc synchronises the device and cannot run inside a
// CUDA Graph capture). Sizes round up to 512 B; a cached block serves
// requests of its own rounded size only, so a repeating step allocates from
// the driver in its first iteration and never after (bench/step_profile).
// Blocks are reused in stream order: the
// backend issues all work on one stream, so a block freed by one op and
// handed to the next is only touched after the first op's kernels (when
// several streams come, frees will record an event and reuse will wait).
// When cudaMalloc fails, the cache is returned to the driver and the
// allocation retried once; if it still fails the error says how many bytes
// were requested, free and total on the device, and held by this allocator.
//
// PinnedHostAllocator: page-locked host buffers (cudaMallocHost), cached the
// same way, for the data loader's host-to-device copies.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "engine/tensor.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

struct CacheStats {
  size_t in_use = 0;          // bytes handed out (rounded)
  size_t cached = 0;          // bytes held in the free lists
  size_t peak_in_use = 0;
  uint64_t driver_allocs = 0;  // cudaMalloc / cudaMallocHost calls
  uint64_t driver_frees = 0;
  uint64_t cache_hits = 0;
};

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device, bool pinned_host = false);
  ~CachingAllocator() override;
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  Device device() const override;

  CacheStats stats() const;
  void release_cached();  // returns every cached block to the driver
  static size_t round_size(size_t bytes);

 private:
  void* take(size_t bytes);
  void* driver_alloc(size_t bytes);
  void driver_free(void* p);

  const int device_;
  const bool pinned_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;         // size -> block
  std::unordered_map<void*, size_t> blocks_;  // every live or cached block -> size
  CacheStats stats_;
};

LK_CUDA_NAMESPACE_END
