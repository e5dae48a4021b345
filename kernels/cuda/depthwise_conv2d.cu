// Depthwise 2-D convolution, stride 1, kernel 5 or 7, any dilation. See
// depthwise_conv2d.h for the design; the launch shapes are chosen by
// fwd_shape / wgrad_shape below.
#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/depthwise_conv2d.h"
#include "kernels/cuda/warp_reduce.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxPlanesPerLaunch = 65535;  // gridDim.z limit
constexpr size_t kSmemBudget = 48 * 1024;

// ------------------------------------------------------------------ forward / backward data

// The tile of one plane in shared memory: rows x pitch floats, the output
// tile plus the halo (span = dil * (K - 1)) on both axes.
struct Tile {
  int tw, th;      // output tile: columns, rows
  int pitch, rows;  // input tile in shared memory
  int floats() const { return pitch * rows; }
};

// Output rows of thread row ty: base + j * dil for j < R, base = ty % dil +
// (ty / dil) * dil * R; with blockDim.y a multiple of dil (or R == 1) the
// threads cover the tile's tw x (blockDim.y * R) outputs exactly once. The
// outputs of a thread are a dilation apart, so output j and tap row ky read
// input row base + (j + ky) * dil: R + K - 1 rows feed R*K*K multiply-adds.
__device__ __forceinline__ int thread_base_row(int ty, int dil, int r) { return ty % dil + (ty / dil) * dil * r; }

// out[plane] = taps (*) in[plane] (+ bias), output (oy, ox) reading input
// (oy - pad + ky*dil, ox - pad + kx*dil), zero outside. flip reverses the
// taps (backward data); accumulate adds into out. Block (tw, by, pz): pz
// planes, each a tile of tw x by*R outputs. Grid (tiles x, tiles y, plane groups).
template <typename T, int K, int R>
__global__ void __launch_bounds__(kThreads)
    depthwise_conv2d_tiled(const T* __restrict__ in, const float* __restrict__ w, const float* __restrict__ bias,
                           T* __restrict__ out, int channels, int planes, int plane0, int in_h, int in_w, int out_h,
                           int out_w, int pad, int dil, int pitch, bool flip, bool accumulate) {
  float* smem = lk_dynamic_smem<float>();
  const int span = dil * (K - 1);
  const int tw = static_cast<int>(blockDim.x), by = static_cast<int>(blockDim.y), pz = static_cast<int>(blockDim.z);
  const int rows = by * R + span, tile = pitch * rows;
  const int tid = (static_cast<int>(threadIdx.z) * by + static_cast<int>(threadIdx.y)) * tw + static_cast<int>(threadIdx.x);
  const int nt = tw * by * pz;
  const int ox0 = static_cast<int>(blockIdx.x) * tw, oy0 = static_cast<int>(blockIdx.y) * by * R;
  const int pbase = plane0 + static_cast<int>(blockIdx.z) * pz;

  // Stage the pz input tiles with their halos (zero outside the plane).
  const int cols = tw + span;
  for (int i = tid; i < pz * rows * cols; i += nt) {
    const int z = i / (rows * cols), rc = i - z * rows * cols;
    const int r = rc / cols, s = rc - r * cols;
    const int iy = oy0 - pad + r, ix = ox0 - pad + s, plane = pbase + z;
    float v = 0.f;
    if (plane < planes && iy >= 0 && iy < in_h && ix >= 0 && ix < in_w)
      v = static_cast<float>(in[static_cast<size_t>(plane) * in_h * in_w + static_cast<size_t>(iy) * in_w + ix]);
    smem[z * tile + r * pitch + s] = v;
  }
  __syncthreads();

  const int plane = pbase + static_cast<int>(threadIdx.z);
  if (plane >= planes) return;  // no barrier follows
  const int c = plane % channels;
  float taps[K * K];
  LK_UNROLL
  for (int i = 0; i < K * K; ++i) taps[i] = w[c * K * K + (flip ? K * K - 1 - i : i)];
  const float b0 = bias ? bias[c] : 0.f;
  float acc[R];
  LK_UNROLL
  for (int j = 0; j < R; ++j) acc[j] = b0;

  const int base = thread_base_row(static_cast<int>(threadIdx.y), dil, R);
  const float* t = smem + static_cast<int>(threadIdx.z) * tile + base * pitch + static_cast<int>(threadIdx.x);
  LK_UNROLL
  for (int m = 0; m < R + K - 1; ++m) {  // input row base + m*dil
    float v[K];
    LK_UNROLL
    for (int kx = 0; kx < K; ++kx) v[kx] = t[m * dil * pitch + kx * dil];
    LK_UNROLL
    for (int j = 0; j < R; ++j) {
      const int ky = m - j;
      if (ky < 0 || ky >= K) continue;  // compile-time after unrolling
      LK_UNROLL
      for (int kx = 0; kx < K; ++kx) acc[j] += taps[ky * K + kx] * v[kx];
    }
  }
  const int ox = ox0 + static_cast<int>(threadIdx.x);
  if (ox >= out_w) return;
  T* o = out + static_cast<size_t>(plane) * out_h * out_w + ox;
  LK_UNROLL
  for (int j = 0; j < R; ++j) {
    const int oy = oy0 + base + j * dil;
    if (oy >= out_h) continue;
    T* p = o + static_cast<size_t>(oy) * out_w;
    *p = static_cast<T>(accumulate ? static_cast<float>(*p) + acc[j] : acc[j]);
  }
}

