#include "engine/cuda/caching_allocator.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "engine/cuda/cuda_check.h"

LK_CUDA_NAMESPACE_BEGIN

namespace {
constexpr size_t kRound = 512;

std::string mib(size_t b) {
  char s[64];
  std::snprintf(s, sizeof s, "%zu bytes (%.1f MiB)", b, static_cast<double>(b) / (1 << 20));
  return s;
}
}  // namespace

CachingAllocator::CachingAllocator(int device, bool pinned_host) : device_(device), pinned_(pinned_host) {}

CachingAllocator::~CachingAllocator() {
  // Tensors outliving their allocator are a bug elsewhere; free what we hold
  // in the cache and leave live blocks alone (the process is ending).
  try {
    release_cached();
  } catch (...) {
  }
}

Device CachingAllocator::device() const {
  return pinned_ ? cpu_device() : Device{DeviceType::CUDA, device_};
}

size_t CachingAllocator::round_size(size_t bytes) { return (bytes + kRound - 1) / kRound * kRound + (bytes == 0 ? kRound : 0); }

void* CachingAllocator::driver_alloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = pinned_ ? cudaMallocHost(&p, bytes) : cudaMalloc(&p, bytes);
  if (e == cudaSuccess) return p;
  (void)cudaGetLastError();
  return nullptr;
}

void CachingAllocator::driver_free(void* p) {
  if (pinned_) LK_CUDA_CHECK(cudaFreeHost(p));
  else LK_CUDA_CHECK(cudaFree(p));
}

void* CachingAllocator::allocate(size_t bytes) {
  void* p = take(bytes);
  // Tests poison every new buffer (engine/tensor.h), cached blocks included.
  if (poison_allocations()) {
    if (pinned_) std::memset(p, 0xFF, bytes);
    else LK_CUDA_CHECK(cudaMemset(p, 0xFF, bytes));
  }
  return p;
}

void* CachingAllocator::take(size_t bytes) {
  const size_t size = round_size(bytes);
  std::unique_lock lock(mu_);
  // Only a block of the same rounded size: a step's requests then find, from
  // the second step on, exactly the blocks the first one made (a larger block
  // taken for a smaller request would leave a later request without one).
  auto it = free_.find(size);
  if (it != free_.end()) {
    void* p = it->second;
    const size_t got = it->first;
    free_.erase(it);
    stats_.cached -= got;
    stats_.in_use += got;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
    ++stats_.cache_hits;
    return p;
  }
  void* p = driver_alloc(size);
  if (!p) {
    lock.unlock();
    release_cached();
    lock.lock();
    p = driver_alloc(size);
  }
  if (!p) {
    size_t free_b = 0, total_b = 0;
    if (!pinned_ && cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
    throw std::runtime_error(std::string(pinned_ ? "pinned host" : "CUDA") + " out of memory on " + device().str() +
                             ": requested " + mib(bytes) + "; device free " + mib(free_b) + " of total " +
                             mib(total_b) + "; this allocator holds " + mib(stats_.in_use) + " in use");
  }
  blocks_[p] = size;
  ++stats_.driver_allocs;
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  return p;
}

void CachingAllocator::deallocate(void* p, size_t) {
  if (!p) return;
  std::lock_guard lock(mu_);
  auto it = blocks_.find(p);
  if (it == blocks_.end()) throw std::logic_error("CachingAllocator: freeing a block it does not own");
  free_.emplace(it->second, p);
  stats_.in_use -= it->second;
  stats_.cached += it->second;
}

void CachingAllocator::release_cached() {
  std::lock_guard lock(mu_);
  for (auto& [size, p] : free_) {
    blocks_.erase(p);
    driver_free(p);
    ++stats_.driver_frees;
  }
  free_.clear();
  stats_.cached = 0;
}

CacheStats CachingAllocator::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

LK_CUDA_NAMESPACE_END
