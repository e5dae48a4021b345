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
    std::vector<int> pools;
    for (const auto& [id, pf] : pool_free_) pools.push_back(id);
    for (const int id : pools) release_pool(id);
    release_cached();
    std::lock_guard lock(mu_);
    for (cudaEvent_t e : spare_events_) LK_CUDA_CHECK(cudaEventDestroy(e));
    for (auto& [p, b] : blocks_)
      for (const Use& u : b.uses) LK_CUDA_CHECK(cudaEventDestroy(u.event));
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
  // Tests poison every new buffer (engine/tensor.h), cached blocks included:
  // in stream order, so the poison lands before the new owner's work and
  // after the previous owner's.
  if (poison_allocations()) {
    if (pinned_) std::memset(p, 0xFF, bytes);
    else LK_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, bytes, stream_));
  }
  return p;
}

void CachingAllocator::collect_locked(bool wait) {
  for (size_t i = 0; i < pending_.size();) {
    Pending& q = pending_[i];
    bool done = true;
    for (const Use& u : q.uses) {
      if (wait) {
        LK_CUDA_CHECK(cudaEventSynchronize(u.event));
        continue;
      }
      const cudaError_t e = cudaEventQuery(u.event);
      if (e == cudaErrorNotReady) {
        done = false;
        break;
      }
      LK_CUDA_CHECK(e);
    }
    if (!done) {
      ++i;
      continue;
    }
    for (const Use& u : q.uses) spare_events_.push_back(u.event);
    const Block& b = blocks_.at(q.p);
    stats_.pending -= b.size;
    put_free_locked(q.p, b);
    pending_[i] = std::move(pending_.back());
    pending_.pop_back();
  }
}

void CachingAllocator::put_free_locked(void* p, const Block& b) {
  if (b.pool) {
    auto it = pool_free_.find(b.pool);
    if (it != pool_free_.end()) {
      it->second.emplace(b.size, p);
      return;
    }
  }
  free_.emplace(b.size, p);
  stats_.cached += b.size;
}

int CachingAllocator::capturing_pool_locked() const {
  return filling_ && filler_ == std::this_thread::get_id() ? filling_ : 0;
}

int CachingAllocator::begin_pool() {
  std::lock_guard lock(mu_);
  if (pinned_) throw std::logic_error("CachingAllocator::begin_pool: graph pools hold device memory only");
  if (filling_) throw std::logic_error("CachingAllocator::begin_pool: pool " + std::to_string(filling_) + " is still open");
  filling_ = next_pool_++;
  filler_ = std::this_thread::get_id();
  pool_free_[filling_];
  return filling_;
}

void CachingAllocator::end_pool() {
  std::lock_guard lock(mu_);
  filling_ = 0;
}

void CachingAllocator::release_pool(int pool) {
  std::lock_guard lock(mu_);
  if (filling_ == pool) filling_ = 0;
  auto it = pool_free_.find(pool);
  if (it == pool_free_.end()) return;
  const std::multimap<size_t, void*> blocks = std::move(it->second);
  pool_free_.erase(it);
  for (auto& [p, b] : blocks_)
    if (b.pool == pool) b.pool = 0;
  for (const auto& [size, p] : blocks) {
    free_.emplace(size, p);
    stats_.cached += size;
  }
}

size_t CachingAllocator::pool_bytes(int pool) const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [p, b] : blocks_)
    if (b.pool == pool) n += b.size;
  return n;
}

void* CachingAllocator::take(size_t bytes) {
  const size_t size = round_size(bytes);
  std::unique_lock lock(mu_);
  if (!pending_.empty()) collect_locked(false);
  const int pool = capturing_pool_locked();
  if (pool) {
    std::multimap<size_t, void*>& pf = pool_free_.at(pool);
    auto it = pf.find(size);
    if (it != pf.end()) {
      void* p = it->second;
      pf.erase(it);
      stats_.in_use += size;
      stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
      ++stats_.cache_hits;
      return p;
    }
  }
  // Only a block of the same rounded size: a step's requests then find, from
  // the second step on, exactly the blocks the first one made (a larger block
  // taken for a smaller request would leave a later request without one).
  auto it = free_.find(size);
  if (it != free_.end()) {
    void* p = it->second;
    const size_t got = it->first;
    free_.erase(it);
    blocks_.at(p).pool = pool;
    stats_.cached -= got;
    stats_.in_use += got;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
    ++stats_.cache_hits;
    return p;
  }
  if (pool) {
    // Capturing: the driver only with this thread's capture mode relaxed,
    // and no retry (freeing the cache would wait for the device).
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    LK_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    void* p = driver_alloc(size);
    LK_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    if (!p)
      throw std::runtime_error("CUDA out of memory on " + device().str() + " while capturing a graph: requested " +
                               mib(bytes) + "; this allocator holds " + mib(stats_.in_use) + " in use");
    blocks_[p] = Block{size, {}, pool};
    ++stats_.driver_allocs;
    ++stats_.capture_driver_allocs;
    stats_.in_use += size;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
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
  blocks_[p] = Block{size, {}};
  ++stats_.driver_allocs;
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  return p;
}

void CachingAllocator::record_stream(void* p, cudaStream_t stream) {
  std::lock_guard lock(mu_);
  auto it = blocks_.find(p);
  if (it == blocks_.end()) throw std::logic_error("CachingAllocator::record_stream: not a block it handed out");
  if (!pinned_ && stream == stream_) return;  // its own stream: ordered anyway
  for (const Use& u : it->second.uses)
    if (u.stream == stream) return;
  cudaEvent_t e = nullptr;
  if (!spare_events_.empty()) {
    e = spare_events_.back();
    spare_events_.pop_back();
  } else {
    LK_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  it->second.uses.push_back({stream, e});
}

void CachingAllocator::deallocate(void* p, size_t) {
  if (!p) return;
  std::lock_guard lock(mu_);
  auto it = blocks_.find(p);
  if (it == blocks_.end()) throw std::logic_error("CachingAllocator: freeing a block it does not own");
  Block& b = it->second;
  stats_.in_use -= b.size;
  if (const int pool = capturing_pool_locked()) b.pool = pool;  // a captured kernel may use it
  if (b.uses.empty()) {
    put_free_locked(p, b);
    return;
  }
  // Reuse waits until the other streams' work queued so far has run.
  for (const Use& u : b.uses) LK_CUDA_CHECK(cudaEventRecord(u.event, u.stream));
  pending_.push_back({p, std::move(b.uses)});
  b.uses.clear();
  stats_.pending += b.size;
  ++stats_.cross_stream_frees;
}

void CachingAllocator::release_cached() {
  std::lock_guard lock(mu_);
  collect_locked(true);
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
