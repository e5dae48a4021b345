// SIMT emulator: device memory. Every cudaMalloc block is guarded and
// registered; pinned host memory (cudaMallocHost) is registered too, so that
// asynchronous copies read it when they run (pageable memory is staged when
// the copy is queued, as CUDA does); the memory controls of runtime.h.
// cudaFree and cudaFreeHost wait for the device first, as CUDA's do;
// cudaFreeAsync frees in stream order. README.md has the design.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "simt/internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define LK_SIMT_ASAN 1
#else
#define LK_SIMT_ASAN 0
#endif

namespace lk::simt {
namespace detail {

// Every cudaMalloc block is [front guard][user bytes][back guard], the user
// pointer 256-byte aligned like the real allocator's. New user bytes are
// poisoned with 0xFF; the guards are kGuardByte and checked by cudaFree, the
// synchronising calls and after every launch.
constexpr size_t kFrontGuard = 256;
constexpr size_t kMinBackGuard = 64;

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

std::string check_all_allocations(const std::string& when) {
  std::lock_guard lk(g_mem_mu);
  return check_all_locked(when);
}

std::map<uintptr_t, size_t> g_pinned;  // cudaMallocHost blocks: start -> bytes (under g_mem_mu)

bool is_pinned(const void* p, size_t n) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  std::lock_guard lk(g_mem_mu);
  auto it = g_pinned.upper_bound(u);
  if (it == g_pinned.begin()) return false;
  --it;
  return u - it->first <= it->second && n <= it->second - (u - it->first);
}

// Frees a cudaMalloc block now (what cudaFree does after its wait); on
// failure *msg says why.
cudaError free_now(void* ptr, const char* call, std::string* msg) {
  Alloc a;
  {
    std::lock_guard lk(g_mem_mu);
    auto it = g_allocs.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == g_allocs.end()) {
      *msg = strf("%s(%p): not a pointer cudaMalloc returned, or freed twice", call, ptr);
      return cudaErrorInvalidValue;
    }
    a = it->second;
    *msg = check_alloc_locked(a, std::string("at ") + call);
    g_allocs.erase(it);
    g_alloc_bytes -= a.bytes;
  }
  guard_unpoison(a.base, a.total);
  ::operator delete(a.base, std::align_val_t(kAllocAlign));
  return msg->empty() ? cudaSuccess : cudaErrorIllegalAddress;
}

}  // namespace detail

using namespace detail;

cudaError cudaDeviceReset() {
  wait_all_streams();
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
  touch_context();
  if (const cudaError e = capture_forbids("cudaMalloc", nullptr, true); e != cudaSuccess) return e;
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

// Waits for every stream first (the block may still be in use), as CUDA's
// cudaFree synchronises the device.
cudaError cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  touch_context();
  if (const cudaError e = capture_forbids("cudaFree", nullptr, true); e != cudaSuccess) return e;
  wait_all_streams();
  std::string msg;
  const cudaError e = free_now(ptr, "cudaFree", &msg);
  return e == cudaSuccess ? e : config_error(e, msg);
}

// The memory is usable at once in stream order (the emulator does not check
// its use on other streams); freed when the stream reaches the free.
cudaError cudaMallocAsync(void** ptr, size_t bytes, StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  // Graph memory nodes are not emulated; on other streams it is stream work.
  if (const cudaError e = capture_forbids("cudaMallocAsync", stream, false); e != cudaSuccess) return e;
  cudaStreamCaptureMode relaxed = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&relaxed);
  const cudaError r = cudaMalloc(ptr, bytes);
  cudaThreadExchangeStreamCaptureMode(&relaxed);
  return r;
}
cudaError cudaFreeAsync(void* ptr, StreamImpl* stream) {
  if (!ptr) return cudaSuccess;
  touch_context();
  if (const cudaError e = capture_forbids("cudaFreeAsync", stream, false); e != cudaSuccess) return e;
  {
    std::lock_guard lk(g_mem_mu);
    if (!g_allocs.count(reinterpret_cast<uintptr_t>(ptr)))
      return config_error(cudaErrorInvalidValue,
                          strf("cudaFreeAsync(%p): not a pointer cudaMalloc returned, or freed twice", ptr));
  }
  const cudaError e = enqueue(stream, [ptr] {
    std::string msg;
    const cudaError r = free_now(ptr, "cudaFreeAsync", &msg);
    if (r != cudaSuccess) async_error(r, msg);
  });
  return e == cudaSuccess ? e : set_error(e);
}

cudaError cudaMallocHost(void** ptr, size_t bytes) {
  if (!ptr) return set_error(cudaErrorInvalidValue);
  touch_context();
  if (const cudaError e = capture_forbids("cudaMallocHost", nullptr, true); e != cudaSuccess) return e;
  *ptr = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(kAllocAlign), std::nothrow);
  if (!*ptr) return set_error(cudaErrorMemoryAllocation);
  std::lock_guard lk(g_mem_mu);
  g_pinned[reinterpret_cast<uintptr_t>(*ptr)] = std::max<size_t>(bytes, 1);
  return cudaSuccess;
}

// Waits for every stream first: a queued copy may still read the buffer.
cudaError cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  touch_context();
  if (const cudaError e = capture_forbids("cudaFreeHost", nullptr, true); e != cudaSuccess) return e;
  wait_all_streams();
  {
    std::lock_guard lk(g_mem_mu);
    if (!g_pinned.erase(reinterpret_cast<uintptr_t>(ptr)))
      return config_error(cudaErrorInvalidValue,
                          strf("cudaFreeHost(%p): not a pointer cudaMallocHost returned, or freed twice", ptr));
  }
  ::operator delete(ptr, std::align_val_t(kAllocAlign));
  return cudaSuccess;
}


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

}  // namespace lk::simt
