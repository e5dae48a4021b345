// What the emulator's source files share (not for kernels or host code):
// diagnostics, the device-memory registry, the state of a launch and of the
// block a worker runs, and the waiting primitive of barriers and warps.
//
//   runtime.cpp  diagnostics, errors, copies and memsets
//   streams.cpp  devices, streams and events: per-stream workers and their order
//   memory.cpp   device memory: guards, registry, cudaMalloc/cudaFree, pinned host memory
//   launch.cpp   launch validation and execution, block and thread order,
//                threads mode, execution controls
//   block.cpp    a block: setup, shared memory, barriers, warp intrinsics, deadlock
//                reports, the kernel-side entry points of simt.h
//   fibers.cpp   fibers (stacks, context switch) and the fibers scheduler
//   graph.cpp    stream capture and graph replay
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "simt/simt.h"

namespace lk::simt::detail {

// ================================================================= diagnostics (runtime.cpp)

std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Prints a diagnostic; `primary` ones become last_message().
void report(const std::string& msg, bool primary = true);

// Last error per host thread (as the CUDA runtime keeps it), plus the error
// of a failed asynchronous execution, which the next synchronising call
// reports. Either report consumes both: an execution error is reported once.
extern thread_local cudaError t_last_error;
extern std::atomic<int> g_pending;
cudaError set_error(cudaError e);
cudaError take_pending();
// Reports msg and sets the last error.
cudaError config_error(cudaError e, const std::string& msg);
// An error of asynchronous work (a kernel, a queued copy): reported now,
// returned by the next synchronising call.
void async_error(cudaError e, const std::string& msg);
// Synchronising calls, after their wait: checks every allocation's guards,
// then reports a pending execution error once.
cudaError synchronize(const char* what);

std::string env_string(const char* name);
long env_long(const char* name, long fallback);

// ================================================================= device memory (memory.cpp)

inline constexpr size_t kAllocAlign = 256;

// First and last offsets in [p, p+n) whose byte is not the guard byte.
bool find_corruption(const unsigned char* p, size_t n, size_t& first, size_t& last);
// Checks (and re-arms) every live allocation's guards; the problems found,
// one per line ("" if none). `when` says what found them.
std::string check_all_allocations(const std::string& when);
// [p, p+n) lies inside one live cudaMalloc allocation.
bool is_device_range(const void* p, size_t n);
// [p, p+n) lies inside one live cudaMallocHost allocation.
bool is_pinned(const void* p, size_t n);

// ================================================================= devices and streams (streams.cpp)

struct StreamState;
using StreamFn = std::function<void()>;
// An operation queued on a stream: done once the stream's count reaches seq.
struct Ticket {
  std::shared_ptr<StreamState> st;
  uint64_t seq = 0;
};
int device_count();
int current_device();  // of this host thread
// Notes that a runtime call ran with the current device (its primary context).
void touch_context();
// Queues fn on `stream` (null, cudaStreamLegacy or cudaStreamPerThread: the
// current device's legacy default stream); cudaErrorInvalidResourceHandle
// for a stream that does not exist. fn runs on the stream's worker thread.
cudaError enqueue(cudaStream_t stream, StreamFn fn, Ticket* ticket = nullptr);
cudaError stream_device(cudaStream_t stream, int* device);
// Let queued work run and wait for one operation / for every stream.
void wait_ticket(const Ticket& t);
void wait_all_streams();

// ================================================================= stream capture (graph.cpp)

// True if `stream` is capturing; fn is then recorded in its capture (taken).
bool capture_record(cudaStream_t stream, StreamFn& fn);
// True if `stream` is capturing; the record is then a node of its capture.
bool capture_event_record(cudaEvent_t event, cudaStream_t stream);
// A wait on a capturing stream (*captured): ordered already when the event
// was recorded in the same capture, else cudaErrorStreamCaptureIsolation.
cudaError capture_wait_event(cudaStream_t stream, cudaEvent_t event, bool* captured);
bool stream_capturing(cudaStream_t stream);
// `call` cannot be captured: fails (cudaErrorStreamCaptureUnsupported,
// invalidating the capture) if it acts on the capturing `stream`, or, when
// `unsafe` (cudaMalloc, device synchronisation, ...), if a capture concerns
// this thread. cudaSuccess otherwise.
cudaError capture_forbids(const char* call, cudaStream_t stream, bool unsafe);

// ================================================================= launches and blocks (launch.cpp, block.cpp)

struct KernelAbort {};  // unwinds an emulated thread whose block failed

struct Launch {
  const char* name = "";
  void (*key)() = nullptr;
  dim3 grid, block;
  size_t shmem = 0;
  size_t smem_cap = kDefaultSharedPerBlock;  // static + dynamic
  KernelInvoker body{};
  Mode mode = Mode::Fibers;
  ThreadOrder order{};
  uint64_t number = 0;              // launches before this one (seeds the shuffles)
  uint64_t perm_a = 1, perm_c = 0;  // Shuffle: block b runs as (a b + c) mod nblocks
  unsigned nthreads = 0, nwarps = 0;
  uint64_t nblocks = 0;
  std::atomic<uint64_t> next_block{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  cudaError err = cudaSuccess;
  int suppressed = 0;

  void fail(cudaError e, const std::string& msg) {
    {
      std::lock_guard lk(mu);
      if (err != cudaSuccess) {
        ++suppressed;
        failed.store(true, std::memory_order_relaxed);
        return;
      }
      err = e;
    }
    failed.store(true, std::memory_order_relaxed);
    report(msg);
  }
};

struct WarpState {
  std::mutex mu;
  std::condition_variable cv;
  uint32_t exist = 0, exited = 0, waiting = 0, released = 0;
  WarpOp op[32]{};
  uint32_t mask[32]{};
  uint64_t value[32]{};
  int param[32]{};
  int width[32]{};
  uint64_t result[32]{};
};

struct SiteEntry {
  const SharedSite* site;
  size_t off;
};

// The state of the block a worker is running. Reused block after block.
struct BlockState {
  Launch* L = nullptr;
  Mode mode = Mode::Fibers;
  uint3 idx{0, 0, 0};
  unsigned nthreads = 0, nwarps = 0;
  std::vector<ThreadCtx> threads;
  std::unique_ptr<WarpState[]> warps;

