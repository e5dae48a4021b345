// SIMT emulator: launches, block scheduling (fibers or OS threads), barriers,
// warp intrinsics, shared memory and the emulated runtime API. README.md has
// the design; the comments here explain the mechanics.
#include "simt/simt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define LK_SIMT_ASAN 1
#else
#define LK_SIMT_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define LK_SIMT_TSAN 1
#else
#define LK_SIMT_TSAN 0
#endif

// Fiber context switch: a hand-written one on x86-64 (no syscall, no
// sanitizer interceptor in the way), ucontext elsewhere or when
// LKASEG_SIMT_UCONTEXT is defined.
#if defined(__x86_64__) && !defined(LKASEG_SIMT_UCONTEXT)
#define LK_SIMT_ASM_SWITCH 1
#else
#define LK_SIMT_ASM_SWITCH 0
#include <ucontext.h>
#endif

#if LK_SIMT_ASM_SWITCH
// void lk_simt_switch(void** save_sp, void* load_sp): pushes the callee-saved
// registers and the SSE/x87 control words, stores the stack pointer to
// *save_sp, switches to load_sp and pops the same frame there.
asm(R"(
  .text
  .p2align 4
  .globl lk_simt_switch
  .hidden lk_simt_switch
  .type lk_simt_switch,@function
lk_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lk_simt_switch, .-lk_simt_switch
)");
extern "C" void lk_simt_switch(void** save_sp, void* load_sp);
#endif