// The launch of depthwise_conv2d_tiled for one geometry.
struct FwdShape {
  int r = 0;  // outputs per thread (1, 4 or 8); 0: does not fit
  dim3 block;
  Tile tile{};
  size_t smem = 0;
  unsigned tiles_x = 0, tiles_y = 0;
};

int tile_width(int64_t out_w) { return out_w > 16 ? 32 : out_w > 8 ? 16 : 8; }

// The smallest pitch >= cols whose rows step the banks so that the rows a
// warp reads at once fall on distinct banks: with tw < 32 a warp spans
// 32 / tw thread rows, rows_step input rows apart.
int bank_free_pitch(int cols, int tw, int rows_step) {
  if (tw >= 32) return cols;  // a warp reads 32 consecutive floats of one row
  for (int p = cols; p < cols + 32; ++p)
    if ((p * rows_step) % 32 == tw) return p;
  return cols;
}

FwdShape fwd_shape(int64_t k, int64_t dil, int64_t out_h, int64_t out_w, int64_t planes) {
  FwdShape s;
  if (dil * (k - 1) > 4096) return s;
  const int tw = tile_width(out_w), span = static_cast<int>(dil * (k - 1)), d = static_cast<int>(dil);
  const int max_by = kThreads / tw;
  // Rows per thread: 8 or 4 where the plane is tall enough and whole groups
  // of dil thread rows fit; else 1 (small planes: several planes per block;
  // large dilations: fewer thread rows, as the shared memory allows).
  for (int r : {8, 4, 1}) {
    if (r > 1 && (out_h < 8 * r || d > max_by)) continue;
    // A warp of tw < 32 spans thread rows whose first input rows are r apart
    // (dilation 1) or 1 apart (r == 1); other dilations are not arranged for.
    const int pitch = bank_free_pitch(tw + span, tw, r > 1 && d == 1 ? r : 1);
    const int by_top = r > 1 ? d * (max_by / d) : static_cast<int>(out_h < max_by ? out_h : max_by);
    for (int by = by_top; by >= 1; by -= r > 1 ? d : 1) {
      const Tile t{tw, by * r, pitch, by * r + span};
      const size_t bytes = static_cast<size_t>(t.floats()) * sizeof(float);
      if (bytes > kSmemBudget) continue;
      int pz = r > 1 ? 1 : max_by / by;
      const int64_t fit = static_cast<int64_t>(kSmemBudget / bytes);
      if (pz > fit) pz = static_cast<int>(fit);
      if (pz > planes) pz = static_cast<int>(planes);
      if (pz < 1) pz = 1;
      s.r = r;
      s.block = dim3(static_cast<unsigned>(tw), static_cast<unsigned>(by), static_cast<unsigned>(pz));
      s.tile = t;
      s.smem = bytes * static_cast<size_t>(pz);
      s.tiles_x = static_cast<unsigned>((out_w + tw - 1) / tw);
      s.tiles_y = static_cast<unsigned>((out_h + t.th - 1) / t.th);
      return s;
    }
  }
  return s;
}

