// Depthwise 2-D convolution, stride 1, kernel 5 or 7, any dilation: a
// shared-memory tile of the input plane with its halo per 16x16 output tile.
#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/depthwise_conv2d.h"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kTile = kDepthwiseTile;
constexpr int kThreads = kTile * kTile;
constexpr int kMaxPlanesPerLaunch = 65535;  // gridDim.z limit
constexpr size_t kSmemBudget = 48 * 1024;

// out[plane] (out_h x out_w) = taps (*) in[plane] (in_h x in_w), where output
// (oy, ox) reads input (oy - pad + ky*dil, ox - pad + kx*dil); zero outside.
// flip reverses the taps (backward data); accumulate adds into out.
// Grid: (tiles along x, tiles along y, planes), block: (kTile, kTile).
template <int K>
__global__ void __launch_bounds__(kThreads)
    depthwise_conv2d_tiled(const float* __restrict__ in, const float* __restrict__ w, const float* __restrict__ bias,
                           float* __restrict__ out, int channels, int plane0, int in_h, int in_w, int out_h, int out_w,
                           int pad, int dil, bool flip, bool accumulate) {
  LK_SHARED(float, taps, [K * K]);
  float* tile = lk_dynamic_smem<float>();
  const int span = dil * (K - 1);
  const int tw = kTile + span, th = kTile + span;
  const int plane = plane0 + static_cast<int>(blockIdx.z);
  const int c = plane % channels;
  const int tid = static_cast<int>(threadIdx.y) * kTile + static_cast<int>(threadIdx.x);
  const int ox0 = static_cast<int>(blockIdx.x) * kTile, oy0 = static_cast<int>(blockIdx.y) * kTile;

  for (int i = tid; i < K * K; i += kThreads) taps[i] = __ldg(w + c * K * K + (flip ? K * K - 1 - i : i));
  const float* src = in + static_cast<size_t>(plane) * in_h * in_w;
  for (int i = tid; i < th * tw; i += kThreads) {
    const int r = i / tw, s = i - r * tw;
    const int iy = oy0 - pad + r, ix = ox0 - pad + s;
    tile[i] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) ? __ldg(src + static_cast<size_t>(iy) * in_w + ix) : 0.f;
  }
  __syncthreads();

  const int ox = ox0 + static_cast<int>(threadIdx.x), oy = oy0 + static_cast<int>(threadIdx.y);
  if (ox >= out_w || oy >= out_h) return;
  float acc = bias ? __ldg(bias + c) : 0.f;
  const float* t = tile + static_cast<int>(threadIdx.y) * tw + static_cast<int>(threadIdx.x);
  LK_UNROLL
  for (int ky = 0; ky < K; ++ky) {
    LK_UNROLL
    for (int kx = 0; kx < K; ++kx) acc += taps[ky * K + kx] * t[ky * dil * tw + kx * dil];
  }
  float* o = out + static_cast<size_t>(plane) * out_h * out_w + static_cast<size_t>(oy) * out_w + ox;
  *o = accumulate ? *o + acc : acc;
}

size_t tile_bytes(int k, int64_t dil) {
  const int64_t side = kTile + dil * (k - 1);
  return static_cast<size_t>(side * side) * sizeof(float);
}