namespace lk::simt {

struct StreamImpl {
  unsigned flags = 0;
};
struct EventImpl {
  unsigned flags = 0;
  bool recorded = false;
  std::chrono::steady_clock::time_point when{};
};

namespace detail {

// ================================================================= diagnostics

std::mutex g_msg_mu;
std::string g_last_msg;
std::atomic<bool> g_quiet{false};

std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// Prints a diagnostic; `primary` ones become last_message().
void report(const std::string& msg, bool primary = true) {
  std::lock_guard lk(g_msg_mu);
  if (primary) g_last_msg = msg;
  if (!g_quiet.load()) std::fprintf(stderr, "lkaseg simt: %s\n", msg.c_str());
}

// Last error per host thread (as the CUDA runtime keeps it), plus the error
// of a failed kernel execution, which the next synchronising call reports.
// Either report consumes both: an execution error is reported once.
thread_local cudaError t_last_error = cudaSuccess;
std::atomic<int> g_pending{cudaSuccess};

cudaError set_error(cudaError e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

cudaError take_pending() {
  const auto e = static_cast<cudaError>(g_pending.exchange(cudaSuccess));
  if (e != cudaSuccess && t_last_error == e) t_last_error = cudaSuccess;
  return e;
}

std::string describe_env_value(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long r = std::strtol(v, &end, 10);
  return (end && *end == '\0') ? r : fallback;
}

// ================================================================= global memory

// Every cudaMalloc block is [front guard][user bytes][back guard], the user
// pointer 256-byte aligned like the real allocator's. New user bytes are
// poisoned with 0xFF; the guards are kGuardByte and checked by cudaFree, the
// synchronising calls and after every launch.
constexpr size_t kFrontGuard = 256;
constexpr size_t kMinBackGuard = 64;
constexpr size_t kAllocAlign = 256;

struct Alloc {
  unsigned char* base;
  size_t bytes;
  size_t total;
};

std::mutex g_mem_mu;
std::map<uintptr_t, Alloc> g_allocs;  // by user pointer
size_t g_alloc_bytes = 0;
// The emulated card's memory: LKASEG_SIMT_DEVICE_BYTES, else 8 GiB (the
// paper's RTX 4060), so out-of-memory paths can be tested.
size_t g_capacity = [] {
  const char* e = std::getenv("LKASEG_SIMT_DEVICE_BYTES");
  return e ? static_cast<size_t>(std::strtoull(e, nullptr, 10)) : size_t(8) << 30;
}();

bool asan_guards() {
#if LK_SIMT_ASAN
  static const bool on = env_long("LKASEG_SIMT_ASAN_GUARDS", 0) != 0;
  return on;
#else
  return false;
#endif
}

void guard_poison(const unsigned char* p, size_t n) {
#if LK_SIMT_ASAN
  if (asan_guards()) ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p, (void)n;
#endif
}
void guard_unpoison(const unsigned char* p, size_t n) {
#if LK_SIMT_ASAN
  if (asan_guards()) ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p, (void)n;
#endif
}

// First and last offsets in [p, p+n) whose byte is not the guard byte.
bool find_corruption(const unsigned char* p, size_t n, size_t& first, size_t& last) {
  // Fast path: whole words of guard bytes.
  constexpr uint64_t kWord = 0x0101010101010101ull * kGuardByte;
  size_t i = 0;
  while (i + 8 <= n) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    if (v != kWord) break;
    i += 8;
  }
  if (i + 8 > n) {
    bool tail_ok = true;
    for (size_t j = i; j < n; ++j) tail_ok = tail_ok && p[j] == kGuardByte;
    if (tail_ok) return false;
  }
  bool found = false;
  for (; i < n; ++i) {
    if (p[i] != kGuardByte) {
      if (!found) first = i;
      last = i;
      found = true;
    }
  }
  return found;
}

void arm_alloc(const Alloc& a) {
  std::memset(a.base, kGuardByte, kFrontGuard);
  std::memset(a.base + kFrontGuard + a.bytes, kGuardByte, a.total - kFrontGuard - a.bytes);
  guard_poison(a.base, kFrontGuard);
  guard_poison(a.base + kFrontGuard + a.bytes, a.total - kFrontGuard - a.bytes);
}

// Checks (and re-arms) one allocation's guards; returns what is wrong ("" if
// nothing). `when` says what found it.
std::string check_alloc_locked(const Alloc& a, const std::string& when) {
  unsigned char* user = a.base + kFrontGuard;
  const size_t back = a.total - kFrontGuard - a.bytes;
  guard_unpoison(a.base, kFrontGuard);
  guard_unpoison(user + a.bytes, back);
  std::string msg;
  size_t first = 0, last = 0;
  if (find_corruption(user + a.bytes, back, first, last))
    msg = strf(
        "out-of-bounds write detected %s: device allocation of %zu bytes at %p was written past its end "
        "(bytes %zu..%zu after the end)",
        when.c_str(), a.bytes, static_cast<void*>(user), first, last);
  if (find_corruption(a.base, kFrontGuard, first, last))
    msg += std::string(msg.empty() ? "" : "; ") +
           strf(
               "out-of-bounds write detected %s: device allocation of %zu bytes at %p was written before its "
               "start (bytes %zu..%zu before the start)",
               when.c_str(), a.bytes, static_cast<void*>(user), kFrontGuard - last, kFrontGuard - first);
  arm_alloc(a);
  return msg;
}

// All live allocations; the problems found, one per line ("" if none).
std::string check_all_locked(const std::string& when) {
  std::string all;
  for (const auto& [user, a] : g_allocs) {
    const std::string m = check_alloc_locked(a, when);
    if (!m.empty()) all += (all.empty() ? "" : "\n") + m;
  }
  return all;
}

// The allocation holding [p, p+n), or nullptr.
const Alloc* find_alloc_locked(const void* p, size_t n) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(u);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  const Alloc& a = it->second;
  if (u < it->first || u - it->first > a.bytes || n > a.bytes - (u - it->first)) return nullptr;
  return &a;
}

bool is_device_range(const void* p, size_t n) {
  std::lock_guard lk(g_mem_mu);
  return find_alloc_locked(p, n) != nullptr;
}

// ================================================================= launches and blocks

struct KernelAbort {};  // unwinds an emulated thread whose block failed

struct Launch {
  const char* name = "";
  void (*key)() = nullptr;
  dim3 grid, block;
  size_t shmem = 0;
  size_t smem_cap = kDefaultSharedPerBlock;  // static + dynamic
  KernelInvoker body{};
  Mode mode = Mode::Fibers;
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

constexpr size_t kSmemGuard = 64;
constexpr size_t kMaxStaticSites = 32;
constexpr size_t kStaticRegion = kDefaultSharedPerBlock + kMaxStaticSites * (kSmemGuard + 256);
constexpr size_t kDynFrontGuard = 256;

void fail_block(BlockState& bs, cudaError e, const std::string& msg);

std::string where(const ThreadCtx& t, const Launch& L) {
  return strf("kernel '%s' block (%u,%u,%u) thread (%u,%u,%u)", L.name, t.block_idx.x, t.block_idx.y, t.block_idx.z,
              t.thread_idx.x, t.thread_idx.y, t.thread_idx.z);
}

std::string block_where(const BlockState& bs) {
  return strf("kernel '%s' block (%u,%u,%u)", bs.L->name, bs.idx.x, bs.idx.y, bs.idx.z);
}

void init_block_storage(BlockState& bs, Launch& L) {
  bs.L = &L;
  bs.mode = L.mode;
  bs.nthreads = L.nthreads;
  bs.nwarps = L.nwarps;
  bs.threads.assign(L.nthreads, ThreadCtx{});
  bs.warps.reset(new WarpState[L.nwarps]);
  bs.static_end = kSmemGuard + kStaticRegion;
  bs.dyn_off = (bs.static_end + kDynFrontGuard + 255) / 256 * 256;
  bs.arena_size = bs.dyn_off + L.shmem + kSmemGuard;
  bs.arena = static_cast<unsigned char*>(::operator new(bs.arena_size, std::align_val_t(256)));
}

void setup_block(BlockState& bs, uint64_t linear) {
  const Launch& L = *bs.L;
  bs.idx = uint3{static_cast<unsigned>(linear % L.grid.x), static_cast<unsigned>(linear / L.grid.x % L.grid.y),
                 static_cast<unsigned>(linear / (uint64_t(L.grid.x) * L.grid.y))};
  for (unsigned i = 0; i < bs.nthreads; ++i) {
    ThreadCtx& t = bs.threads[i];
    t.thread_idx = uint3{i % L.block.x, i / L.block.x % L.block.y, i / (L.block.x * L.block.y)};
    t.block_idx = bs.idx;
    t.block_dim = L.block;
    t.grid_dim = L.grid;
    t.tid = i;
    t.lane = i % kWarpSize;
    t.warp = i / kWarpSize;
    t.block = &bs;
    t.sites_cached = 0;
  }
  for (unsigned w = 0; w < bs.nwarps; ++w) {
    WarpState& ws = bs.warps[w];
    const unsigned lanes = std::min<unsigned>(kWarpSize, bs.nthreads - w * kWarpSize);
    ws.exist = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
    ws.exited = ws.waiting = ws.released = 0;
  }
  bs.bar_arrived = 0;
  bs.bar_live = bs.nthreads;
  bs.bar_acc = 0;
  bs.aborted.store(false, std::memory_order_relaxed);
  bs.blocked.store(0, std::memory_order_relaxed);
  bs.exited.store(0, std::memory_order_relaxed);
  // Shared memory: everything guard, the dynamic part poisoned.
  bs.sites.clear();
  bs.static_pos = kSmemGuard;
  bs.static_bytes = 0;
  std::memset(bs.arena, kGuardByte, bs.arena_size);
  std::memset(bs.arena + bs.dyn_off, kPoisonByte, L.shmem);
}

// After the block: every arena byte outside the handed-out regions must
// still be a guard byte.
void check_block_smem(BlockState& bs) {
  const Launch& L = *bs.L;
  size_t first = 0, last = 0;
  size_t pos = 0;
  const SiteEntry* prev = nullptr;
  auto check_gap = [&](size_t from, size_t to, const SiteEntry* before, const SiteEntry* after) {
    if (to <= from || !find_corruption(bs.arena + from, to - from, first, last)) return;
    std::string what;
    if (before && first < kSmemGuard)
      what = strf("bytes %zu..%zu past the end of static shared array '%s' (%zu bytes) were written", first, last,
                  before->site->name, before->site->size);
    else if (after)
      what = strf("bytes up to %zu before the start of static shared array '%s' (%zu bytes) were written",
                  to - (from + first), after->site->name, after->site->size);
    else
      what =
          strf("a byte %zu bytes into the unused static shared memory region was written", from + first - kSmemGuard);
    fail_block(bs, cudaErrorIllegalAddress,
               strf("shared memory out-of-bounds write in %s: %s", block_where(bs).c_str(), what.c_str()));
  };
  for (const SiteEntry& s : bs.sites) {
    check_gap(pos, s.off, prev, &s);
    pos = s.off + s.site->size;
    prev = &s;
  }
  check_gap(pos, bs.static_end, prev, nullptr);
  // Dynamic region.
  if (find_corruption(bs.arena + bs.static_end, bs.dyn_off - bs.static_end, first, last))
    fail_block(bs, cudaErrorIllegalAddress,
               strf("shared memory out-of-bounds write in %s: up to %zu bytes before the start of the dynamic "
                    "shared memory (%zu bytes) were written",
                    block_where(bs).c_str(), bs.dyn_off - bs.static_end - first, L.shmem));
  if (find_corruption(bs.arena + bs.dyn_off + L.shmem, kSmemGuard, first, last))
    fail_block(bs, cudaErrorIllegalAddress,
               strf("shared memory out-of-bounds write in %s: bytes %zu..%zu past the end of the dynamic shared "
                    "memory (%zu bytes) were written",
                    block_where(bs).c_str(), first, last, L.shmem));
}

// ================================================================= fibers

constexpr size_t kDefaultStackKiB = 256;

struct Stack {
  unsigned char* lo = nullptr;  // usable [lo, lo + size), a PROT_NONE page below
  size_t size = 0;
};

std::mutex g_stack_mu;
std::vector<Stack> g_free_stacks;
size_t g_stack_size = 0;

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

std::vector<Stack> acquire_stacks(size_t n) {
  const size_t want = static_cast<size_t>(std::max(64L, env_long("LKASEG_SIMT_STACK_KB", kDefaultStackKiB))) * 1024;
  std::lock_guard lk(g_stack_mu);
  if (g_stack_size != want) {  // size changed: drop the cache
    for (Stack& s : g_free_stacks) munmap(s.lo - page_size(), s.size + page_size());
    g_free_stacks.clear();
    g_stack_size = want;
  }
  std::vector<Stack> out;
  out.reserve(n);
  while (out.size() < n && !g_free_stacks.empty()) {
    out.push_back(g_free_stacks.back());
    g_free_stacks.pop_back();
  }
  while (out.size() < n) {
    const size_t total = want + page_size();
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    mprotect(p, page_size(), PROT_NONE);  // overflow faults instead of corrupting a neighbour
    out.push_back(Stack{static_cast<unsigned char*>(p) + page_size(), want});
  }
  return out;
}

void release_stacks(std::vector<Stack>& stacks) {
  std::lock_guard lk(g_stack_mu);
  for (const Stack& s : stacks) {
    if (s.size == g_stack_size)
      g_free_stacks.push_back(s);
    else
      munmap(s.lo - page_size(), s.size + page_size());
  }
  stacks.clear();
}

struct Context {
#if LK_SIMT_ASM_SWITCH
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
};

struct Fiber {
  Context ctx;
  Stack stack;
  bool done = true;
  bool progressed = false;
  void* tsan_fiber = nullptr;
};

struct Worker {
  Launch* L = nullptr;
  BlockState bs;
  std::vector<Fiber> fibers;
  std::vector<Stack> stacks;
  Context sched;
  Fiber* current = nullptr;
  // The scheduler's stack, as AddressSanitizer wants it named on each switch.
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
  void* sched_tsan = nullptr;
};

thread_local Worker* t_worker = nullptr;

void fiber_main();

void context_init(Context& c, const Stack& s) {
#if LK_SIMT_ASM_SWITCH
  // A frame lk_simt_switch can "return" into fiber_main from: control words,
  // six zeroed callee-saved registers (rbp = 0 ends frame-pointer walks), the
  // entry point, and a null return address at the ABI's entry alignment.
  auto* sp = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(s.lo + s.size) & ~uintptr_t(15));
  *--sp = 0;
  *--sp = reinterpret_cast<uint64_t>(&fiber_main);
  for (int i = 0; i < 6; ++i) *--sp = 0;
  uint32_t mxcsr = 0;
  uint16_t fcw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fcw));
  *--sp = uint64_t(mxcsr) | (uint64_t(fcw) << 32);
  c.sp = sp;
