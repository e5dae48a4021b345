// SIMT emulator: kernel launches. Validation as the driver does it (block,
// grid, __launch_bounds__, shared memory, the stream's device), then the
// launch is queued on its stream; when it runs, the block workers of either
// execution mode (fibers.cpp has the fibers scheduler; threads mode is here)
// take the blocks in the launch's block order. Function attributes, the
// thread order and the execution controls of runtime.h. README.md has the design.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>
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
std::map<void (*)(), int> g_max_dyn_smem;     // cudaFuncAttributeMaxDynamicSharedMemorySize
std::map<void (*)(), size_t> g_static_smem;  // static shared memory seen when the kernel ran

void note_static_smem(void (*key)(), size_t bytes) {
  if (bytes == 0) return;
  std::lock_guard lk(g_attr_mu);
  size_t& known = g_static_smem[key];
  known = std::max(known, bytes);
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
    setup_block(bs, block_at(L, b));
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

// ================================================================= launch

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t gcd(uint64_t a, uint64_t b) {
  while (b) a = std::exchange(b, a % b);
  return a;
}

// Runs a queued launch on its stream's worker: every block, then the
// guards of device memory; errors wait for the next synchronising call.
void execute(Launch& L) {
  // Afresh on every run: a graph replays the same launch (graph.cpp).
  L.next_block.store(0);
  L.failed.store(false);
  L.err = cudaSuccess;
  L.suppressed = 0;
  long workers = g_workers.load();
  if (workers <= 0) workers = env_long("LKASEG_SIMT_WORKERS", 0);
  if (L.mode == Mode::Fibers) {
    if (workers <= 0) workers = std::clamp(static_cast<long>(std::thread::hardware_concurrency()), 1L, 8L);
    workers = std::clamp<long>(workers, 1, 64);
  } else {
    if (workers <= 0) workers = 2;
    // Keep the OS thread count sane: at most 4096 emulated threads at once.
    workers = std::clamp<long>(workers, 1, std::max<long>(1, 4096 / static_cast<long>(L.nthreads)));
  }
  workers = static_cast<long>(std::min<uint64_t>(static_cast<uint64_t>(workers), L.nblocks));

  if (L.mode == Mode::Fibers)
    run_fibers(L, static_cast<unsigned>(workers));
  else
    run_threads(L, static_cast<unsigned>(workers));

  const std::string problems = check_all_allocations(strf("after kernel '%s'", L.name));
  if (!problems.empty()) {
    if (L.err == cudaSuccess)
      L.fail(cudaErrorIllegalAddress, problems);
    else
      report(problems);
  }
  if (L.suppressed > 0) report(strf("kernel '%s': %d further errors suppressed", L.name, L.suppressed), false);
  if (L.err != cudaSuccess) {
    int none = cudaSuccess;
    g_pending.compare_exchange_strong(none, L.err);
  }
}

}  // namespace

uint64_t block_at(const Launch& L, uint64_t b) {
  switch (L.order.order) {
    case Order::Forward: break;
    case Order::Reverse: return L.nblocks - 1 - b;
    case Order::Shuffle: {
      __extension__ using u128 = unsigned __int128;  // a * b overflows 64 bits for big grids
      return static_cast<uint64_t>((static_cast<u128>(L.perm_a) * b + L.perm_c) % L.nblocks);
    }
  }
  return b;
}

void thread_permutation(const Launch& L, uint64_t block, uint64_t round, std::vector<unsigned>& perm) {
  const unsigned n = static_cast<unsigned>(perm.size());
  for (unsigned i = 0; i < n; ++i) perm[i] = L.order.order == Order::Reverse ? n - 1 - i : i;
  if (L.order.order != Order::Shuffle) return;
  uint64_t state = splitmix64(L.order.seed ^ splitmix64(L.number ^ splitmix64(block ^ splitmix64(round))));
  for (unsigned i = n; i > 1; --i) {
    state = splitmix64(state);
    std::swap(perm[i - 1], perm[static_cast<unsigned>(state % i)]);
  }
}

}  // namespace detail

using namespace detail;

unsigned launch_bound(void (*key)()) {
  // The NOPs __launch_bounds__ put at the kernel's entry (simt.h), one per warp.
  unsigned warps = 0;
#if defined(__x86_64__)
  const auto* code = reinterpret_cast<const unsigned char*>(key);
  if (code[0] == 0xf3 && code[1] == 0x0f && code[2] == 0x1e && code[3] == 0xfa) code += 4;  // endbr64
  while (warps < kMaxThreadsPerBlock / kWarpSize && code[warps] == 0x90) ++warps;
#elif defined(__aarch64__)
  const auto* code = reinterpret_cast<const uint32_t*>(reinterpret_cast<uintptr_t>(key));
  if ((code[0] & 0xffffff3fu) == 0xd503241fu) ++code;  // bti landing pad
  while (warps < kMaxThreadsPerBlock / kWarpSize && code[warps] == 0xd503201fu) ++warps;
#else
  (void)key;
#endif
  return warps ? warps * kWarpSize : kMaxThreadsPerBlock;
}