template <int K>
cudaError_t run(const float* in, const float* w, const float* bias, float* out, int64_t planes, int channels, int in_h,
                int in_w, int out_h, int out_w, int pad, int dil, bool flip, bool accumulate, cudaStream_t stream) {
  const size_t smem = tile_bytes(K, dil);
  const dim3 block(kTile, kTile);
  for (int64_t p0 = 0; p0 < planes; p0 += kMaxPlanesPerLaunch) {
    const int64_t np = planes - p0 < kMaxPlanesPerLaunch ? planes - p0 : kMaxPlanesPerLaunch;
    const dim3 grid((out_w + kTile - 1) / kTile, (out_h + kTile - 1) / kTile, static_cast<unsigned>(np));
    const cudaError_t e = LK_LAUNCH(depthwise_conv2d_tiled<K>, grid, block, smem, stream)(
        in, w, bias, out, channels, static_cast<int>(p0), in_h, in_w, out_h, out_w, pad, dil, flip, accumulate);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t dispatch(const ConvGeom& g, const float* in, const float* w, const float* bias, float* out, int in_h,
                     int in_w, int out_h, int out_w, int pad, bool flip, bool accumulate, cudaStream_t stream) {
  const int64_t planes = g.n * g.c_in;
  const int channels = static_cast<int>(g.c_in), dil = static_cast<int>(g.dil);
  if (g.kh == 5)
    return run<5>(in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip, accumulate, stream);
  return run<7>(in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip, accumulate, stream);
}

// ------------------------------------------------------------------ weight gradient

constexpr int kWarps = kThreads / 32;
constexpr int kMaxRows = 4;  // output rows per thread in the weight-gradient pass

// Values per thread of the weight gradient: K*K taps and the dy sum, padded
// to whole groups of 32 for the warp reduce-scatter.
__host__ __device__ constexpr int wgrad_values(int k) { return k * k + 1; }
__host__ __device__ constexpr int wgrad_groups(int k) { return (wgrad_values(k) + 31) / 32; }

// Warp reduce-scatter of G groups of 32 per-lane values: afterwards v[32*g]
// of lane l holds the warp's total of value 32*g + l. 31 shuffles per group
// (instead of 32*5 for 32 plain tree reductions); a fixed butterfly, so the
// sums are deterministic. Step H: lanes with bit H set keep the upper half
// of the H-pair window, the others the lower, each adding its partner's copy.
// Template recursion keeps every index a compile-time constant (registers).
template <int Base, int H, int N>
__device__ __forceinline__ void reduce_scatter_step(float (&v)[N], int lane) {
  const bool up = (lane & H) != 0;
  LK_UNROLL
  for (int j = 0; j < H; ++j) {
    const float keep = up ? v[Base + j + H] : v[Base + j];
    const float send = up ? v[Base + j] : v[Base + j + H];
    v[Base + j] = keep + __shfl_xor_sync(kFullWarpMask, send, H);
  }
  if constexpr (H > 1) reduce_scatter_step<Base, H / 2>(v, lane);
}
template <int G, int N>
__device__ __forceinline__ void warp_reduce_scatter(float (&v)[N], int lane) {
  reduce_scatter_step<32 * (G - 1), 16>(v, lane);
  if constexpr (G > 1) warp_reduce_scatter<G - 1>(v, lane);
}

// Grid (tiles along x, tiles along y, planes), block (kTile, kTile): the
// output tile is kTile wide and kTile*rows tall, thread (tx, ty) takes rows
// ty, ty + kTile, ... Writes the block's K*K tap sums and dy sum to
// part[(plane * tiles + tile) * (K*K + 1) + i]. At least 2 blocks per SM:
// caps the registers at 128 (sm_90's heuristic otherwise picks 64 and
// spills the 7x7 accumulators).
template <int K>
__global__ void __launch_bounds__(kThreads, 2)
    depthwise_conv2d_wgrad_tiled(const float* __restrict__ dy, const float* __restrict__ x, float* __restrict__ part,
                                 int plane0, int in_h, int in_w, int out_h, int out_w, int pad, int dil, int rows) {
  constexpr int KK = K * K, NV = wgrad_values(K), G = wgrad_groups(K);
  LK_SHARED(float, red, [kWarps][32 * G]);
  float* tile = lk_dynamic_smem<float>();
  const int span = dil * (K - 1);
  const int tw = kTile + span, th = kTile * rows + span;
  const int plane = plane0 + static_cast<int>(blockIdx.z);
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int tid = ty * kTile + tx, lane = tid & 31, warp = tid >> 5;
  const int ox0 = static_cast<int>(blockIdx.x) * kTile, oy0 = static_cast<int>(blockIdx.y) * kTile * rows;

  const float* src = x + static_cast<size_t>(plane) * in_h * in_w;
  for (int i = tid; i < th * tw; i += kThreads) {
    const int r = i / tw, s = i - r * tw;
    const int iy = oy0 - pad + r, ix = ox0 - pad + s;
    tile[i] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) ? __ldg(src + static_cast<size_t>(iy) * in_w + ix) : 0.f;
  }
  __syncthreads();

  float acc[32 * G];
  LK_UNROLL
  for (int i = 0; i < 32 * G; ++i) acc[i] = 0.f;
  const int ox = ox0 + tx;
  const float* g = dy + static_cast<size_t>(plane) * out_h * out_w;
  for (int r = 0; r < rows; ++r) {
    const int ly = ty + r * kTile, oy = oy0 + ly;
    if (ox >= out_w || oy >= out_h) continue;
    const float d = __ldg(g + static_cast<size_t>(oy) * out_w + ox);
    acc[KK] += d;
    const float* t = tile + ly * tw + tx;
    LK_UNROLL
    for (int ky = 0; ky < K; ++ky) {
      LK_UNROLL
      for (int kx = 0; kx < K; ++kx) acc[ky * K + kx] += d * t[ky * dil * tw + kx * dil];
    }
  }
  warp_reduce_scatter<G>(acc, lane);
  LK_UNROLL
  for (int i = 0; i < G; ++i) red[warp][32 * i + lane] = acc[32 * i];
  __syncthreads();
  if (tid < NV) {
    float s = 0.f;
    for (int w = 0; w < kWarps; ++w) s += red[w][tid];
    const size_t tiles = static_cast<size_t>(gridDim.x) * gridDim.y;
    part[(static_cast<size_t>(plane) * tiles + blockIdx.y * gridDim.x + blockIdx.x) * NV + tid] = s;
  }
}

// Block c (blockDim >= NV): thread i adds value i of channel c's partials over
// images and tiles in order (double), then dw[c][i] += (db[c] for i == K*K).
template <int K>
__global__ void __launch_bounds__(64)
    depthwise_conv2d_wgrad_finalize(const float* __restrict__ part, int n, int channels, int tiles,
                                    float* __restrict__ dw, float* __restrict__ db, bool acc_dw, bool acc_db) {
  constexpr int KK = K * K, NV = wgrad_values(K);
  const int c = static_cast<int>(blockIdx.x), i = static_cast<int>(threadIdx.x);
  if (i >= NV) return;
  double s = 0.0;
  for (int img = 0; img < n; ++img) {
    const float* q = part + (static_cast<size_t>(img) * channels + c) * tiles * NV + i;
    for (int t = 0; t < tiles; ++t) s += q[static_cast<size_t>(t) * NV];
  }
  if (i < KK)
    lk_put_grad(dw[static_cast<size_t>(c) * KK + i], static_cast<float>(s), acc_dw);
  else if (db)
    lk_put_grad(db[c], static_cast<float>(s), acc_db);
}

struct WgradShape {
  int rows = 0;  // 0: does not fit
  unsigned tiles_x = 0, tiles_y = 0;
  size_t smem = 0;
};

WgradShape wgrad_shape(const ConvGeom& g) {
  WgradShape s;
  if (!depthwise_conv2d_supported(g)) return s;
  const int64_t k = g.kh, span = g.dil * (k - 1);
  const size_t red = static_cast<size_t>(kWarps) * 32 * ((k * k + 1 + 31) / 32) * sizeof(float);
  const int64_t need = (g.oh + kTile - 1) / kTile;
  for (int64_t r = need < kMaxRows ? need : kMaxRows; r >= 1; --r) {
    const size_t smem = static_cast<size_t>((kTile + span) * (kTile * r + span)) * sizeof(float);
    if (smem + red <= kSmemBudget) {
      s.rows = static_cast<int>(r);
      s.smem = smem;
      s.tiles_x = static_cast<unsigned>((g.ow + kTile - 1) / kTile);
      s.tiles_y = static_cast<unsigned>((g.oh + kTile * r - 1) / (kTile * r));
      return s;
    }
  }
  return s;
}

template <int K>
cudaError_t run_wgrad(const ConvGeom& g, const WgradShape& sh, const float* dy, const float* x, float* dw,
                      float* db, float* part, cudaStream_t stream, bool acc_dw, bool acc_db) {
  const int64_t planes = g.n * g.c_in;
  const dim3 block(kTile, kTile);
  for (int64_t p0 = 0; p0 < planes; p0 += kMaxPlanesPerLaunch) {
    const int64_t np = planes - p0 < kMaxPlanesPerLaunch ? planes - p0 : kMaxPlanesPerLaunch;
    const dim3 grid(sh.tiles_x, sh.tiles_y, static_cast<unsigned>(np));
    const cudaError_t e = LK_LAUNCH(depthwise_conv2d_wgrad_tiled<K>, grid, block, sh.smem, stream)(
        dy, x, part, static_cast<int>(p0), static_cast<int>(g.h), static_cast<int>(g.w), static_cast<int>(g.oh),
        static_cast<int>(g.ow), static_cast<int>(g.pad), static_cast<int>(g.dil), sh.rows);
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(depthwise_conv2d_wgrad_finalize<K>, static_cast<unsigned>(g.c_in), 64, 0, stream)(
      part, static_cast<int>(g.n), static_cast<int>(g.c_in), static_cast<int>(sh.tiles_x * sh.tiles_y), dw, db, acc_dw,
      acc_db);
}

}  // namespace

bool depthwise_conv2d_supported(const ConvGeom& g) {
  if (!g.depthwise() || g.stride != 1 || g.kh != g.kw || (g.kh != 5 && g.kh != 7)) return false;
  if (g.dil < 1 || g.dil > 1024 || g.pad < 0 || g.oh <= 0 || g.ow <= 0 || g.n <= 0 || g.c_in <= 0) return false;
  if (tile_bytes(static_cast<int>(g.kh), g.dil) + g.kh * g.kw * sizeof(float) > kSmemBudget) return false;
  const int64_t span = g.dil * (g.kh - 1);
  return g.h * g.w <= INT_MAX && g.oh * g.ow <= INT_MAX && g.n * g.c_in <= INT_MAX && g.pad <= INT_MAX &&
         span - g.pad >= INT_MIN;
}

cudaError_t depthwise_conv2d_fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                                 bool accumulate, cudaStream_t stream) {
  if (!depthwise_conv2d_supported(g)) return cudaErrorInvalidValue;
  return dispatch(g, x, w, b, y, static_cast<int>(g.h), static_cast<int>(g.w), static_cast<int>(g.oh),
                  static_cast<int>(g.ow), static_cast<int>(g.pad), false, accumulate, stream);
}