template <typename T, int K, int R>
cudaError_t run_fwd(const FwdShape& s, const T* in, const float* w, const float* bias, T* out, int64_t planes,
                    int channels, int in_h, int in_w, int out_h, int out_w, int pad, int dil, bool flip,
                    bool accumulate, cudaStream_t stream) {
  const int64_t per_launch = static_cast<int64_t>(kMaxPlanesPerLaunch) * s.block.z;
  for (int64_t p0 = 0; p0 < planes; p0 += per_launch) {
    const int64_t np = planes - p0 < per_launch ? planes - p0 : per_launch;
    const dim3 grid(s.tiles_x, s.tiles_y, static_cast<unsigned>((np + s.block.z - 1) / s.block.z));
    const cudaError_t e = LK_LAUNCH((depthwise_conv2d_tiled<T, K, R>), grid, s.block, s.smem, stream)(
        in, w, bias, out, channels, static_cast<int>(planes), static_cast<int>(p0), in_h, in_w, out_h, out_w, pad, dil,
        s.tile.pitch, flip, accumulate);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

template <typename T, int K>
cudaError_t dispatch_r(const FwdShape& s, const T* in, const float* w, const float* bias, T* out, int64_t planes,
                       int channels, int in_h, int in_w, int out_h, int out_w, int pad, int dil, bool flip,
                       bool accumulate, cudaStream_t stream) {
  switch (s.r) {
    case 8:
      return run_fwd<T, K, 8>(s, in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip,
                              accumulate, stream);
    case 4:
      return run_fwd<T, K, 4>(s, in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip,
                              accumulate, stream);
    default:
      return run_fwd<T, K, 1>(s, in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip,
                              accumulate, stream);
  }
}

template <typename T>
cudaError_t dispatch(const ConvGeom& g, const T* in, const float* w, const float* bias, T* out, int in_h, int in_w,
                     int out_h, int out_w, int pad, bool flip, bool accumulate, cudaStream_t stream) {
  const int64_t planes = g.n * g.c_in;
  const FwdShape s = fwd_shape(g.kh, g.dil, out_h, out_w, planes);
  if (s.r == 0) return cudaErrorInvalidValue;
  const int channels = static_cast<int>(g.c_in), dil = static_cast<int>(g.dil);
  if (g.kh == 5)
    return dispatch_r<T, 5>(s, in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip,
                            accumulate, stream);
  return dispatch_r<T, 7>(s, in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip, accumulate,
                          stream);
}

// ------------------------------------------------------------------ weight gradient

constexpr int kWgradRows = 8;  // output rows per thread, at most
constexpr int kSlots = 8;      // values reduced per tap row: K taps, the dy sum, padding

// Warp reduce-scatter of 8 per-lane values: afterwards lane l holds in v[0]
// the warp's total of value l & 7 (lanes l, l+8, l+16, l+24 the same). A
// fixed butterfly (3 halving steps, then 2 plain ones): deterministic.
template <int H>
__device__ __forceinline__ void scatter_step(float (&v)[kSlots], int lane) {
  const bool up = (lane & H) != 0;
  LK_UNROLL
  for (int j = 0; j < H; ++j) {
    const float keep = up ? v[j + H] : v[j];
    const float send = up ? v[j] : v[j + H];
    v[j] = keep + __shfl_xor_sync(kFullWarpMask, send, H);
  }
}
__device__ __forceinline__ float warp_reduce_scatter8(float (&v)[kSlots], int lane) {
  scatter_step<4>(v, lane);
  scatter_step<2>(v, lane);
  scatter_step<1>(v, lane);
  float s = v[0];
  s += __shfl_xor_sync(kFullWarpMask, s, 8);
  s += __shfl_xor_sync(kFullWarpMask, s, 16);
  return s;
}

// Grid (tiles x, tiles y, planes), block (tw, kThreads / tw): the output tile
// is tw columns by by * rpt rows (rpt <= kWgradRows, as the shared memory
// allows), thread (tx, ty) takes rows ty, ty + by, ... of column tx, its dy
// values in registers. One pass per tap
// row ky keeps only K accumulators per thread (the 49 of a 7x7 at once cost
// 112-116 registers): acc[kx] = sum dy * x(row + ky*dil, col + kx*dil) over
// the thread's outputs (+ the dy sum in slot K at ky == 0), reduced across
// the warp (reduce-scatter) into shared memory; the warps are then added in
// order. Writes the block's K*K tap sums and dy sum to
// part[(plane * tiles + tile) * (K*K + 1) + i].
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
    depthwise_conv2d_wgrad_tiled(const T* __restrict__ dy, const T* __restrict__ x, float* __restrict__ part,
                                 int plane0, int in_h, int in_w, int out_h, int out_w, int pad, int dil, int pitch,
                                 int rpt) {
  constexpr int NV = K * K + 1;
  LK_SHARED(float, red, [kWarps][K * kSlots]);
  float* tile = lk_dynamic_smem<float>();
  const int tw = static_cast<int>(blockDim.x), by = static_cast<int>(blockDim.y);
  const int span = dil * (K - 1), th = by * rpt, rows = th + span, cols = tw + span;
  const int plane = plane0 + static_cast<int>(blockIdx.z);
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int tid = ty * tw + tx, lane = tid & 31, warp = tid >> 5, nt = tw * by;
  const int ox0 = static_cast<int>(blockIdx.x) * tw, oy0 = static_cast<int>(blockIdx.y) * th;

  const T* src = x + static_cast<size_t>(plane) * in_h * in_w;
  for (int i = tid; i < rows * cols; i += nt) {
    const int r = i / cols, s = i - r * cols;
    const int iy = oy0 - pad + r, ix = ox0 - pad + s;
    tile[r * pitch + s] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w)
                              ? static_cast<float>(src[static_cast<size_t>(iy) * in_w + ix])
                              : 0.f;
  }
  // This thread's dy values (zero outside the output).
  const int ox = ox0 + tx;
  const T* g = dy + static_cast<size_t>(plane) * out_h * out_w;
  float d[kWgradRows];
  LK_UNROLL
  for (int i = 0; i < kWgradRows; ++i) {
    const int oy = oy0 + ty + i * by;
    d[i] = (i < rpt && ox < out_w && oy < out_h) ? static_cast<float>(g[static_cast<size_t>(oy) * out_w + ox]) : 0.f;
  }
  __syncthreads();

  for (int ky = 0; ky < K; ++ky) {
    float acc[kSlots];
    LK_UNROLL
    for (int s = 0; s < kSlots; ++s) acc[s] = 0.f;
    LK_UNROLL
    for (int i = 0; i < kWgradRows; ++i) {
      if (i >= rpt) break;
      const float* t = tile + (ty + i * by + ky * dil) * pitch + tx;
      LK_UNROLL
      for (int kx = 0; kx < K; ++kx) acc[kx] += d[i] * t[kx * dil];
      if (ky == 0) acc[K] += d[i];
    }
    const float s = warp_reduce_scatter8(acc, lane);
    if (lane < kSlots && (lane < K || (ky == 0 && lane == K))) red[warp][ky * kSlots + lane] = s;
  }
  __syncthreads();
  if (tid < NV) {
    // Value tid: tap (tid / K, tid % K), or the dy sum (slot K of tap row 0).
    const int slot = tid < K * K ? (tid / K) * kSlots + tid % K : K;
    float s = 0.f;
    for (int wi = 0; wi < nt / 32; ++wi) s += red[wi][slot];
    const size_t tiles = static_cast<size_t>(gridDim.x) * gridDim.y;
    part[(static_cast<size_t>(plane) * tiles + blockIdx.y * gridDim.x + blockIdx.x) * NV + tid] = s;
  }
}

// Block c (blockDim >= NV): thread i adds value i of channel c's partials over
// images and tiles in order (double), then dw[c][i] (+)= (db[c] for i == K*K).
template <int K>
__global__ void __launch_bounds__(64)
    depthwise_conv2d_wgrad_finalize(const float* __restrict__ part, int n, int channels, int tiles,
                                    float* __restrict__ dw, float* __restrict__ db, bool acc_dw, bool acc_db) {
  constexpr int KK = K * K, NV = KK + 1;
  const int c = static_cast<int>(blockIdx.x), i = static_cast<int>(threadIdx.x);
  if (i >= NV) return;
  double s = 0.0;
  for (int img = 0; img < n; ++img) {
    const float* q = part + (static_cast<size_t>(img) * channels + c) * tiles * NV + i;
    for (int t = 0; t < tiles; ++t) s += q[static_cast<size_t>(t) * NV];
  }
  if (i < KK) {
    float& o = dw[static_cast<size_t>(c) * KK + i];
    o = static_cast<float>(s) + (acc_dw ? o : 0.f);
  } else if (db) {
    db[c] = static_cast<float>(s) + (acc_db ? db[c] : 0.f);
  }
}

struct WgradShape {
  int rpt = 0;  // rows per thread; 0: does not fit
  dim3 block;
  int pitch = 0;
  unsigned tiles_x = 0, tiles_y = 0;
  size_t smem = 0;
};

// The geometry checks every pass shares (not the shared-memory fit).
bool geometry_ok(const ConvGeom& g) {
  if (!g.depthwise() || g.stride != 1 || g.kh != g.kw || (g.kh != 5 && g.kh != 7)) return false;
  if (g.dil < 1 || g.dil > 1024 || g.pad < 0 || g.oh <= 0 || g.ow <= 0 || g.n <= 0 || g.c_in <= 0) return false;
  return g.h * g.w <= INT_MAX && g.oh * g.ow <= INT_MAX && g.n * g.c_in <= INT_MAX && g.pad <= INT_MAX &&
         g.dil * (g.kh - 1) <= INT_MAX / 2;
}

WgradShape wgrad_shape(const ConvGeom& g) {
  WgradShape s;
  if (!geometry_ok(g) || g.dil * (g.kh - 1) > 4096) return s;
  const int tw = tile_width(g.ow);
  const int span = static_cast<int>(g.dil * (g.kh - 1));
  // Consecutive thread rows of a warp read input rows one apart.
  const int pitch = bank_free_pitch(tw + span, tw, 1);
  const size_t red = static_cast<size_t>(kWarps) * g.kh * kSlots * sizeof(float);  // the static part
  // The most thread rows (whole warps) and rows per thread that fit.
  for (int by = kThreads / tw; by >= 32 / tw; by -= 32 / tw) {
    const int64_t need = (g.oh + by - 1) / by;
    for (int64_t r = need < kWgradRows ? need : kWgradRows; r >= 1; --r) {
      const size_t smem = static_cast<size_t>(pitch) * static_cast<size_t>(by * r + span) * sizeof(float);
      if (smem + red > kSmemBudget) continue;
      s.rpt = static_cast<int>(r);
      s.pitch = pitch;
      s.smem = smem;
      s.block = dim3(static_cast<unsigned>(tw), static_cast<unsigned>(by));
      s.tiles_x = static_cast<unsigned>((g.ow + tw - 1) / tw);
      s.tiles_y = static_cast<unsigned>((g.oh + by * r - 1) / (by * r));
      return s;
    }
  }
  return s;
}

template <typename T, int K>
cudaError_t run_wgrad(const ConvGeom& g, const WgradShape& sh, const T* dy, const T* x, float* dw, float* db,
                      float* part, bool acc_dw, bool acc_db, cudaStream_t stream) {
  const int64_t planes = g.n * g.c_in;
  for (int64_t p0 = 0; p0 < planes; p0 += kMaxPlanesPerLaunch) {
    const int64_t np = planes - p0 < kMaxPlanesPerLaunch ? planes - p0 : kMaxPlanesPerLaunch;
    const dim3 grid(sh.tiles_x, sh.tiles_y, static_cast<unsigned>(np));
    const cudaError_t e = LK_LAUNCH((depthwise_conv2d_wgrad_tiled<T, K>), grid, sh.block, sh.smem, stream)(
        dy, x, part, static_cast<int>(p0), static_cast<int>(g.h), static_cast<int>(g.w), static_cast<int>(g.oh),
        static_cast<int>(g.ow), static_cast<int>(g.pad), static_cast<int>(g.dil), sh.pitch, sh.rpt);
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(depthwise_conv2d_wgrad_finalize<K>, static_cast<unsigned>(g.c_in), 64, 0, stream)(
      part, static_cast<int>(g.n), static_cast<int>(g.c_in), static_cast<int>(sh.tiles_x * sh.tiles_y), dw, db, acc_dw,
      acc_db);
}

}  // namespace

bool depthwise_conv2d_supported(const ConvGeom& g) {
  // Every pass must find a launch shape within the shared-memory budget.
  return geometry_ok(g) && fwd_shape(g.kh, g.dil, g.oh, g.ow, 1).r != 0 && fwd_shape(g.kh, g.dil, g.h, g.w, 1).r != 0 &&
         wgrad_shape(g).rpt != 0;
}

template <typename T>
cudaError_t depthwise_conv2d_fwd(const ConvGeom& g, const T* x, const float* w, const float* b, T* y, bool accumulate,
                                 cudaStream_t stream) {
  if (!depthwise_conv2d_supported(g)) return cudaErrorInvalidValue;
  return dispatch<T>(g, x, w, b, y, static_cast<int>(g.h), static_cast<int>(g.w), static_cast<int>(g.oh),
                     static_cast<int>(g.ow), static_cast<int>(g.pad), false, accumulate, stream);
}

template <typename T>
cudaError_t depthwise_conv2d_bwd_data(const ConvGeom& g, const T* dy, const float* w, T* dx, cudaStream_t stream,
                                      bool accumulate) {
  if (!depthwise_conv2d_supported(g)) return cudaErrorInvalidValue;
  // dx(iy, ix) = sum over taps of dy(iy - pad' + ky*dil, ...) * w(K-1-ky, K-1-kx), pad' = dil*(K-1) - pad.
  const int pad_t = static_cast<int>(g.dil * (g.kh - 1) - g.pad);
  return dispatch<T>(g, dy, w, nullptr, dx, static_cast<int>(g.oh), static_cast<int>(g.ow), static_cast<int>(g.h),
                     static_cast<int>(g.w), pad_t, true, accumulate, stream);
}

size_t depthwise_conv2d_bwd_weight_workspace_bytes(const ConvGeom& g) {
  const WgradShape sh = wgrad_shape(g);
  if (sh.rpt == 0) return 0;
  return static_cast<size_t>(g.n * g.c_in) * sh.tiles_x * sh.tiles_y * static_cast<size_t>(g.kh * g.kw + 1) *
         sizeof(float);
}

template <typename T>
cudaError_t depthwise_conv2d_bwd_weight(const ConvGeom& g, const T* dy, const T* x, float* dw, float* db,
                                        void* workspace, size_t workspace_bytes, cudaStream_t stream, bool acc_dw,
                                        bool acc_db) {
  const WgradShape sh = wgrad_shape(g);
  if (sh.rpt == 0 || !depthwise_conv2d_supported(g) || !workspace || reinterpret_cast<uintptr_t>(workspace) % alignof(float) != 0 ||
      workspace_bytes < depthwise_conv2d_bwd_weight_workspace_bytes(g))
    return cudaErrorInvalidValue;
  auto* part = static_cast<float*>(workspace);
  if (g.kh == 5) return run_wgrad<T, 5>(g, sh, dy, x, dw, db, part, acc_dw, acc_db, stream);
  return run_wgrad<T, 7>(g, sh, dy, x, dw, db, part, acc_dw, acc_db, stream);
}

#define LK_DEPTHWISE_INSTANTIATE(T)                                                                                 \
  template cudaError_t depthwise_conv2d_fwd<T>(const ConvGeom&, const T*, const float*, const float*, T*, bool,     \
                                               cudaStream_t);                                                       \
  template cudaError_t depthwise_conv2d_bwd_data<T>(const ConvGeom&, const T*, const float*, T*, cudaStream_t, bool); \
  template cudaError_t depthwise_conv2d_bwd_weight<T>(const ConvGeom&, const T*, const T*, float*, float*, void*,   \
                                                      size_t, cudaStream_t, bool, bool);
LK_INSTANTIATE_STORAGE(LK_DEPTHWISE_INSTANTIATE)
#undef LK_DEPTHWISE_INSTANTIATE

LK_CUDA_NAMESPACE_END