  // __syncthreads: a generation barrier that exited threads drop out of.
  std::mutex bar_mu;
  std::condition_variable bar_cv;
  unsigned bar_arrived = 0, bar_live = 0;
  uint64_t bar_gen = 0;
  int bar_acc = 0, bar_result = 0, bar_result_n = 0;
  std::source_location bar_site{};  // where this generation's first thread waits
  unsigned bar_first = 0;           // ... and which thread that is

  std::atomic<bool> aborted{false};
  // Threads registered at a barrier or warp operation and not yet released,
  // and threads that have finished: all of them means deadlock. Relaxed, so
  // ThreadSanitizer sees no synchronisation through them.
  std::atomic<int> blocked{0};
  std::atomic<int> exited{0};

  // Shared memory arena: [guard][static sites, each followed by guard ...
  // guard to the end of the static region][guard][dynamic][guard].
  std::mutex smem_mu;
  unsigned char* arena = nullptr;
  size_t arena_size = 0, static_end = 0, dyn_off = 0;
  size_t static_pos = 0, static_bytes = 0;
  std::vector<SiteEntry> sites;

  ~BlockState() { ::operator delete(arena, std::align_val_t(256)); }
};

std::string where(const ThreadCtx& t, const Launch& L);
std::string site_str(const std::source_location& site);  // "file.cu:12:5"
std::string block_where(const BlockState& bs);
void init_block_storage(BlockState& bs, Launch& L);
void setup_block(BlockState& bs, uint64_t linear);
// After the block: shared-memory guards.
void finish_block(BlockState& bs);
// One emulated thread from start to exit.
void run_thread(Launch& L, ThreadCtx& t);
void fail_block(BlockState& bs, cudaError e, const std::string& msg);
void abort_block(BlockState& bs);
const char* op_name(WarpOp op);

// Runs every block of L on nworkers host threads (fibers.cpp).
void run_fibers(Launch& L, unsigned nworkers);
// The linear index of the b-th block handed out, in L's block order.
uint64_t block_at(const Launch& L, uint64_t b);
// A fresh permutation of the threads of a block for one fibers round (the
// thread order), into perm (size nthreads).
void thread_permutation(const Launch& L, uint64_t block, uint64_t round, std::vector<unsigned>& perm);
// Fibers mode: back to the scheduler until it resumes this fiber; and the
// note that the running fiber got somewhere (fibers.cpp).
void yield_to_scheduler();
void mark_progress();
// Fails the block with a message saying who waits where.
void report_deadlock(BlockState& bs);

// Waits (with lk held on entry and exit) until pred() holds. Fibers yield to
// the scheduler; OS threads wait on cv, with a deadlock check.
template <class Pred>
void wait_until(BlockState& bs, std::unique_lock<std::mutex>& lk, std::condition_variable& cv, Pred pred) {
  if (bs.mode == Mode::Fibers) {
    while (!pred()) {
      if (bs.aborted.load(std::memory_order_relaxed)) throw KernelAbort{};
      lk.unlock();
      yield_to_scheduler();
      lk.lock();
    }
    mark_progress();
    return;
  }
  int suspicious = 0;
  while (!pred()) {
    if (bs.aborted.load(std::memory_order_relaxed)) throw KernelAbort{};
    if (cv.wait_for(lk, std::chrono::milliseconds(20)) == std::cv_status::timeout && !pred()) {
      // Everyone still running is registered somewhere and nobody is being
      // released: a deadlock once it has persisted for a while.
      const int stuck = bs.blocked.load(std::memory_order_relaxed) + bs.exited.load(std::memory_order_relaxed);
      if (stuck >= static_cast<int>(bs.nthreads)) {
        if (++suspicious == 25) {
          lk.unlock();
          report_deadlock(bs);
          lk.lock();
        }
      } else {
        suspicious = 0;
      }
    }
  }
}

// ================================================================= configuration (launch.cpp, streams.cpp)

bool valid_stream(cudaStream_t s);
bool valid_event(cudaEvent_t e);
// The static shared memory a kernel used when it last ran (0: not yet run),
// so that later launches check static + dynamic before they are queued.
void note_static_smem(void (*key)(), size_t bytes);

}  // namespace lk::simt::detail
