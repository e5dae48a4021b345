// Broadcasting add/multiply forward and backward, fill, axpy, scale, for every
// storage type T (float, bf16, f16; arithmetic and sums in float).
//
// Shapes are described by a Walk: the dims that matter (size > 1), innermost
// first, adjacent dims merged when both operands see them as one contiguous
// run, each with the element strides of two operands. A flat index is split
// into per-dim coordinates with one division per dim but the outermost, so the
// common cases (same shape; SE scaling (N,C,H,W)*(N,C,1,1)) need zero or one.
//
// Backward (d_self += reduce(dy * other)), no atomics, deterministic:
//  * "own": one thread per destination element sums its whole reduction set
//    in the CPU reference's order (row-major over the reduced dims). Used
//    when nothing is reduced, or when the reduced dims are outer ones (the
//    attention gate (N,1,H,W)): neighbouring threads then read neighbouring
//    addresses.
//  * "coop": a warp (or, for long reductions with few destinations, the whole
//    block) per destination; lane l sums r = l, l + TPD, ... and a fixed
//    shuffle tree (plus a shared-memory stage across warps) combines the lanes.
//    Used when the innermost dims are reduced ((N,C,1,1), (1,C,1,1)).
#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/binary.h"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kBinaryThreads;
constexpr int kWarps = kThreads / 32;
// Coop reductions use the whole block per destination from this many
// reduced elements on, when there are few destinations.
constexpr int64_t kBlockReduceMinLength = 4096;
constexpr int64_t kBlockReduceMaxDests = 1024;
// Own-thread reductions need this many destinations to fill a GPU.
constexpr int64_t kOwnMinDests = 2048;
constexpr int64_t kCoopMaxBlocks = 8192;

// Up to 4 dims, innermost first; strides of operand a and operand b.
template <typename I>
struct Walk {
  int nd;     // >= 1 (a single dim of size 1 when nothing is left)
  I size[4];  // 1 beyond nd
  I st_a[4];
  I st_b[4];
};

// Adds the offsets of the flat index idx over dims D..nd-1 of w to oa, ob.
// Compile-time dim indices only, so the Walk stays in the parameter bank.
template <int D, typename I>
__device__ __forceinline__ void walk_add(const Walk<I>& w, I idx, I& oa, I& ob) {
  if constexpr (D < 4) {
    if (D >= w.nd - 1) {  // the outermost dim takes the rest of the index
      oa += idx * w.st_a[D];
      ob += idx * w.st_b[D];
      return;
    }
    const I q = idx / w.size[D];
    const I j = idx - q * w.size[D];
    oa += j * w.st_a[D];
    ob += j * w.st_b[D];
    walk_add<D + 1>(w, q, oa, ob);
  }
}

// Offsets of the flat index idx (over dims First..nd-1 of w) in a and b.
template <int First, typename I>
__device__ __forceinline__ void walk_offsets(const Walk<I>& w, I idx, I& oa, I& ob) {
  oa = 0;
  ob = 0;
  walk_add<First>(w, idx, oa, ob);
}

// y = a op b; w: output dims with the strides of a and b (0 where broadcast).
template <typename I, bool kMul, typename T>
__global__ void __launch_bounds__(kThreads)
    binary_fwd_kernel(I n, Walk<I> w, const T* a, const T* b, T* y) {
  const I stride = I(blockDim.x) * I(gridDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < n; i += stride) {
    I oa, ob;
    walk_offsets<0>(w, i, oa, ob);
    const float va = static_cast<float>(a[oa]), vb = static_cast<float>(b[ob]);
    y[i] = static_cast<T>(kMul ? va * vb : va + vb);
  }
}

// dest: self's dims with the strides of dy (a) and other (b); red: the
// reduced dims likewise, red_outer = their product without the innermost.
template <typename I, bool kMul, typename T>
__global__ void __launch_bounds__(kThreads)
    binary_bwd_own_kernel(I n_dest, I red_outer, Walk<I> dest, Walk<I> red, const T* __restrict__ dy,
                          const T* __restrict__ other, T* __restrict__ d_self, bool accumulate) {
  const I inner = red.size[0], inner_a = red.st_a[0], inner_b = red.st_b[0];
  const I stride = I(blockDim.x) * I(gridDim.x);
  for (I e = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); e < n_dest; e += stride) {
    I oa, ob;
    walk_offsets<0>(dest, e, oa, ob);
    // The outer reduced dims 1..3 as an odometer (unused dims have size 1).
    I c1 = 0, c2 = 0;
    float acc = 0.f;
    for (I ro = 0; ro < red_outer; ++ro) {
      for (I j = 0; j < inner; ++j) {
        const float g = static_cast<float>(dy[oa + j * inner_a]);
        if constexpr (kMul) acc += g * static_cast<float>(other[ob + j * inner_b]);
        else acc += g;
      }
      oa += red.st_a[1];
      ob += red.st_b[1];
      if (++c1 == red.size[1]) {
        c1 = 0;
        oa += red.st_a[2] - red.size[1] * red.st_a[1];
        ob += red.st_b[2] - red.size[1] * red.st_b[1];
        if (++c2 == red.size[2]) {
          c2 = 0;
          oa += red.st_a[3] - red.size[2] * red.st_a[2];
          ob += red.st_b[3] - red.size[2] * red.st_b[2];
        }
      }
    }
    d_self[e] = static_cast<T>(accumulate ? static_cast<float>(d_self[e]) + acc : acc);
  }
}

