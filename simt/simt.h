// SIMT emulator: the kernel-side CUDA subset for the host compiler.
//
// A kernel source (kernels/cuda/*.cu) includes kernels/cuda/cuda_compat.cuh,
// which pulls in the CUDA runtime under nvcc and this header otherwise. Here
// the CUDA qualifiers are no-ops, threadIdx & co. read the current emulated
// thread's context, __syncthreads and the warp intrinsics synchronise the
// emulated threads of a block, and launches run every block on the CPU
// (the .cpp files of this directory; internal.h lists them). README.md
// explains the execution model and its limits.
//
// Do not include this from ordinary host code: it defines macros with CUDA's
// names (threadIdx, __shared__, ...). Host code wants simt/runtime.h
// (through kernels/cuda/runtime_api.h).
#pragma once

#if defined(__CUDACC__)
#error "simt/simt.h emulates CUDA for the host compiler; nvcc uses the real runtime"
#endif

// Everything from the C library the macros below could collide with comes first.
#include <math.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

#include "simt/runtime.h"

namespace lk::simt {

// One static __shared__ declaration (LK_SHARED) of one kernel instantiation;
// its address identifies it. Constant-initialised, so declaring costs nothing.
struct SharedSite {
  const char* name;
  size_t size;
  size_t align;
};

namespace detail {

struct BlockState;

// The context of one emulated CUDA thread. t_cur points at the running one
// (per host thread; in fibers mode the scheduler switches it with the fiber).
struct ThreadCtx {
  uint3 thread_idx{0, 0, 0};
  uint3 block_idx{0, 0, 0};
  dim3 block_dim;
  dim3 grid_dim;
  unsigned tid = 0, lane = 0, warp = 0;
  BlockState* block = nullptr;
  // Per-thread cache of static shared-memory sites already looked up in the
  // block (so a declaration inside a loop does not synchronise again).
  static constexpr int kSiteCache = 8;
  const SharedSite* site_key[kSiteCache] = {};
  void* site_ptr[kSiteCache] = {};
  int sites_cached = 0;
};

inline thread_local ThreadCtx* t_cur = nullptr;

enum class WarpOp : int { Sync, ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All };

// Block-wide barrier; kind 0 plain, 1 count, 2 and, 3 or (returns the
// reduction). `site` is where the kernel calls it: every thread of the block
// must wait at the same one.
int block_sync(int kind, int pred, const std::source_location& site);
// A warp-synchronous operation among the lanes of mask (see block.cpp).
uint64_t warp_op(WarpOp op, unsigned mask, uint64_t value, int param, int width);
unsigned active_mask();
void* shared_static(SharedSite& site);
void* shared_dynamic();
// Records a device-side error for the launch and ends the thread's block.
[[noreturn]] void device_error(cudaError code, const char* what);
void device_yield();

template <class T>
T shfl(WarpOp op, unsigned mask, T v, int param, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_op(op, mask, bits, param, width);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

template <class T>
void check_atomic(T* p) {
  if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0)
    device_error(cudaErrorMisalignedAddress, "atomic operation on a misaligned address");
}

template <class T>
T atomic_add(T* p, T v) {
  check_atomic(p);
  return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed);
}

// old = *p; *p = f(old), atomically; returns old.
template <class T, class F>
T atomic_update(T* p, F f) {
  check_atomic(p);
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, f(old), std::memory_order_relaxed)) {
  }
  return old;
}

template <class T>
T atomic_cas(T* p, T expected, T desired) {
  check_atomic(p);
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired, std::memory_order_relaxed);
  return expected;  // the old value either way
}

inline void fence() {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer does not model stand-alone fences (GCC warns: -Wtsan);
  // a seq_cst read-modify-write of a shared word is the modelled equivalent.
  static std::atomic<int> word{0};
  word.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

inline int warp_size() { return kWarpSize; }  // not a constant expression, as in CUDA

}  // namespace detail

// The kernel launch behind LK_LAUNCH: copies the arguments once (as CUDA
// copies them to the parameter buffer), then, when the stream gets to the
// launch, every emulated thread calls the kernel with them. Configuration
// errors go where cudaGetLastError() finds them at once, execution errors to
// the next synchronising call.
struct KernelInvoker {
  void (*invoke)(const void* data);
  std::shared_ptr<const void> data;  // the copied arguments
};
void launch_kernel(const char* name, void (*key)(), dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
                   KernelInvoker body);

template <typename... P, typename... A>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  struct Pack {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...> args;
  };
  auto pack = std::make_shared<const Pack>(Pack{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)});
  KernelInvoker body{[](const void* d) {
                       const Pack& p = *static_cast<const Pack*>(d);
                       std::apply(p.kernel, p.args);
                     },
                     std::move(pack)};
  launch_kernel(name, reinterpret_cast<void (*)()>(kernel), grid, block, shmem, stream, std::move(body));
}

}  // namespace lk::simt