#else
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = s.lo;
  c.uc.uc_stack.ss_size = s.size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, &fiber_main, 0);
  // AddressSanitizer's swapcontext interceptor clears the shadow of the
  // target's whole uc_stack on every switch (slow, and it forgets live
  // frames); the stack annotations below are the accurate way.
  c.uc.uc_stack.ss_sp = nullptr;
  c.uc.uc_stack.ss_size = 0;
#endif
}

inline void context_switch(Context& from, Context& to) {
#if LK_SIMT_ASM_SWITCH
  lk_simt_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
}

// Scheduler -> fiber.
void resume(Worker& w, Fiber& f, ThreadCtx& t) {
  t_cur = &t;
  w.current = &f;
#if LK_SIMT_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack.lo, f.stack.size);
#endif
#if LK_SIMT_TSAN
  __tsan_switch_to_fiber(f.tsan_fiber, 0);
#endif
  context_switch(w.sched, f.ctx);
#if LK_SIMT_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  t_cur = nullptr;
  w.current = nullptr;
}

// Fiber -> scheduler; returns when the scheduler resumes this fiber.
void yield_to_scheduler() {
  Worker& w = *t_worker;
  Fiber& f = *w.current;
#if LK_SIMT_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, w.sched_bottom, w.sched_size);
#endif
#if LK_SIMT_TSAN
  __tsan_switch_to_fiber(w.sched_tsan, 0);
#endif
  context_switch(f.ctx, w.sched);
#if LK_SIMT_ASAN
  __sanitizer_finish_switch_fiber(fake, &w.sched_bottom, &w.sched_size);
#endif
}

