// Depthwise 2-D convolution, stride 1, kernel 5 or 7, any dilation: a
// shared-memory tile of the input plane with its halo per 16x16 output tile.
#include <climits>

#include "kernels/cuda/cuda_compat.cuh"
#include "kernels/cuda/depthwise_conv2d.h"

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
    dw_conv_tiled(const float* __restrict__ in, const float* __restrict__ w, const float* __restrict__ bias,
                  float* __restrict__ out, int channels, int plane0, int in_h, int in_w, int out_h, int out_w, int pad,
                  int dil, bool flip, bool accumulate) {
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
    const cudaError_t e = LK_LAUNCH(dw_conv_tiled<K>, grid, block, smem, stream)(
        in, w, bias, out, channels, static_cast<int>(p0), in_h, in_w, out_h, out_w, pad, dil, flip, accumulate);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t dispatch(const cpu::ConvGeom& g, const float* in, const float* w, const float* bias, float* out, int in_h,
                     int in_w, int out_h, int out_w, int pad, bool flip, bool accumulate, cudaStream_t stream) {
  const int64_t planes = g.n * g.c_in;
  const int channels = static_cast<int>(g.c_in), dil = static_cast<int>(g.dil);
  if (g.kh == 5)
    return run<5>(in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip, accumulate, stream);
  return run<7>(in, w, bias, out, planes, channels, in_h, in_w, out_h, out_w, pad, dil, flip, accumulate, stream);
}

}  // namespace

bool depthwise_conv2d_supported(const cpu::ConvGeom& g) {
  if (!g.depthwise() || g.stride != 1 || g.kh != g.kw || (g.kh != 5 && g.kh != 7)) return false;
  if (g.dil < 1 || g.dil > 1024 || g.pad < 0 || g.oh <= 0 || g.ow <= 0 || g.n <= 0 || g.c_in <= 0) return false;
  if (tile_bytes(static_cast<int>(g.kh), g.dil) + g.kh * g.kw * sizeof(float) > kSmemBudget) return false;
  const int64_t span = g.dil * (g.kh - 1);
  return g.h * g.w <= INT_MAX && g.oh * g.ow <= INT_MAX && g.n * g.c_in <= INT_MAX && g.pad <= INT_MAX &&
         span - g.pad >= INT_MIN;
}

cudaError_t depthwise_conv2d_fwd(const cpu::ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                                 bool accumulate, cudaStream_t stream) {
  if (!depthwise_conv2d_supported(g)) return cudaErrorInvalidValue;
  return dispatch(g, x, w, b, y, static_cast<int>(g.h), static_cast<int>(g.w), static_cast<int>(g.oh),
                  static_cast<int>(g.ow), static_cast<int>(g.pad), false, accumulate, stream);
}

cudaError_t depthwise_conv2d_bwd_data(const cpu::ConvGeom& g, const float* dy, const float* w, float* dx,
                                      cudaStream_t stream) {
  if (!depthwise_conv2d_supported(g)) return cudaErrorInvalidValue;
  // dx(iy, ix) = sum over taps of dy(iy - pad' + ky*dil, ...) * w(K-1-ky, K-1-kx), pad' = dil*(K-1) - pad.
  const int pad_t = static_cast<int>(g.dil * (g.kh - 1) - g.pad);
  return dispatch(g, dy, w, nullptr, dx, static_cast<int>(g.oh), static_cast<int>(g.ow), static_cast<int>(g.h),
                  static_cast<int>(g.w), pad_t, true, true, stream);
}

LK_CUDA_NAMESPACE_END