// ----------------------------------------------------------------- qualifiers

#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))
// __launch_bounds__(max_threads[, min_blocks[, max_cluster]]): the thread
// limit, rounded up to whole warps, is written into the kernel's code as that
// many single-byte NOPs at its entry (patchable_function_entry), where the
// launch reads it back (launch_bound): a launch over it fails as on a GPU.
constexpr unsigned lk_simt_bound_warps(unsigned max_threads, unsigned = 0, unsigned = 0) {
  return (max_threads + 31) / 32;
}
#define __launch_bounds__(...) __attribute__((patchable_function_entry(::lk_simt_bound_warps(__VA_ARGS__), 0)))
// Static shared memory must be declared with LK_SHARED (cuda_compat.cuh), so
// that each emulated block gets its own copy; a bare __shared__ fails here.
#define __shared__ LK_SIMT_declare_static_shared_memory_with_LK_SHARED

// ----------------------------------------------------------------- built-in variables

#define threadIdx (static_cast<const ::lk::simt::uint3&>(::lk::simt::detail::t_cur->thread_idx))
#define blockIdx (static_cast<const ::lk::simt::uint3&>(::lk::simt::detail::t_cur->block_idx))
#define blockDim (static_cast<const ::lk::simt::dim3&>(::lk::simt::detail::t_cur->block_dim))
#define gridDim (static_cast<const ::lk::simt::dim3&>(::lk::simt::detail::t_cur->grid_dim))
#define warpSize (::lk::simt::detail::warp_size())

// ----------------------------------------------------------------- synchronisation