void run_thread(Launch& L, ThreadCtx& t);

// Entry of every fiber. Uninstrumented and without addressable locals, so
// the frame it leaves on the stack when it switches away for good carries no
// AddressSanitizer poison into the next fiber that uses this stack.
__attribute__((no_sanitize_address)) void fiber_main() {
  Worker* w = t_worker;
#if LK_SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &w->sched_bottom, &w->sched_size);
#endif
  Fiber* f = w->current;
  f->progressed = true;
  run_thread(*w->L, *t_cur);
  f->done = true;
#if LK_SIMT_ASAN
  __sanitizer_start_switch_fiber(nullptr, w->sched_bottom, w->sched_size);
#endif
#if LK_SIMT_TSAN
  __tsan_switch_to_fiber(w->sched_tsan, 0);
#endif
  context_switch(f->ctx, w->sched);
  std::abort();  // a finished fiber is never resumed
}

// ================================================================= waiting

// Waits (with lk held on entry and exit) until pred() holds. Fibers yield to
// the scheduler; OS threads wait on cv, with a deadlock check.
void report_deadlock(BlockState& bs);

template <class Pred>
void wait_until(BlockState& bs, std::unique_lock<std::mutex>& lk, std::condition_variable& cv, Pred pred) {
  if (bs.mode == Mode::Fibers) {
    while (!pred()) {
      if (bs.aborted.load(std::memory_order_relaxed)) throw KernelAbort{};
      lk.unlock();
      yield_to_scheduler();
      lk.lock();
    }
    t_worker->current->progressed = true;
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

void abort_block(BlockState& bs) {
  bs.aborted.store(true, std::memory_order_relaxed);
  if (bs.mode == Mode::Threads) {
    // Waiters re-check every 20 ms anyway; this only makes it prompt.
    bs.bar_cv.notify_all();
    for (unsigned w = 0; w < bs.nwarps; ++w) bs.warps[w].cv.notify_all();
  }
}

void fail_block(BlockState& bs, cudaError e, const std::string& msg) {
  bs.L->fail(e, msg);
  abort_block(bs);
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Sync: return "__syncwarp";
    case WarpOp::ShflIdx: return "__shfl_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Any: return "__any_sync";
    case WarpOp::All: return "__all_sync";
  }
  return "?";
}

void report_deadlock(BlockState& bs) {
  unsigned at_barrier = 0;
  {
    std::lock_guard lk(bs.bar_mu);
    at_barrier = bs.bar_arrived;
  }
  std::string warps;
  for (unsigned w = 0; w < bs.nwarps; ++w) {
    WarpState& ws = bs.warps[w];
    std::lock_guard lk(ws.mu);
    if (!ws.waiting) continue;
    const int l = std::countr_zero(ws.waiting);
    warps += strf("; warp %u lanes 0x%08x wait in %s(mask 0x%08x)", w, ws.waiting, op_name(ws.op[l]), ws.mask[l]);
  }
  fail_block(bs, cudaErrorLaunchFailure,
             strf("deadlock in %s: %u threads wait at __syncthreads, %d have exited%s (a barrier or warp "
                  "intrinsic not reached by every thread it waits for)",
                  block_where(bs).c_str(), at_barrier, bs.exited.load(std::memory_order_relaxed), warps.c_str()));
}

// ================================================================= barriers and warps

void release_barrier(BlockState& bs) {
  bs.bar_result = bs.bar_acc;
  bs.bar_result_n = static_cast<int>(bs.bar_arrived);
  bs.blocked.fetch_sub(static_cast<int>(bs.bar_arrived), std::memory_order_relaxed);
  bs.bar_arrived = 0;
  bs.bar_acc = 0;
  ++bs.bar_gen;
  if (bs.mode == Mode::Threads) bs.bar_cv.notify_all();
}

uint64_t shfl_source(const WarpState& ws, unsigned lane, uint32_t group, uint64_t poison) {
  const int width = ws.width[lane];
  const unsigned w = static_cast<unsigned>(width);
  const unsigned base = lane & ~(w - 1);
  const int p = ws.param[lane];
  unsigned src = lane;
  switch (ws.op[lane]) {
    case WarpOp::ShflIdx: src = base + (static_cast<unsigned>(p) & (w - 1)); break;
    case WarpOp::ShflUp: src = (lane - base) >= static_cast<unsigned>(p) ? lane - p : lane; break;
    case WarpOp::ShflDown: src = (lane - base) + static_cast<unsigned>(p) < w ? lane + p : lane; break;
    case WarpOp::ShflXor: {
      const unsigned s = lane ^ static_cast<unsigned>(p);
      src = s < base + w ? s : lane;  // a later group's lane: own value
      break;
    }
    default: break;
  }
  // Reading a lane that does not take part is undefined: poison.
  return (src < 32 && (group >> src) & 1u) ? ws.value[src] : poison;
}

void complete_warp(BlockState& bs, WarpState& ws, uint32_t group) {
  const unsigned first = static_cast<unsigned>(std::countr_zero(group));
  const WarpOp op = ws.op[first];
  uint32_t ballot = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((group >> l) & 1u && ws.value[l]) ballot |= 1u << l;
  for (unsigned l = 0; l < 32; ++l) {
    if (!((group >> l) & 1u)) continue;
    switch (op) {
      case WarpOp::Sync: ws.result[l] = 0; break;
      case WarpOp::Ballot: ws.result[l] = ballot; break;
      case WarpOp::Any: ws.result[l] = ballot != 0; break;
      case WarpOp::All: ws.result[l] = ballot == group; break;
      default: ws.result[l] = shfl_source(ws, l, group, ~uint64_t(0)); break;
    }
  }
  ws.waiting &= ~group;
  ws.released |= group;
  bs.blocked.fetch_sub(std::popcount(group), std::memory_order_relaxed);
  if (bs.mode == Mode::Threads) ws.cv.notify_all();
}

void thread_exit(ThreadCtx& t) {
  BlockState& bs = *t.block;
  {
    std::lock_guard lk(bs.bar_mu);
    --bs.bar_live;
    if (bs.bar_arrived > 0 && bs.bar_arrived == bs.bar_live) release_barrier(bs);
  }
  WarpState& ws = bs.warps[t.warp];
  std::string error;
  {
    std::lock_guard lk(ws.mu);
    const uint32_t bit = 1u << t.lane;
    ws.exited |= bit;
    for (unsigned l = 0; l < 32 && error.empty(); ++l)
      if ((ws.waiting >> l) & 1u && ws.mask[l] & bit)
        error = strf("lane %u of warp %u exited while lane %u waits for it in %s(mask 0x%08x)", t.lane, t.warp, l,
                     op_name(ws.op[l]), ws.mask[l]);
  }
  bs.exited.fetch_add(1, std::memory_order_relaxed);
  if (!error.empty())
    fail_block(bs, cudaErrorIllegalInstruction, strf("%s: %s", block_where(bs).c_str(), error.c_str()));
}

void run_thread(Launch& L, ThreadCtx& t) {
  try {
    // Threads of a block that has already failed do not start.
    if (!t.block->aborted.load(std::memory_order_relaxed)) L.body.invoke(L.body.data);
  } catch (const KernelAbort&) {
  } catch (const std::exception& e) {
    fail_block(*t.block, cudaErrorLaunchFailure, where(t, L) + ": threw " + e.what());
  } catch (...) {
    fail_block(*t.block, cudaErrorLaunchFailure, where(t, L) + ": threw an exception");
  }
  thread_exit(t);
}

// ================================================================= block execution

void finish_block(BlockState& bs) { check_block_smem(bs); }

void run_block_fibers(Worker& w, uint64_t linear) {
  BlockState& bs = w.bs;
  setup_block(bs, linear);
  const unsigned n = bs.nthreads;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = w.fibers[i];
    f.done = false;
    f.progressed = false;
    context_init(f.ctx, f.stack);
#if LK_SIMT_TSAN
    f.tsan_fiber = __tsan_create_fiber(0);
#endif
  }
  unsigned remaining = n;
  bool deadlock_reported = false;
  while (remaining > 0) {
    bool progress = false;
    for (unsigned i = 0; i < n; ++i) {
      Fiber& f = w.fibers[i];
      if (f.done) continue;
      resume(w, f, bs.threads[i]);
      if (f.done) {
        --remaining;
        progress = true;
#if LK_SIMT_TSAN
        __tsan_destroy_fiber(f.tsan_fiber);
        f.tsan_fiber = nullptr;
#endif
      } else if (f.progressed) {
        progress = true;
      }
      f.progressed = false;
    }
    if (!progress && remaining > 0) {
      if (deadlock_reported) {  // an aborted block's fibers always finish
        std::fprintf(stderr, "lkaseg simt: internal error: fibers of %s do not finish\n", block_where(bs).c_str());
        std::abort();
      }
      report_deadlock(bs);
      deadlock_reported = true;
    }
  }
  finish_block(bs);
}

