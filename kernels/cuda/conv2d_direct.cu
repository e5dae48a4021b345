// Direct convolution kernels (see conv2d_direct.h).
#include "kernels/cuda/conv2d_direct.h"
#include "kernels/cuda/cuda_compat.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 4096;

// The geometry in int, as kernels read it (sizes are checked to fit).
struct G {
  int n, ci, h, w, co, kh, kw, stride, pad, dil, groups, oh, ow;
};

G to_g(const ConvGeom& g) {
  return {int(g.n), int(g.c_in), int(g.h), int(g.w), int(g.c_out), int(g.kh), int(g.kw), int(g.stride),
          int(g.pad), int(g.dil), int(g.groups), int(g.oh), int(g.ow)};
}

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < kMaxBlocks ? b : kMaxBlocks);
}

__global__ void __launch_bounds__(kThreads)
    fwd_kernel(G g, const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
               float* __restrict__ y, bool accumulate) {
  const int cig = g.ci / g.groups, cog = g.co / g.groups;
  const int total = g.n * g.co * g.oh * g.ow;  // < 2^30 (fits_int)
  const int step = int(blockDim.x * gridDim.x);
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < total; i += step) {
    const int ox = i % g.ow, oy = (i / g.ow) % g.oh;
    const int co = (i / (g.ow * g.oh)) % g.co, n = i / (g.ow * g.oh * g.co);
    const int grp = co / cog;
    float acc = b ? b[co] : 0.f;
    for (int cl = 0; cl < cig; ++cl) {
      const float* xp = x + (n * g.ci + grp * cig + cl) * g.h * g.w;
      const float* wp = w + (co * cig + cl) * g.kh * g.kw;
      for (int ky = 0; ky < g.kh; ++ky) {
        const int iy = oy * g.stride - g.pad + ky * g.dil;
        if (iy < 0 || iy >= g.h) continue;
        for (int kx = 0; kx < g.kw; ++kx) {
          const int ix = ox * g.stride - g.pad + kx * g.dil;
          if (ix < 0 || ix >= g.w) continue;
          acc += xp[iy * g.w + ix] * wp[ky * g.kw + kx];
        }
      }
    }
    y[i] = accumulate ? y[i] + acc : acc;
  }
}

// One thread per input element: the outputs that read x[n, ci, iy, ix].
__global__ void __launch_bounds__(kThreads, 4)  // without the hint sm_90 caps at 32 registers and spills
    bwd_data_kernel(G g, const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                    bool accumulate) {
  const int cig = g.ci / g.groups, cog = g.co / g.groups;
  const int total = g.n * g.ci * g.h * g.w;  // < 2^30 (fits_int)
  const int step = int(blockDim.x * gridDim.x);
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < total; i += step) {
    const int ix = i % g.w, iy = (i / g.w) % g.h;
    const int ci = (i / (g.w * g.h)) % g.ci, n = i / (g.w * g.h * g.ci);
    const int grp = ci / cig, cl = ci % cig;
    float acc = 0.f;
    for (int col = 0; col < cog; ++col) {
      const int co = grp * cog + col;
      const float* dyp = dy + (n * g.co + co) * g.oh * g.ow;
      const float* wp = w + (co * cig + cl) * g.kh * g.kw;
      for (int ky = 0; ky < g.kh; ++ky) {
        const int ty = iy + g.pad - ky * g.dil;  // = oy * stride
        if (ty < 0 || ty % g.stride) continue;
        const int oy = ty / g.stride;
        if (oy >= g.oh) continue;
        for (int kx = 0; kx < g.kw; ++kx) {
          const int tx = ix + g.pad - kx * g.dil;
          if (tx < 0 || tx % g.stride) continue;
          const int ox = tx / g.stride;
          if (ox >= g.ow) continue;
          acc += dyp[oy * g.ow + ox] * wp[ky * g.kw + kx];
        }
      }
    }
    lk_put_grad(dx[i], acc, accumulate);
  }
}