// The default argument records the call site (a barrier instruction).
inline void __syncthreads(std::source_location site = std::source_location::current()) {
  ::lk::simt::detail::block_sync(0, 0, site);
}
inline int __syncthreads_count(int pred, std::source_location site = std::source_location::current()) {
  return ::lk::simt::detail::block_sync(1, pred, site);
}
inline int __syncthreads_and(int pred, std::source_location site = std::source_location::current()) {
  return ::lk::simt::detail::block_sync(2, pred, site);
}
inline int __syncthreads_or(int pred, std::source_location site = std::source_location::current()) {
  return ::lk::simt::detail::block_sync(3, pred, site);
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::lk::simt::detail::warp_op(::lk::simt::detail::WarpOp::Sync, mask, 0, 0, 32);
}
template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  return ::lk::simt::detail::shfl(::lk::simt::detail::WarpOp::ShflIdx, mask, var, src_lane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::lk::simt::detail::shfl(::lk::simt::detail::WarpOp::ShflUp, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::lk::simt::detail::shfl(::lk::simt::detail::WarpOp::ShflDown, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  return ::lk::simt::detail::shfl(::lk::simt::detail::WarpOp::ShflXor, mask, var, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return static_cast<unsigned>(::lk::simt::detail::warp_op(::lk::simt::detail::WarpOp::Ballot, mask, pred != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int pred) {
  return static_cast<int>(::lk::simt::detail::warp_op(::lk::simt::detail::WarpOp::Any, mask, pred != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int pred) {
  return static_cast<int>(::lk::simt::detail::warp_op(::lk::simt::detail::WarpOp::All, mask, pred != 0, 0, 32));
}
inline unsigned __activemask() { return ::lk::simt::detail::active_mask(); }

inline void __threadfence() { ::lk::simt::detail::fence(); }
inline void __threadfence_block() { ::lk::simt::detail::fence(); }
inline void __threadfence_system() { ::lk::simt::detail::fence(); }
inline void __nanosleep(unsigned) { ::lk::simt::detail::device_yield(); }
[[noreturn]] inline void __trap() { ::lk::simt::detail::device_error(cudaErrorLaunchFailure, "__trap() called"); }

inline long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ----------------------------------------------------------------- atomics

inline int atomicAdd(int* p, int v) { return ::lk::simt::detail::atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return ::lk::simt::detail::atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return ::lk::simt::detail::atomic_add(p, v);
}
inline float atomicAdd(float* p, float v) { return ::lk::simt::detail::atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return ::lk::simt::detail::atomic_add(p, v); }
inline int atomicSub(int* p, int v) { return ::lk::simt::detail::atomic_add(p, -v); }
inline unsigned atomicSub(unsigned* p, unsigned v) { return ::lk::simt::detail::atomic_add(p, 0u - v); }

template <class T>
inline T lk_simt_atomic_exch(T* p, T v) {
  return ::lk::simt::detail::atomic_update(p, [v](T) { return v; });
}
inline int atomicExch(int* p, int v) { return lk_simt_atomic_exch(p, v); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return lk_simt_atomic_exch(p, v); }
inline unsigned long long atomicExch(unsigned long long* p, unsigned long long v) { return lk_simt_atomic_exch(p, v); }
inline float atomicExch(float* p, float v) { return lk_simt_atomic_exch(p, v); }

#define LK_SIMT_ATOMIC_MINMAX(T)                                                     \
  inline T atomicMax(T* p, T v) {                                                    \
    return ::lk::simt::detail::atomic_update(p, [v](T o) { return o < v ? v : o; }); \
  }                                                                                  \
  inline T atomicMin(T* p, T v) {                                                    \
    return ::lk::simt::detail::atomic_update(p, [v](T o) { return v < o ? v : o; }); \
  }
LK_SIMT_ATOMIC_MINMAX(int)
LK_SIMT_ATOMIC_MINMAX(unsigned)
LK_SIMT_ATOMIC_MINMAX(long long)
LK_SIMT_ATOMIC_MINMAX(unsigned long long)
#undef LK_SIMT_ATOMIC_MINMAX

#define LK_SIMT_ATOMIC_BITS(T)                                               \
  inline T atomicAnd(T* p, T v) {                                            \
    return ::lk::simt::detail::atomic_update(p, [v](T o) { return o & v; }); \
  }                                                                          \
  inline T atomicOr(T* p, T v) {                                             \
    return ::lk::simt::detail::atomic_update(p, [v](T o) { return o | v; }); \
  }                                                                          \
  inline T atomicXor(T* p, T v) {                                            \
    return ::lk::simt::detail::atomic_update(p, [v](T o) { return o ^ v; }); \
  }
LK_SIMT_ATOMIC_BITS(int)
LK_SIMT_ATOMIC_BITS(unsigned)
LK_SIMT_ATOMIC_BITS(unsigned long long)
#undef LK_SIMT_ATOMIC_BITS

inline int atomicCAS(int* p, int compare, int val) { return ::lk::simt::detail::atomic_cas(p, compare, val); }
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned val) {
  return ::lk::simt::detail::atomic_cas(p, compare, val);
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long val) {
  return ::lk::simt::detail::atomic_cas(p, compare, val);
}
inline unsigned atomicInc(unsigned* p, unsigned limit) {
  return ::lk::simt::detail::atomic_update(p, [limit](unsigned o) { return o >= limit ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
  return ::lk::simt::detail::atomic_update(p, [limit](unsigned o) { return (o == 0 || o > limit) ? limit : o - 1; });
}

// ----------------------------------------------------------------- math and bits

// Fast-math intrinsics are computed at full precision here: a kernel whose
// result depends on their approximation error is not portable anyway.
#define __expf(x) ::expf(x)
#define __exp10f(x) ::exp10f(x)
#define __logf(x) ::logf(x)
#define __log2f(x) ::log2f(x)
#define __log10f(x) ::log10f(x)
#define __powf(x, y) ::powf((x), (y))
#define __sinf(x) ::sinf(x)
#define __cosf(x) ::cosf(x)
#define __tanf(x) ::tanf(x)
#define __fdividef(x, y) ((x) / (y))
#define __fmaf_rn(x, y, z) ::fmaf((x), (y), (z))
#define __fadd_rn(x, y) ((x) + (y))
#define __fmul_rn(x, y) ((x) * (y))
#define __frcp_rn(x) (1.0f / (x))
#define __fsqrt_rn(x) ::sqrtf(x)
#define __frsqrt_rn(x) (1.0f / ::sqrtf(x))
#define __saturatef(x) ::lk_simt_saturatef(x)

inline float lk_simt_saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline float rsqrtf(float x) { return 1.0f / ::sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / ::sqrt(x); }
inline float fdividef(float x, float y) { return x / y; }

inline int min(int a, int b) { return b < a ? b : a; }
inline int max(int a, int b) { return a < b ? b : a; }
inline unsigned min(unsigned a, unsigned b) { return b < a ? b : a; }
inline unsigned max(unsigned a, unsigned b) { return a < b ? b : a; }
inline long long min(long long a, long long b) { return b < a ? b : a; }
inline long long max(long long a, long long b) { return a < b ? b : a; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return b < a ? b : a; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a < b ? b : a; }
inline float min(float a, float b) { return ::fminf(a, b); }
inline float max(float a, float b) { return ::fmaxf(a, b); }
inline double min(double a, double b) { return ::fmin(a, b); }
inline double max(double a, double b) { return ::fmax(a, b); }

inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }
inline int __ffsll(long long x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned long long>(x)) + 1; }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }

template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// ----------------------------------------------------------------- vector types

struct __attribute__((aligned(8))) float2 {
  float x, y;
};
struct __attribute__((aligned(16))) float4 {
  float x, y, z, w;
};
struct __attribute__((aligned(8))) int2 {
  int x, y;
};
struct __attribute__((aligned(16))) int4 {
  int x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
