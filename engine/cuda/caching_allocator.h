// Device and pinned-host memory for the CUDA backend.
//
// CachingAllocator keeps freed blocks in a size-sorted free list and hands
// them out again, so a training step allocates nothing from the driver after
// warm-up (cudaMalloc synchronises the device and cannot run inside a CUDA
// Graph capture). Sizes round up to 512 B; a cached block serves requests of
// its own rounded size only, so a repeating step allocates from the driver in
// its first iteration and never after (bench/step_profile: a larger block
// taken for a smaller request would leave a later request without one). When
// cudaMalloc fails, the cache is returned to the driver and the allocation
// retried once; if it still fails the error says how many bytes were
// requested, free and total on the device, and held by this allocator.
//
// Streams (as PyTorch's caching allocator): device blocks belong to the
// allocator's stream (set_stream: the backend's compute stream). A block
// freed there is handed out again at once, which is safe because whatever
// the next owner queues on that stream runs after the previous owner's work.
// A block that work on another stream also touches must be announced with
// record_stream(p, s); freeing it then records an event on s and the block
// waits in a pending list until the event has completed, so the other
// stream's queued work never sees it reused. The other direction is the
// user's: before queuing work on another stream for a block just allocated,
// make that stream wait for an event recorded on the allocator's stream
// after the allocation (the previous owner's work may still be queued; the
// upload ring does this when it makes its slots).
//
// Graph pools (CUDA Graphs, engine/step_graph.h): between begin_pool() and
// end_pool(), the thread that called begin_pool (the one capturing) takes
// its blocks for a pool owned by the graph being captured: first the pool's
// own free blocks, then cached ones (a warm-up step left the exact sizes
// there), and only if none fits a new one from the driver, asked with that
// thread's capture mode relaxed (counted as capture_driver_allocs: a step
// that was warmed up eagerly makes none). Every block that thread frees
// meanwhile joins the pool too, wherever it came from (a captured kernel
// may still use it). A pool's blocks, in use or free, are never handed to
// other work while the pool lives: replays write them. release_pool (the
// graph is gone) returns its free blocks to the cache and lets the blocks
// still in use return there when freed. release_cached leaves pools alone.
//
// With pinned_host the blocks are page-locked host buffers (cudaMallocHost),
// cached the same way, for the data loader's host-to-device copies; the host
// uses such a block at once, so one that a copy stream reads must be
// recorded on that stream.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

struct CacheStats {
  size_t in_use = 0;           // bytes handed out (rounded)
  size_t cached = 0;           // bytes held in the free list
  size_t pending = 0;          // bytes freed while another stream's work may still touch them
  size_t peak_in_use = 0;
  uint64_t driver_allocs = 0;  // cudaMalloc / cudaMallocHost calls
  uint64_t driver_frees = 0;
  uint64_t cache_hits = 0;
  uint64_t cross_stream_frees = 0;  // frees that had to wait for other streams
  uint64_t capture_driver_allocs = 0;  // driver allocations for a graph pool while capturing
};

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device, bool pinned_host = false);
  ~CachingAllocator() override;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  Device device() const override;

  // The stream device blocks are used on (null: the legacy default stream);
  // new blocks are poisoned there when poisoning is on. Set it before use.
  void set_stream(cudaStream_t stream) { stream_ = stream; }
  // Block p (from allocate) is also used by work queued on `stream`: freeing
  // it records an event there, and the block is reused only once that event
  // has completed. Call with the stream's device current.
  void record_stream(void* p, cudaStream_t stream);

  // Graph pools (see above). begin_pool returns the pool's id (> 0).
  int begin_pool();
  void end_pool();
  void release_pool(int pool);
  size_t pool_bytes(int pool) const;  // held by the pool, in use or free

  CacheStats stats() const;
  void release_cached();  // returns every cached (and, after waiting, pending) block to the driver
  static size_t round_size(size_t bytes);

 private:
  struct Use {
    cudaStream_t stream;
    cudaEvent_t event;  // made by record_stream, recorded at the free
  };
  struct Block {
    size_t size = 0;
    std::vector<Use> uses;  // other streams that touch it
    int pool = 0;           // the graph pool holding it; 0: none
  };
  struct Pending {
    void* p;
    std::vector<Use> uses;
  };
  void* take(size_t bytes);
  // Puts a free block in its pool's free list, or the cache's; mu_ held.
  void put_free_locked(void* p, const Block& b);
  // The pool the calling thread is filling now (0: none); mu_ held.
  int capturing_pool_locked() const;
  void* driver_alloc(size_t bytes);
  void driver_free(void* p);
  // Moves pending blocks whose events have completed to the free list
  // (waiting for them first with wait); mu_ held.
  void collect_locked(bool wait);

  const int device_;
  const bool pinned_;
  cudaStream_t stream_ = nullptr;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;        // size -> block
  std::map<int, std::multimap<size_t, void*>> pool_free_;  // live pools: their free blocks
  int next_pool_ = 1, filling_ = 0;            // filling_: the pool begin_pool opened
  std::thread::id filler_;                     // the thread that opened it
  std::unordered_map<void*, Block> blocks_;  // every live, pending or cached block
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> spare_events_;
  CacheStats stats_;
};

LK_CUDA_NAMESPACE_END