// Block-wide sum of one value per thread, fixed order (deterministic).
__device__ float block_sum(float v) {
  LK_SHARED(float, part, [kThreads]);
  part[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  const float total = part[0];
  __syncthreads();  // part may be reused by the caller's next call
  return total;
}

// One thread per weight element (co, cl, ky, kx), summing over the batch and
// the output plane in order (deterministic, no barrier: cheap to emulate).
__global__ void __launch_bounds__(kThreads)
    bwd_weight_kernel(G g, const float* __restrict__ dy, const float* __restrict__ x, float* __restrict__ dw,
                      bool accumulate) {
  const int cig = g.ci / g.groups, cog = g.co / g.groups;
  const int64_t weights = int64_t(g.co) * cig * g.kh * g.kw;
  const int64_t per_image = int64_t(g.oh) * g.ow;
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  for (int64_t wi = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; wi < weights; wi += step) {
    const int kx = int(wi % g.kw), ky = int((wi / g.kw) % g.kh);
    const int cl = int((wi / (int64_t(g.kw) * g.kh)) % cig), co = int(wi / (int64_t(g.kw) * g.kh * cig));
    const int ci = (co / cog) * cig + cl;
    float acc = 0.f;
    for (int n = 0; n < g.n; ++n) {
      const float* dyp = dy + (int64_t(n) * g.co + co) * per_image;
      const float* xp = x + (int64_t(n) * g.ci + ci) * g.h * g.w;
      for (int oy = 0; oy < g.oh; ++oy) {
        const int iy = oy * g.stride - g.pad + ky * g.dil;
        if (iy < 0 || iy >= g.h) continue;
        for (int ox = 0; ox < g.ow; ++ox) {
          const int ix = ox * g.stride - g.pad + kx * g.dil;
          if (ix < 0 || ix >= g.w) continue;
          acc += dyp[oy * g.ow + ox] * xp[iy * g.w + ix];
        }
      }
    }
    lk_put_grad(dw[wi], acc, accumulate);
  }
}

// One block per channel: db[c] += sum over n and the plane of dy[n, c] (dy
// of any storage type, the sum in float).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    channel_sum_kernel(int64_t n, int64_t c, int64_t hw, const T* __restrict__ dy, float* __restrict__ db,
                       bool accumulate) {
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    float acc = 0.f;
    for (int64_t j = threadIdx.x; j < n * hw; j += blockDim.x)
      acc += static_cast<float>(dy[((j / hw) * c + ch) * hw + j % hw]);
    const float total = block_sum(acc);
    if (threadIdx.x == 0) lk_put_grad(db[ch], total, accumulate);
  }
}

bool fits_int(const ConvGeom& g) {
  const int64_t lim = int64_t(1) << 30;
  return g.n * g.c_in * g.h * g.w < lim && g.n * g.c_out * g.oh * g.ow < lim && g.c_out * g.c_in * g.kh * g.kw < lim;
}

}  // namespace

cudaError_t conv2d_direct_fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                              bool accumulate, cudaStream_t stream) {
  if (!fits_int(g)) return cudaErrorInvalidValue;
  const int64_t total = g.n * g.c_out * g.oh * g.ow;
  if (total == 0) return cudaSuccess;
  return LK_LAUNCH(fwd_kernel, blocks_for(total), kThreads, 0, stream)(to_g(g), x, w, b, y, accumulate);
}

cudaError_t conv2d_direct_bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                                   cudaStream_t stream, bool accumulate) {
  if (!fits_int(g)) return cudaErrorInvalidValue;
  const int64_t total = g.n * g.c_in * g.h * g.w;
  if (total == 0) return cudaSuccess;
  return LK_LAUNCH(bwd_data_kernel, blocks_for(total), kThreads, 0, stream)(to_g(g), dy, w, dx, accumulate);
}

cudaError_t conv2d_direct_bwd_weight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db,
                                     cudaStream_t stream, bool acc_dw, bool acc_db) {
  if (!fits_int(g)) return cudaErrorInvalidValue;
  const int64_t weights = g.c_out * (g.c_in / g.groups) * g.kh * g.kw;
  if (weights > 0) {
    const cudaError_t e =
        LK_LAUNCH(bwd_weight_kernel, blocks_for(weights), kThreads, 0, stream)(to_g(g), dy, x, dw, acc_dw);
    if (e != cudaSuccess) return e;
  }
  if (db) return channel_sum_acc(g.n, g.c_out, g.oh * g.ow, dy, db, stream, acc_db);
  return cudaSuccess;
}

template <typename T>
cudaError_t channel_sum_acc(int64_t n, int64_t c, int64_t hw, const T* dy, float* db, cudaStream_t stream,
                            bool accumulate) {
  if (c == 0) return cudaSuccess;
  const int blocks = static_cast<int>(c < kMaxBlocks ? c : kMaxBlocks);
  return LK_LAUNCH(channel_sum_kernel<T>, blocks, kThreads, 0, stream)(n, c, hw, dy, db, accumulate);
}

#define LK_INST(T) template cudaError_t channel_sum_acc<T>(int64_t, int64_t, int64_t, const T*, float*, cudaStream_t, \
                                                                   bool);
LK_INSTANTIATE_STORAGE(LK_INST)
#undef LK_INST

LK_CUDA_NAMESPACE_END