void launch_kernel(const char* name, void (*key)(), dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
                   KernelInvoker body) {
  if (t_cur != nullptr) {
    config_error(cudaErrorNotSupported,
                 strf("launch of '%s' from inside a kernel: dynamic parallelism is not emulated", name));
    return;
  }
  touch_context();
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
  // The kernel's register budget was sized for its __launch_bounds__: the
  // driver refuses a bigger block ("too many resources requested for launch").
  if (const unsigned bound = launch_bound(key); nthreads > bound) {
    config_error(cudaErrorLaunchOutOfResources,
                 strf("launch of '%s' with %llu threads per block: its __launch_bounds__ allow at most %u", name,
                      static_cast<unsigned long long>(nthreads), bound));
    return;
  }
  int device = 0;
  if (stream_device(stream, &device) != cudaSuccess) {
    config_error(cudaErrorInvalidResourceHandle, strf("launch of '%s' on a stream that does not exist", name));
    return;
  }
  if (device != current_device()) {
    config_error(cudaErrorInvalidResourceHandle,
                 strf("launch of '%s' on a stream of device %d while device %d is current (cudaSetDevice)", name,
                      device, current_device()));
    return;
  }
  int optin = 0;
  size_t known_static = 0;
  {
    std::lock_guard lk(g_attr_mu);
    if (auto it = g_max_dyn_smem.find(key); it != g_max_dyn_smem.end()) optin = it->second;
    if (auto it = g_static_smem.find(key); it != g_static_smem.end()) known_static = it->second;
  }
  const size_t dyn_limit = std::max<size_t>(kDefaultSharedPerBlock, static_cast<size_t>(optin));
  if (shmem > dyn_limit) {
    config_error(cudaErrorInvalidValue,
                 strf("launch of '%s' with %zu bytes of dynamic shared memory: above %zu bytes it needs "
                      "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) first",
                      name, shmem, dyn_limit));
    return;
  }
  const size_t smem_cap = optin > 0 ? kMaxSharedPerBlockOptin : kDefaultSharedPerBlock;
  if (known_static + shmem > smem_cap) {  // the static size is known once the kernel has run
    config_error(cudaErrorInvalidValue,
                 strf("launch of '%s': %zu bytes of static plus %zu of dynamic shared memory exceed the %zu bytes "
                      "of a block%s",
                      name, known_static, shmem, smem_cap,
                      optin > 0 ? "" : " (more needs cudaFuncAttributeMaxDynamicSharedMemorySize)"));
    return;
  }

  auto L = std::make_shared<Launch>();
  L->name = name;
  L->key = key;
  L->grid = grid;
  L->block = block;
  L->shmem = shmem;
  L->smem_cap = smem_cap;
  L->body = std::move(body);
  L->mode = mode();
  L->order = thread_order();
  L->nthreads = static_cast<unsigned>(nthreads);
  L->nwarps = (L->nthreads + kWarpSize - 1) / kWarpSize;
  L->nblocks = uint64_t(grid.x) * grid.y * grid.z;
  L->number = g_launches.fetch_add(1, std::memory_order_relaxed);
  if (L->order.order == Order::Shuffle && L->nblocks > 1) {  // an affine bijection of the block indices
    const uint64_t h = splitmix64(L->order.seed ^ splitmix64(L->number));
    L->perm_a = 1 + h % (L->nblocks - 1);
    while (gcd(L->perm_a, L->nblocks) != 1) L->perm_a = L->perm_a % (L->nblocks - 1) + 1;
    L->perm_c = splitmix64(h) % L->nblocks;
  }
  g_blocks.fetch_add(L->nblocks, std::memory_order_relaxed);
  g_threads.fetch_add(L->nblocks * nthreads, std::memory_order_relaxed);
  if (enqueue(stream, [L] { execute(*L); }) != cudaSuccess)
    config_error(cudaErrorInvalidResourceHandle, strf("launch of '%s' on a stream that does not exist", name));
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

namespace {
std::mutex g_order_mu;
std::optional<ThreadOrder> g_order_override;
}  // namespace

std::optional<ThreadOrder> parse_thread_order(const std::string& s) {
  if (s == "forward") return ThreadOrder{Order::Forward, 0};
  if (s == "reverse") return ThreadOrder{Order::Reverse, 0};
  if (s == "shuffle") return ThreadOrder{Order::Shuffle, 1};
  if (s.rfind("shuffle:", 0) == 0 && s.size() > 8) {
    char* end = nullptr;
    const unsigned long long seed = std::strtoull(s.c_str() + 8, &end, 10);
    if (end && *end == '\0') return ThreadOrder{Order::Shuffle, seed};
  }
  return std::nullopt;
}

ThreadOrder thread_order() {
  {
    std::lock_guard lk(g_order_mu);
    if (g_order_override) return *g_order_override;
  }
  static const ThreadOrder env = [] {
    const std::string v = env_string("LKASEG_SIMT_ORDER");
    if (v.empty()) return ThreadOrder{};
    const std::optional<ThreadOrder> o = parse_thread_order(v);
    if (!o) {  // a typo must not quietly run the default order in a CI job meant for another
      std::fprintf(stderr, "lkaseg simt: LKASEG_SIMT_ORDER='%s': expected forward, reverse, shuffle or shuffle:SEED\n",
                   v.c_str());
      std::abort();
    }
    return *o;
  }();
  return env;
}

void set_thread_order(std::optional<ThreadOrder> o) {
  std::lock_guard lk(g_order_mu);
  g_order_override = o;
}

std::string thread_order_name(ThreadOrder o) {
  switch (o.order) {
    case Order::Forward: return "forward";
    case Order::Reverse: return "reverse";
    case Order::Shuffle: return "shuffle:" + std::to_string(o.seed);
  }
  return "?";
}

ScopedOrder::ScopedOrder(ThreadOrder o) {
  {
    std::lock_guard lk(g_order_mu);
    saved_ = g_order_override;
  }
  set_thread_order(o);
}
ScopedOrder::~ScopedOrder() { set_thread_order(saved_); }

LaunchStats stats() { return LaunchStats{g_launches.load(), g_blocks.load(), g_threads.load()}; }

}  // namespace lk::simt