// kTpd threads per destination: 32 (a warp each) or kThreads (the block).
template <typename I, bool kMul, int kTpd, typename T>
__global__ void __launch_bounds__(kThreads)
    binary_bwd_coop_kernel(I n_dest, I n_red, Walk<I> dest, Walk<I> red, const T* __restrict__ dy,
                           const T* __restrict__ other, T* __restrict__ d_self, bool accumulate) {
  static_assert(kTpd == 32 || kTpd == kThreads, "a warp or the block per destination");
  LK_SHARED(float, warp_sums, [kWarps]);
  constexpr int kGroups = kThreads / kTpd;
  const int tid = static_cast<int>(threadIdx.x);
  const int group = tid / kTpd, lane = tid % kTpd;
  // Block-uniform loop: every thread runs the same iterations (barriers inside).
  for (I e0 = I(blockIdx.x) * kGroups; e0 < n_dest; e0 += I(gridDim.x) * kGroups) {
    const I e = e0 + group;
    float acc = 0.f;
    if (e < n_dest) {
      I base_a, base_b;
      walk_offsets<0>(dest, e, base_a, base_b);
      for (I r = lane; r < n_red; r += kTpd) {
        I oa, ob;
        walk_offsets<0>(red, r, oa, ob);
        const float g = static_cast<float>(dy[base_a + oa]);
        if constexpr (kMul) acc += g * static_cast<float>(other[base_b + ob]);
        else acc += g;
      }
    }
    if constexpr (kTpd == 32) {
      acc = warp_sum(acc);
      if (lane == 0 && e < n_dest) d_self[e] = static_cast<T>(accumulate ? static_cast<float>(d_self[e]) + acc : acc);
    } else {
      acc = block_sum_in_thread0<kThreads>(acc, warp_sums);
      if (tid == 0)  // kGroups == 1: e == e0 < n_dest
        d_self[e] = static_cast<T>(accumulate ? static_cast<float>(d_self[e]) + acc : acc);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) fill_kernel(int64_t n, double value, T* __restrict__ y) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  const T v = static_cast<T>(value);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = v;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) axpy_kernel(int64_t n, float a, const T* x, T* y, bool accumulate) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = a * static_cast<float>(x[i]);
    y[i] = static_cast<T>(accumulate ? static_cast<float>(y[i]) + v : v);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) scale_kernel(int64_t n, float a, T* __restrict__ y) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = static_cast<T>(a * static_cast<float>(y[i]));
}

// dst (+)= src, converting the storage type.
template <typename S, typename D>
__global__ void __launch_bounds__(kThreads) cast_kernel(int64_t n, const S* __restrict__ src, D* __restrict__ dst,
                                                        bool accumulate) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = static_cast<float>(src[i]);
    dst[i] = static_cast<D>(accumulate ? static_cast<float>(dst[i]) + v : v);
  }
}

// ------------------------------------------------------------------ host side

int grid_for(int64_t items, int64_t per_block, int64_t cap) {
  const int64_t blocks = (items + per_block - 1) / per_block;
  return static_cast<int>(blocks < cap ? blocks : cap);
}

int64_t numel(const Dims4& s) { return s[0] * s[1] * s[2] * s[3]; }

// Contiguous element strides of a shape; 0 along its size-1 dims (broadcast).
Dims4 bcast_strides(const Dims4& s) {
  Dims4 st{};
  int64_t acc = 1;
  for (int d = 3; d >= 0; --d) {
    st[d] = s[d] == 1 ? 0 : acc;
    acc *= s[d];
  }
  return st;
}

// Operand shapes must be non-negative and broadcastable to out.
bool broadcastable(const Dims4& s, const Dims4& out) {
  for (int d = 0; d < 4; ++d)
    if (s[d] < 0 || out[d] < 0 || (s[d] != out[d] && s[d] != 1)) return false;
  return true;
}