void fibers_worker(Launch& L, Worker& w) {
  t_worker = &w;
#if LK_SIMT_TSAN
  w.sched_tsan = __tsan_get_current_fiber();
#endif
  for (;;) {
    if (L.failed.load(std::memory_order_relaxed)) break;
    const uint64_t b = L.next_block.fetch_add(1, std::memory_order_relaxed);
    if (b >= L.nblocks) break;
    run_block_fibers(w, b);
  }
  t_worker = nullptr;
}

void run_fibers(Launch& L, unsigned nworkers) {
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < nworkers; ++i) {
    auto w = std::make_unique<Worker>();
    w->L = &L;
    init_block_storage(w->bs, L);
    w->stacks = acquire_stacks(L.nthreads);
    w->fibers.resize(L.nthreads);
    for (unsigned t = 0; t < L.nthreads; ++t) w->fibers[t].stack = w->stacks[t];
    workers.push_back(std::move(w));
  }
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < nworkers; ++i) threads.emplace_back([&L, w = workers[i].get()] { fibers_worker(L, *w); });
  fibers_worker(L, *workers[0]);
  for (auto& t : threads) t.join();
  for (auto& w : workers) release_stacks(w->stacks);
}

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

// ================================================================= configuration

std::atomic<int> g_mode_override{-1};
std::atomic<int> g_workers{0};
std::atomic<uint64_t> g_launches{0}, g_blocks{0}, g_threads{0};

std::mutex g_attr_mu;
std::map<void (*)(), int> g_max_dyn_smem;

std::mutex g_handle_mu;
std::set<const void*> g_streams, g_events;

bool valid_stream(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  std::lock_guard lk(g_handle_mu);
  return g_streams.count(s) != 0;
}

bool valid_event(cudaEvent_t e) {
  std::lock_guard lk(g_handle_mu);
  return e && g_events.count(e) != 0;
}

cudaError config_error(cudaError e, const std::string& msg) {
  report(msg);
  return set_error(e);
}

// Synchronising calls: check every allocation's guards, then report a
// pending execution error once.
cudaError synchronize(const char* what) {
  std::string problems;
  {
    std::lock_guard lk(g_mem_mu);
    problems = check_all_locked(std::string("at ") + what);
  }
  if (!problems.empty()) report(problems);
  const cudaError pending = take_pending();
  if (pending != cudaSuccess) return set_error(pending);
  return problems.empty() ? cudaSuccess : set_error(cudaErrorIllegalAddress);
}

// ================================================================= kernel-side entry points

