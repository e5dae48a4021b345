// SIMT emulator: kernel launches. Validation as the driver does it, the
// block workers of both execution modes (fibers.cpp has the fibers
// scheduler; threads mode is here), function attributes and the execution
// controls of runtime.h. README.md has the design.
#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "simt/internal.h"

namespace lk::simt {
namespace detail {

std::atomic<int> g_mode_override{-1};
std::atomic<int> g_workers{0};
std::atomic<uint64_t> g_launches{0}, g_blocks{0}, g_threads{0};

std::mutex g_attr_mu;
std::map<void (*)(), int> g_max_dyn_smem;

int max_dynamic_smem_optin(void (*key)()) {
  std::lock_guard lk(g_attr_mu);
  auto it = g_max_dyn_smem.find(key);
  return it != g_max_dyn_smem.end() ? it->second : 0;
}

// ================================================================= threads mode

// A reusable barrier for a fixed party (mutex + condition variable, which
// ThreadSanitizer models exactly).
class PartyBarrier {
 public:
  explicit PartyBarrier(unsigned n) : n_(n) {}
  void arrive_and_wait() {
    std::unique_lock lk(mu_);
    const uint64_t gen = gen_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lk, [&] { return gen_ != gen; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned n_, arrived_ = 0;
  uint64_t gen_ = 0;
};

// Threads mode: one group = one OS thread per CUDA thread of a block plus a
// coordinator; the group runs blocks one after another. Groups share nothing
// but the block counter (relaxed), so blocks of different groups run
// concurrently with no synchronisation between them.
void threads_group(Launch& L) {
  BlockState bs;
  init_block_storage(bs, L);
  PartyBarrier start(L.nthreads + 1), done(L.nthreads + 1);
  bool quit = false;
  std::vector<std::thread> threads;
  threads.reserve(L.nthreads);
  for (unsigned i = 0; i < L.nthreads; ++i)
    threads.emplace_back([&, i] {
      for (;;) {
        start.arrive_and_wait();
        if (quit) return;
        t_cur = &bs.threads[i];
        run_thread(L, bs.threads[i]);
        t_cur = nullptr;
        done.arrive_and_wait();
      }
    });
  for (;;) {
    if (L.failed.load(std::memory_order_relaxed)) break;
    const uint64_t b = L.next_block.fetch_add(1, std::memory_order_relaxed);
    if (b >= L.nblocks) break;
    setup_block(bs, b);
    start.arrive_and_wait();
    done.arrive_and_wait();
    finish_block(bs);
  }
  quit = true;
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
}

void run_threads(Launch& L, unsigned ngroups) {
  std::vector<std::thread> groups;
  for (unsigned i = 1; i < ngroups; ++i) groups.emplace_back([&L] { threads_group(L); });
  threads_group(L);
  for (auto& g : groups) g.join();
}

}  // namespace detail

using namespace detail;

// ================================================================= launch

void launch_kernel(const char* name, void (*key)(), dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
                   KernelInvoker body) {
  if (t_cur != nullptr) {
    config_error(cudaErrorNotSupported,
                 strf("launch of '%s' from inside a kernel: dynamic parallelism is not emulated", name));
    return;
  }
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  if (nthreads == 0 || nthreads > kMaxThreadsPerBlock || block.x > kMaxBlockDimX || block.y > kMaxBlockDimY ||
      block.z > kMaxBlockDimZ) {
    config_error(
        cudaErrorInvalidConfiguration,
        strf("launch of '%s': invalid block (%u,%u,%u): each dimension >= 1, at most (%u,%u,%u) and %u "
             "threads in all",
             name, block.x, block.y, block.z, kMaxBlockDimX, kMaxBlockDimY, kMaxBlockDimZ, kMaxThreadsPerBlock));
    return;
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > kMaxGridDimX || grid.y > kMaxGridDimY ||
      grid.z > kMaxGridDimZ) {
    config_error(cudaErrorInvalidConfiguration,
                 strf("launch of '%s': invalid grid (%u,%u,%u): each dimension >= 1, y and z at most 65535", name,
                      grid.x, grid.y, grid.z));
    return;
  }
  if (!valid_stream(stream)) {
    config_error(cudaErrorInvalidResourceHandle, strf("launch of '%s' on a stream that does not exist", name));
    return;
  }
  const int optin = max_dynamic_smem_optin(key);
  const size_t dyn_limit = std::max<size_t>(kDefaultSharedPerBlock, static_cast<size_t>(optin));
  if (shmem > dyn_limit) {
    config_error(cudaErrorInvalidValue,
                 strf("launch of '%s' with %zu bytes of dynamic shared memory: above %zu bytes it needs "
                      "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) first",
                      name, shmem, dyn_limit));
    return;
  }

  Launch L;
  L.name = name;
  L.key = key;
  L.grid = grid;
  L.block = block;
  L.shmem = shmem;
  L.smem_cap = optin > 0 ? kMaxSharedPerBlockOptin : kDefaultSharedPerBlock;
  L.body = body;
  L.mode = mode();
  L.nthreads = static_cast<unsigned>(nthreads);
  L.nwarps = (L.nthreads + kWarpSize - 1) / kWarpSize;
  L.nblocks = uint64_t(grid.x) * grid.y * grid.z;
  g_launches.fetch_add(1, std::memory_order_relaxed);
  g_blocks.fetch_add(L.nblocks, std::memory_order_relaxed);
  g_threads.fetch_add(L.nblocks * nthreads, std::memory_order_relaxed);

  long workers = g_workers.load();
  if (workers <= 0) workers = env_long("LKASEG_SIMT_WORKERS", 0);
  if (L.mode == Mode::Fibers) {
    if (workers <= 0) workers = std::clamp(static_cast<long>(std::thread::hardware_concurrency()), 1L, 8L);
    workers = std::clamp<long>(workers, 1, 64);
  } else {
    if (workers <= 0) workers = 2;
    // Keep the OS thread count sane: at most 4096 emulated threads at once.
    workers = std::clamp<long>(workers, 1, std::max<long>(1, 4096 / static_cast<long>(nthreads)));
  }
  workers = static_cast<long>(std::min<uint64_t>(static_cast<uint64_t>(workers), L.nblocks));

  if (L.mode == Mode::Fibers)
    run_fibers(L, static_cast<unsigned>(workers));
  else
    run_threads(L, static_cast<unsigned>(workers));

  const std::string problems = check_all_allocations(strf("after kernel '%s'", name));
  if (!problems.empty()) {
    if (L.err == cudaSuccess)
      L.fail(cudaErrorIllegalAddress, problems);
    else
      report(problems);
  }
  if (L.suppressed > 0) report(strf("kernel '%s': %d further errors suppressed", name, L.suppressed), false);
  if (L.err != cudaSuccess) {
    set_error(L.err);
    g_pending.store(L.err);
  }
}

cudaError func_set_attribute(void (*key)(), cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<size_t>(value) > kMaxSharedPerBlockOptin)
    return config_error(cudaErrorInvalidValue,
                        strf("cudaFuncSetAttribute: attribute %d value %d (max dynamic shared memory is %zu)",
                             static_cast<int>(attr), value, kMaxSharedPerBlockOptin));
  std::lock_guard lk(g_attr_mu);
  g_max_dyn_smem[key] = value;
  return cudaSuccess;
}

// ================================================================= controls

Mode mode() {
  const int o = g_mode_override.load();
  if (o >= 0) return static_cast<Mode>(o);
  const std::string env = env_string("LKASEG_SIMT_MODE");
  if (env == "threads") return Mode::Threads;
  if (env == "fibers") return Mode::Fibers;
#if defined(LKASEG_SIMT_DEFAULT_THREADS)
  return Mode::Threads;
#else
  return Mode::Fibers;
#endif
}

void set_mode(std::optional<Mode> m) { g_mode_override.store(m ? static_cast<int>(*m) : -1); }

ScopedMode::ScopedMode(Mode m) {
  const int o = g_mode_override.load();
  if (o >= 0) saved_ = static_cast<Mode>(o);
  set_mode(m);
}
ScopedMode::~ScopedMode() { set_mode(saved_); }

const char* mode_name(Mode m) { return m == Mode::Threads ? "threads" : "fibers"; }

void set_workers(int n) { g_workers.store(n); }

LaunchStats stats() { return LaunchStats{g_launches.load(), g_blocks.load(), g_threads.load()}; }

}  // namespace lk::simt
