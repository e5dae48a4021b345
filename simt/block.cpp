// SIMT emulator: one block. Setup and shared memory, __syncthreads, the warp
// intrinsics, a thread's exit, deadlock reports and the kernel-side entry
// points of simt.h. README.md has the design.
#include <algorithm>
#include <bit>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "simt/internal.h"

namespace lk::simt::detail {

constexpr size_t kSmemGuard = 64;
constexpr size_t kMaxStaticSites = 32;
constexpr size_t kStaticRegion = kDefaultSharedPerBlock + kMaxStaticSites * (kSmemGuard + 256);
constexpr size_t kDynFrontGuard = 256;

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
  std::string site;
  {
    std::lock_guard lk(bs.bar_mu);
    at_barrier = bs.bar_arrived;
    if (at_barrier) site = " (" + site_str(bs.bar_site) + ")";
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
             strf("deadlock in %s: %u threads wait at __syncthreads%s, %d have exited%s (a barrier or warp "
                  "intrinsic reached by part of the block only)",
                  block_where(bs).c_str(), at_barrier, site.c_str(), bs.exited.load(std::memory_order_relaxed),
                  warps.c_str()));
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
    if (!t.block->aborted.load(std::memory_order_relaxed)) L.body.invoke(L.body.data.get());
  } catch (const KernelAbort&) {
  } catch (const std::exception& e) {
    fail_block(*t.block, cudaErrorLaunchFailure, where(t, L) + ": threw " + e.what());
  } catch (...) {
    fail_block(*t.block, cudaErrorLaunchFailure, where(t, L) + ": threw an exception");
  }
  thread_exit(t);
}

void finish_block(BlockState& bs) {
  check_block_smem(bs);
  note_static_smem(bs.L->key, bs.static_bytes);
}

// ================================================================= kernel-side entry points

namespace {
bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() && std::strcmp(a.file_name(), b.file_name()) == 0;
}
}  // namespace

std::string site_str(const std::source_location& site) {
  const char* f = site.file_name();
  const char* slash = std::strrchr(f, '/');
  return strf("%s:%u:%u", slash ? slash + 1 : f, static_cast<unsigned>(site.line()),
              static_cast<unsigned>(site.column()));
}

int block_sync(int kind, int pred, const std::source_location& site) {
  ThreadCtx& t = *t_cur;
  BlockState& bs = *t.block;
  std::unique_lock lk(bs.bar_mu);
  if (bs.aborted.load(std::memory_order_relaxed)) throw KernelAbort{};
  // One barrier per generation: a thread arriving at another __syncthreads
  // than those already waiting is a divergent barrier (undefined on a GPU:
  // a hang or threads running past each other).
  if (bs.bar_arrived == 0) {
    bs.bar_site = site;
    bs.bar_first = t.tid;
  } else if (!same_site(bs.bar_site, site)) {
    const uint3 w = bs.threads[bs.bar_first].thread_idx;
    const std::string msg = strf(
        "divergent __syncthreads: this thread reached the one at %s while thread (%u,%u,%u) waits at the one at %s "
        "(all threads of a block must wait at the same __syncthreads)",
        site_str(site).c_str(), w.x, w.y, w.z, site_str(bs.bar_site).c_str());
    lk.unlock();
    device_error(cudaErrorLaunchFailure, msg.c_str());
  }
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
    mark_progress();
    yield_to_scheduler();
  } else {
    std::this_thread::yield();
  }
}

}  // namespace lk::simt::detail