int block_sync(int kind, int pred) {
  ThreadCtx& t = *t_cur;
  BlockState& bs = *t.block;
  std::unique_lock lk(bs.bar_mu);
  if (bs.aborted.load(std::memory_order_relaxed)) throw KernelAbort{};
  const uint64_t gen = bs.bar_gen;
  ++bs.bar_arrived;
  bs.bar_acc += pred != 0;
  bs.blocked.fetch_add(1, std::memory_order_relaxed);
  if (bs.bar_arrived == bs.bar_live) release_barrier(bs);
  wait_until(bs, lk, bs.bar_cv, [&] { return bs.bar_gen != gen; });
  switch (kind) {
    case 1: return bs.bar_result;
    case 2: return bs.bar_result == bs.bar_result_n;
    case 3: return bs.bar_result > 0;
    default: return 0;
  }
}

uint64_t warp_op(WarpOp op, unsigned mask, uint64_t value, int param, int width) {
  ThreadCtx& t = *t_cur;
  BlockState& bs = *t.block;
  WarpState& ws = bs.warps[t.warp];
  const uint32_t bit = 1u << t.lane;
  if (!(mask & bit))
    device_error(
        cudaErrorIllegalInstruction,
        strf("%s(mask 0x%08x) called by lane %u, which is not in its mask", op_name(op), mask, t.lane).c_str());
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    device_error(cudaErrorIllegalInstruction,
                 strf("%s with width %d (a power of two <= 32 is required)", op_name(op), width).c_str());
  std::string error;
  std::unique_lock lk(ws.mu);
  if (bs.aborted.load(std::memory_order_relaxed)) throw KernelAbort{};
  const uint32_t group = mask & ws.exist;
  if (group & ws.exited) {
    error = strf("%s(mask 0x%08x) by lane %u waits for lanes 0x%08x of warp %u, which have exited", op_name(op), mask,
                 t.lane, group & ws.exited, t.warp);
  } else {
    for (unsigned l = 0; l < 32 && error.empty(); ++l) {
      if (!((ws.waiting >> l) & 1u) || !(((group >> l) & 1u) || (ws.mask[l] & bit))) continue;
      if (ws.op[l] != op || ws.mask[l] != mask)
        error = strf(
            "lane %u of warp %u called %s(mask 0x%08x) while lane %u waits in %s(mask 0x%08x); all lanes "
            "of a mask must call the same intrinsic with the same mask",
            t.lane, t.warp, op_name(op), mask, l, op_name(ws.op[l]), ws.mask[l]);
    }
  }
  if (!error.empty()) {
    lk.unlock();
    device_error(cudaErrorIllegalInstruction, error.c_str());
  }
  const unsigned lane = t.lane;
  ws.op[lane] = op;
  ws.mask[lane] = mask;
  ws.value[lane] = value;
  ws.param[lane] = param;
  ws.width[lane] = width;
  ws.waiting |= bit;
  bs.blocked.fetch_add(1, std::memory_order_relaxed);
  if ((ws.waiting & group) == group) complete_warp(bs, ws, group);
  wait_until(bs, lk, ws.cv, [&] { return (ws.released & bit) != 0; });
  ws.released &= ~bit;
  return ws.result[lane];
}

unsigned active_mask() {
  ThreadCtx& t = *t_cur;
  WarpState& ws = t.block->warps[t.warp];
  std::lock_guard lk(ws.mu);
  return ws.exist & ~ws.exited;
}

void* shared_static(SharedSite& site) {
  ThreadCtx& t = *t_cur;
  for (int i = 0; i < t.sites_cached; ++i)
    if (t.site_key[i] == &site) return t.site_ptr[i];
  BlockState& bs = *t.block;
  void* ptr = nullptr;
  std::string error;
  cudaError code = cudaSuccess;
  {
    std::lock_guard lk(bs.smem_mu);
    for (const SiteEntry& s : bs.sites)
      if (s.site == &site) ptr = bs.arena + s.off;
    if (!ptr) {
      const size_t align = std::max<size_t>(site.align, 16);
      const size_t off = (bs.static_pos + align - 1) / align * align;
      if (align > 256 || bs.sites.size() >= kMaxStaticSites) {
        code = cudaErrorLaunchOutOfResources;
        error =
            strf("static shared array '%s': more than %zu arrays or alignment above 256", site.name, kMaxStaticSites);
      } else if (bs.static_bytes + site.size > kDefaultSharedPerBlock) {
        code = cudaErrorLaunchOutOfResources;
        error = strf("static shared memory of the kernel exceeds 48 KiB (%zu bytes with '%s'); nvcc rejects this",
                     bs.static_bytes + site.size, site.name);
      } else if (bs.static_bytes + site.size + bs.L->shmem > bs.L->smem_cap) {
        code = cudaErrorInvalidValue;
        error = strf(
            "static (%zu bytes with '%s') plus dynamic (%zu bytes) shared memory exceed the block's %zu "
            "bytes",
            bs.static_bytes + site.size, site.name, bs.L->shmem, bs.L->smem_cap);
      } else {
        bs.sites.push_back(SiteEntry{&site, off});
        bs.static_pos = off + site.size + kSmemGuard;
        bs.static_bytes += site.size;
        ptr = bs.arena + off;
        std::memset(ptr, kPoisonByte, site.size);
      }
    }
  }
  if (!ptr) device_error(code, error.c_str());
  if (t.sites_cached < ThreadCtx::kSiteCache) {
    t.site_key[t.sites_cached] = &site;
    t.site_ptr[t.sites_cached] = ptr;
    ++t.sites_cached;
  }
  return ptr;
}

void* shared_dynamic() {
  BlockState& bs = *t_cur->block;
  return bs.arena + bs.dyn_off;
}

void device_error(cudaError code, const char* what) {
  ThreadCtx& t = *t_cur;
  fail_block(*t.block, code, where(t, *t.block->L) + ": " + what);
  throw KernelAbort{};
}

void device_yield() {
  BlockState& bs = *t_cur->block;
  if (bs.mode == Mode::Fibers) {
    t_worker->current->progressed = true;
    yield_to_scheduler();
  } else {
    std::this_thread::yield();
  }
}