// The Walk over the dims selected by `use` (sizes `size`), innermost first,
// merging a dim into the group inside it when it continues the group's run
// in both operands.
template <typename I>
Walk<I> make_walk(const bool use[4], const Dims4& size, const Dims4& st_a, const Dims4& st_b) {
  Walk<I> w{};
  int nd = 0;
  int64_t gsize = 0, ga = 0, gb = 0;  // the open group: size, base strides
  for (int d = 3; d >= 0; --d) {
    if (!use[d] || size[d] == 1) continue;
    if (nd > 0 && st_a[d] == gsize * ga && st_b[d] == gsize * gb) {
      gsize *= size[d];
      w.size[nd - 1] = static_cast<I>(gsize);
      continue;
    }
    gsize = size[d], ga = st_a[d], gb = st_b[d];
    w.size[nd] = static_cast<I>(gsize);
    w.st_a[nd] = static_cast<I>(ga);
    w.st_b[nd] = static_cast<I>(gb);
    ++nd;
  }
  w.nd = nd > 0 ? nd : 1;
  for (int d = nd; d < 4; ++d) w.size[d] = 1;  // strides stay 0
  return w;
}

template <typename I, bool kMul, typename T>
cudaError_t fwd_impl(const Dims4& out, const T* a, const Dims4& sa, const T* b, const Dims4& sb, T* y,
                     cudaStream_t stream) {
  const bool all[4] = {true, true, true, true};
  const Walk<I> w = make_walk<I>(all, out, bcast_strides(sa), bcast_strides(sb));
  const int64_t n = numel(out);
  return LK_LAUNCH((binary_fwd_kernel<I, kMul, T>), grid_for(n, kThreads, kElementwiseMaxBlocks), kThreads, 0, stream)(
      static_cast<I>(n), w, a, b, y);
}

template <typename I, bool kMul, typename T>
cudaError_t bwd_impl(const Dims4& out, const T* dy, const Dims4& s_self, const T* other, const Dims4& s_other,
                     T* d_self, cudaStream_t stream, bool acc) {
  // Output strides (dy is dense) and other's broadcast strides.
  Dims4 st_dy{};
  st_dy[3] = 1;
  for (int d = 2; d >= 0; --d) st_dy[d] = st_dy[d + 1] * out[d + 1];
  const Dims4 st_other = bcast_strides(s_other);
  bool kept[4], reduced[4];
  for (int d = 0; d < 4; ++d) {
    reduced[d] = s_self[d] == 1 && out[d] > 1;
    kept[d] = !reduced[d];
  }
  // Self's dims are the output's where kept (size-1 dims are skipped anyway).
  const Walk<I> dest = make_walk<I>(kept, s_self, st_dy, st_other);
  const Walk<I> red = make_walk<I>(reduced, out, st_dy, st_other);
  const int64_t n_dest = numel(s_self);
  int64_t n_red = 1;
  for (int d = 0; d < 4; ++d)
    if (reduced[d]) n_red *= out[d];

  // Own: nothing reduced, or the innermost reduced run is strided (outer dims
  // reduced) and there are enough destinations to keep the GPU busy.
  if (n_red == 1 || (red.st_a[0] != 1 && n_dest >= kOwnMinDests)) {
    const I red_outer = static_cast<I>(n_red / red.size[0]);
    return LK_LAUNCH((binary_bwd_own_kernel<I, kMul, T>), grid_for(n_dest, kThreads, kElementwiseMaxBlocks), kThreads,
                     0, stream)(static_cast<I>(n_dest), red_outer, dest, red, dy, other, d_self, acc);
  }
  if (n_red >= kBlockReduceMinLength && n_dest <= kBlockReduceMaxDests)
    return LK_LAUNCH((binary_bwd_coop_kernel<I, kMul, kThreads, T>), grid_for(n_dest, 1, kCoopMaxBlocks), kThreads, 0,
                     stream)(static_cast<I>(n_dest), static_cast<I>(n_red), dest, red, dy, other, d_self, acc);
  return LK_LAUNCH((binary_bwd_coop_kernel<I, kMul, 32, T>), grid_for(n_dest, kWarps, kCoopMaxBlocks), kThreads, 0,
                   stream)(static_cast<I>(n_dest), static_cast<I>(n_red), dest, red, dy, other, d_self, acc);
}

// 32-bit index arithmetic while every offset and loop counter fits with room
// for one grid stride.
bool fits_int32(int64_t n) { return n < (int64_t(1) << 30); }

}  // namespace

