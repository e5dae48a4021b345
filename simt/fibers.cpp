// SIMT emulator: fibers. Each CUDA thread of a block is a cooperative fiber
// with its own stack; a scheduler on each worker thread resumes them until
// the block finishes or deadlocks. README.md has the design.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "simt/internal.h"

#if defined(__SANITIZE_ADDRESS__)
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

namespace lk::simt::detail {

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
  std::vector<unsigned> perm;  // thread order of the current round
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

void mark_progress() { t_worker->current->progressed = true; }

// ================================================================= block execution

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
  const bool forward = w.L->order.order == Order::Forward;
  w.perm.resize(n);
  for (uint64_t round = 0; remaining > 0; ++round) {
    bool progress = false;
    // Each round resumes every unfinished fiber once, in the thread order.
    if (!forward) thread_permutation(*w.L, linear, round, w.perm);
    for (unsigned j = 0; j < n; ++j) {
      const unsigned i = forward ? j : w.perm[j];
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
    run_block_fibers(w, block_at(L, b));
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

}  // namespace lk::simt::detail