cudaError memcpy_symbol(void* dst, const void* src, size_t bytes, bool in_range, cudaMemcpyKind kind) {
  if (!in_range || (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault))
    return config_error(cudaErrorInvalidValue, "cudaMemcpy{To,From}Symbol: range outside the symbol or bad kind");
  std::memmove(dst, src, bytes);
  return cudaSuccess;
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
  int optin = 0;
  {
    std::lock_guard lk(g_attr_mu);
    auto it = g_max_dyn_smem.find(key);
    if (it != g_max_dyn_smem.end()) optin = it->second;
  }
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

  std::string problems;
  {
    std::lock_guard lk(g_mem_mu);
    problems = check_all_locked(strf("after kernel '%s'", name));
  }
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

// ================================================================= runtime API

cudaError cudaGetLastError() {
  const cudaError e = t_last_error;
  t_last_error = cudaSuccess;
  if (e != cudaSuccess) {
    int expected = e;
    g_pending.compare_exchange_strong(expected, cudaSuccess);
  }
  return e;
}

cudaError cudaPeekAtLastError() { return t_last_error; }

const char* cudaGetErrorName(cudaError e) {
  switch (e) {
#define LK_SIMT_NAME(x) \
  case x: return #x;
    LK_SIMT_NAME(cudaSuccess)
    LK_SIMT_NAME(cudaErrorInvalidValue)
    LK_SIMT_NAME(cudaErrorMemoryAllocation)
    LK_SIMT_NAME(cudaErrorInvalidConfiguration)
    LK_SIMT_NAME(cudaErrorInvalidSymbol)
    LK_SIMT_NAME(cudaErrorInvalidDevicePointer)
    LK_SIMT_NAME(cudaErrorInvalidMemcpyDirection)
    LK_SIMT_NAME(cudaErrorInvalidDeviceFunction)
    LK_SIMT_NAME(cudaErrorNoDevice)
    LK_SIMT_NAME(cudaErrorInvalidDevice)
    LK_SIMT_NAME(cudaErrorInvalidResourceHandle)
    LK_SIMT_NAME(cudaErrorNotReady)
    LK_SIMT_NAME(cudaErrorIllegalAddress)
    LK_SIMT_NAME(cudaErrorLaunchOutOfResources)
    LK_SIMT_NAME(cudaErrorLaunchTimeout)
    LK_SIMT_NAME(cudaErrorAssert)
    LK_SIMT_NAME(cudaErrorIllegalInstruction)
    LK_SIMT_NAME(cudaErrorMisalignedAddress)
    LK_SIMT_NAME(cudaErrorLaunchFailure)
    LK_SIMT_NAME(cudaErrorNotSupported)
    LK_SIMT_NAME(cudaErrorUnknown)
#undef LK_SIMT_NAME
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidSymbol: return "invalid device symbol";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchTimeout: return "the launch timed out and was terminated";
    case cudaErrorAssert: return "device-side assert triggered";
    case cudaErrorIllegalInstruction: return "an illegal instruction was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorUnknown: return "unknown error";
  }
  return "unknown error";
}

cudaError cudaGetDeviceCount(int* n) {
  if (!n) return set_error(cudaErrorInvalidValue);
  *n = 1;
  return cudaSuccess;
}
cudaError cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }
cudaError cudaGetDevice(int* device) {
  if (!device) return set_error(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError cudaDeviceSynchronize() { return synchronize("cudaDeviceSynchronize"); }

cudaError cudaDeviceReset() {
  std::lock_guard lk(g_mem_mu);
  const std::string problems = check_all_locked("at cudaDeviceReset");
  if (!problems.empty()) report(problems);
  for (auto& [user, a] : g_allocs) {
    guard_unpoison(a.base, a.total);
    ::operator delete(a.base, std::align_val_t(kAllocAlign));
  }
  g_allocs.clear();
  g_alloc_bytes = 0;
  g_pending.store(cudaSuccess);
  t_last_error = cudaSuccess;
  return cudaSuccess;
}

cudaError cudaMalloc(void** ptr, size_t bytes) {
  if (!ptr) return config_error(cudaErrorInvalidValue, "cudaMalloc with a null result pointer");
  *ptr = nullptr;
  if (bytes > (size_t(1) << 46))
    return config_error(cudaErrorMemoryAllocation, strf("cudaMalloc(%zu): out of memory", bytes));
  {
    std::lock_guard lk(g_mem_mu);
    if (bytes > g_capacity - std::min(g_capacity, g_alloc_bytes))
      return config_error(cudaErrorMemoryAllocation,
                          strf("cudaMalloc(%zu): out of memory (%zu of %zu bytes in use)", bytes, g_alloc_bytes, g_capacity));
  }
  const size_t back = (bytes + kMinBackGuard + kAllocAlign - 1) / kAllocAlign * kAllocAlign - bytes;
  Alloc a;
  a.bytes = bytes;
  a.total = kFrontGuard + bytes + back;
  a.base = static_cast<unsigned char*>(::operator new(a.total, std::align_val_t(kAllocAlign), std::nothrow));
  if (!a.base) return config_error(cudaErrorMemoryAllocation, strf("cudaMalloc(%zu): out of memory", bytes));
  std::memset(a.base + kFrontGuard, kPoisonByte, bytes);
  arm_alloc(a);
  std::lock_guard lk(g_mem_mu);
  g_allocs[reinterpret_cast<uintptr_t>(a.base + kFrontGuard)] = a;
  g_alloc_bytes += bytes;
  *ptr = a.base + kFrontGuard;
  return cudaSuccess;
}

cudaError cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  Alloc a;
  std::string problems;
  {
    std::lock_guard lk(g_mem_mu);
    auto it = g_allocs.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == g_allocs.end())
      return config_error(cudaErrorInvalidValue,
                          strf("cudaFree(%p): not a pointer cudaMalloc returned, or freed twice", ptr));
    a = it->second;
    problems = check_alloc_locked(a, "at cudaFree");
    g_allocs.erase(it);
    g_alloc_bytes -= a.bytes;
  }
  guard_unpoison(a.base, a.total);
  ::operator delete(a.base, std::align_val_t(kAllocAlign));
  if (problems.empty()) return cudaSuccess;
  report(problems);
  return set_error(cudaErrorIllegalAddress);
}