cudaError_t depthwise_conv2d_bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                                      cudaStream_t stream, bool accumulate) {
  if (!depthwise_conv2d_supported(g)) return cudaErrorInvalidValue;
  // dx(iy, ix) = sum over taps of dy(iy - pad' + ky*dil, ...) * w(K-1-ky, K-1-kx), pad' = dil*(K-1) - pad.
  const int pad_t = static_cast<int>(g.dil * (g.kh - 1) - g.pad);
  return dispatch(g, dy, w, nullptr, dx, static_cast<int>(g.oh), static_cast<int>(g.ow), static_cast<int>(g.h),
                  static_cast<int>(g.w), pad_t, true, accumulate, stream);
}


size_t depthwise_conv2d_bwd_weight_workspace_bytes(const ConvGeom& g) {
  const WgradShape sh = wgrad_shape(g);
  if (sh.rows == 0) return 0;
  return static_cast<size_t>(g.n * g.c_in) * sh.tiles_x * sh.tiles_y * static_cast<size_t>(g.kh * g.kw + 1) *
         sizeof(float);
}

cudaError_t depthwise_conv2d_bwd_weight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db,
                                        void* workspace, size_t workspace_bytes, cudaStream_t stream, bool acc_dw,
                                        bool acc_db) {
  const WgradShape sh = wgrad_shape(g);
  if (sh.rows == 0 || !workspace || reinterpret_cast<uintptr_t>(workspace) % alignof(float) != 0 ||
      workspace_bytes < depthwise_conv2d_bwd_weight_workspace_bytes(g))
    return cudaErrorInvalidValue;
  auto* part = static_cast<float*>(workspace);
  if (g.kh == 5) return run_wgrad<5>(g, sh, dy, x, dw, db, part, stream, acc_dw, acc_db);
  return run_wgrad<7>(g, sh, dy, x, dw, db, part, stream, acc_dw, acc_db);
}

LK_CUDA_NAMESPACE_END