template <typename T>
cudaError_t binary_fwd(BinaryOp op, const Dims4& out, const T* a, const Dims4& sa, const T* b, const Dims4& sb, T* y,
                       cudaStream_t stream) {
  if (!broadcastable(sa, out) || !broadcastable(sb, out)) return cudaErrorInvalidValue;
  const int64_t n = numel(out);
  if (n == 0) return cudaSuccess;
  const bool mul = op == BinaryOp::Mul;
  if (fits_int32(n))
    return mul ? fwd_impl<int, true>(out, a, sa, b, sb, y, stream) : fwd_impl<int, false>(out, a, sa, b, sb, y, stream);
  return mul ? fwd_impl<int64_t, true>(out, a, sa, b, sb, y, stream)
             : fwd_impl<int64_t, false>(out, a, sa, b, sb, y, stream);
}

template <typename T>
cudaError_t binary_bwd(BinaryOp op, const Dims4& out, const T* dy, const Dims4& s_self, const T* other,
                       const Dims4& s_other, T* d_self, cudaStream_t stream, bool accumulate) {
  const bool mul = op == BinaryOp::Mul;
  if (!broadcastable(s_self, out) || (mul && (!broadcastable(s_other, out) || other == nullptr)))
    return cudaErrorInvalidValue;
  if (numel(out) == 0) return cudaSuccess;
  // Add never reads other: its shape is irrelevant.
  const Dims4 so = mul ? s_other : Dims4{1, 1, 1, 1};
  if (fits_int32(numel(out)))
    return mul ? bwd_impl<int, true>(out, dy, s_self, other, so, d_self, stream, accumulate)
               : bwd_impl<int, false>(out, dy, s_self, other, so, d_self, stream, accumulate);
  return mul ? bwd_impl<int64_t, true>(out, dy, s_self, other, so, d_self, stream, accumulate)
             : bwd_impl<int64_t, false>(out, dy, s_self, other, so, d_self, stream, accumulate);
}

template <typename T>
cudaError_t fill(int64_t n, float value, T* y, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return LK_LAUNCH(fill_kernel<T>, grid_for(n, kThreads, kElementwiseMaxBlocks), kThreads, 0, stream)(n, value, y);
}

cudaError_t fill(int64_t n, double value, double* y, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return LK_LAUNCH(fill_kernel<double>, grid_for(n, kThreads, kElementwiseMaxBlocks), kThreads, 0, stream)(n, value, y);
}

template <typename T>
cudaError_t axpy(int64_t n, float a, const T* x, T* y, cudaStream_t stream, bool accumulate) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return LK_LAUNCH(axpy_kernel<T>, grid_for(n, kThreads, kElementwiseMaxBlocks), kThreads, 0, stream)(n, a, x, y,
                                                                                                     accumulate);
}

template <typename T>
cudaError_t scale(int64_t n, float a, T* y, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return LK_LAUNCH(scale_kernel<T>, grid_for(n, kThreads, kElementwiseMaxBlocks), kThreads, 0, stream)(n, a, y);
}

template <typename S, typename D>
cudaError_t cast(int64_t n, const S* src, D* dst, cudaStream_t stream, bool accumulate) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return LK_LAUNCH((cast_kernel<S, D>), grid_for(n, kThreads, kElementwiseMaxBlocks), kThreads, 0, stream)(
      n, src, dst, accumulate);
}

#define LK_INST(T)                                                                                                 \
  template cudaError_t binary_fwd<T>(BinaryOp, const Dims4&, const T*, const Dims4&, const T*, const Dims4&, T*,   \
                                     cudaStream_t);                                                                \
  template cudaError_t binary_bwd<T>(BinaryOp, const Dims4&, const T*, const Dims4&, const T*, const Dims4&, T*,   \
                                     cudaStream_t, bool);                                                          \
  template cudaError_t fill<T>(int64_t, float, T*, cudaStream_t);                                                  \
  template cudaError_t axpy<T>(int64_t, float, const T*, T*, cudaStream_t, bool);                                  \
  template cudaError_t scale<T>(int64_t, float, T*, cudaStream_t);                                                 \
  template cudaError_t cast<T, float>(int64_t, const T*, float*, cudaStream_t, bool);                              \
  template cudaError_t cast<T, ::lk::bf16>(int64_t, const T*, ::lk::bf16*, cudaStream_t, bool);                    \
  template cudaError_t cast<T, ::lk::f16>(int64_t, const T*, ::lk::f16*, cudaStream_t, bool);
LK_INSTANTIATE_STORAGE(LK_INST)
#undef LK_INST

LK_CUDA_NAMESPACE_END