cudaError cudaMallocAsync(void** ptr, size_t bytes, StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  return cudaMalloc(ptr, bytes);
}
cudaError cudaFreeAsync(void* ptr, StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  return cudaFree(ptr);
}

cudaError cudaMallocHost(void** ptr, size_t bytes) {
  if (!ptr) return set_error(cudaErrorInvalidValue);
  *ptr = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(kAllocAlign), std::nothrow);
  return *ptr ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
cudaError cudaFreeHost(void* ptr) {
  if (ptr) ::operator delete(ptr, std::align_val_t(kAllocAlign));
  return cudaSuccess;
}

cudaError cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
    return config_error(cudaErrorInvalidMemcpyDirection, strf("cudaMemcpy with kind %d", static_cast<int>(kind)));
  if (!dst || !src) return config_error(cudaErrorInvalidValue, "cudaMemcpy with a null pointer");
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_dev && !is_device_range(dst, bytes))
    return config_error(cudaErrorInvalidValue,
                        strf("cudaMemcpy of %zu bytes to %p: the destination is not inside one cudaMalloc "
                             "allocation",
                             bytes, dst));
  if (src_dev && !is_device_range(src, bytes))
    return config_error(
        cudaErrorInvalidValue,
        strf("cudaMemcpy of %zu bytes from %p: the source is not inside one cudaMalloc allocation", bytes, src));
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError cudaMemset(void* ptr, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!is_device_range(ptr, bytes))
    return config_error(cudaErrorInvalidValue,
                        strf("cudaMemset of %zu bytes at %p: not inside one cudaMalloc allocation", bytes, ptr));
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

cudaError cudaMemsetAsync(void* ptr, int value, size_t bytes, StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  return cudaMemset(ptr, value, bytes);
}

cudaError cudaStreamCreate(StreamImpl** stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError cudaStreamCreateWithFlags(StreamImpl** stream, unsigned flags) {
  if (!stream) return set_error(cudaErrorInvalidValue);
  *stream = new StreamImpl{flags};
  std::lock_guard lk(g_handle_mu);
  g_streams.insert(*stream);
  return cudaSuccess;
}
cudaError cudaStreamDestroy(StreamImpl* stream) {
  {
    std::lock_guard lk(g_handle_mu);
    if (!stream || !g_streams.erase(stream)) return set_error(cudaErrorInvalidResourceHandle);
  }
  delete stream;
  return cudaSuccess;
}
cudaError cudaStreamSynchronize(StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  return synchronize("cudaStreamSynchronize");
}
cudaError cudaStreamQuery(StreamImpl* stream) {
  return valid_stream(stream) ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}
cudaError cudaStreamWaitEvent(StreamImpl* stream, EventImpl* event, unsigned) {
  if (!valid_stream(stream) || !valid_event(event)) return set_error(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}

cudaError cudaEventCreate(EventImpl** event) { return cudaEventCreateWithFlags(event, 0); }
cudaError cudaEventCreateWithFlags(EventImpl** event, unsigned flags) {
  if (!event) return set_error(cudaErrorInvalidValue);
  *event = new EventImpl{flags, false, {}};
  std::lock_guard lk(g_handle_mu);
  g_events.insert(*event);
  return cudaSuccess;
}
cudaError cudaEventDestroy(EventImpl* event) {
  {
    std::lock_guard lk(g_handle_mu);
    if (!event || !g_events.erase(event)) return set_error(cudaErrorInvalidResourceHandle);
  }
  delete event;
  return cudaSuccess;
}
cudaError cudaEventRecord(EventImpl* event, StreamImpl* stream) {
  if (!valid_event(event) || !valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->when = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError cudaEventSynchronize(EventImpl* event) {
  if (!valid_event(event)) return set_error(cudaErrorInvalidResourceHandle);
  return synchronize("cudaEventSynchronize");
}
cudaError cudaEventQuery(EventImpl* event) {
  return valid_event(event) ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}
cudaError cudaEventElapsedTime(float* ms, EventImpl* start, EventImpl* end) {
  if (!ms) return set_error(cudaErrorInvalidValue);
  if (!valid_event(start) || !valid_event(end)) return set_error(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded || (start->flags | end->flags) & cudaEventDisableTiming)
    return set_error(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
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
  const std::string env = describe_env_value("LKASEG_SIMT_MODE");
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

bool check_device_memory() {
  std::string problems;
  {
    std::lock_guard lk(g_mem_mu);
    problems = check_all_locked("by check_device_memory()");
  }
  if (!problems.empty()) report(problems);
  return problems.empty();
}

size_t live_allocations() {
  std::lock_guard lk(g_mem_mu);
  return g_allocs.size();
}

size_t live_allocation_bytes() {
  std::lock_guard lk(g_mem_mu);
  return g_alloc_bytes;
}

void set_device_capacity(size_t bytes) {
  std::lock_guard lk(g_mem_mu);
  g_capacity = bytes;
}

cudaError cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (!free_bytes || !total_bytes) return config_error(cudaErrorInvalidValue, "cudaMemGetInfo with a null pointer");
  std::lock_guard lk(g_mem_mu);
  *total_bytes = g_capacity;
  *free_bytes = g_capacity - std::min(g_capacity, g_alloc_bytes);
  return cudaSuccess;
}

std::string last_message() {
  std::lock_guard lk(g_msg_mu);
  return g_last_msg;
}

void set_quiet(bool quiet) { g_quiet.store(quiet); }

LaunchStats stats() { return LaunchStats{g_launches.load(), g_blocks.load(), g_threads.load()}; }

}  // namespace lk::simt
