#include "kernels/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/depthwise_conv2d.h"
#include "kernels/gemm.h"
#include "kernels/onednn_conv.h"

namespace lk::cpu {

// ------------------------------------------------------------------ reference

template <typename T>
void conv2d_fwd_ref(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate) {
  const i64 cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  for (i64 n = 0; n < g.n; ++n)
    for (i64 co = 0; co < g.c_out; ++co) {
      const i64 grp = co / cog;
      for (i64 oy = 0; oy < g.oh; ++oy)
        for (i64 ox = 0; ox < g.ow; ++ox) {
          T acc = b ? b[co] : T(0);
          for (i64 cl = 0; cl < cig; ++cl) {
            const i64 ci = grp * cig + cl;
            for (i64 ky = 0; ky < g.kh; ++ky)
              for (i64 kx = 0; kx < g.kw; ++kx) {
                const i64 iy = oy * g.stride - g.pad + ky * g.dil;
                const i64 ix = ox * g.stride - g.pad + kx * g.dil;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                acc += x[((n * g.c_in + ci) * g.h + iy) * g.w + ix] *
                       w[((co * cig + cl) * g.kh + ky) * g.kw + kx];
              }
          }
          T& out = y[((n * g.c_out + co) * g.oh + oy) * g.ow + ox];
          out = accumulate ? out + acc : acc;
        }
    }
}

template <typename T>
void conv2d_bwd_data_ref(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  const i64 cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  for (i64 n = 0; n < g.n; ++n)
    for (i64 co = 0; co < g.c_out; ++co) {
      const i64 grp = co / cog;
      for (i64 oy = 0; oy < g.oh; ++oy)
        for (i64 ox = 0; ox < g.ow; ++ox) {
          const T d = dy[((n * g.c_out + co) * g.oh + oy) * g.ow + ox];
          for (i64 cl = 0; cl < cig; ++cl)
            for (i64 ky = 0; ky < g.kh; ++ky)
              for (i64 kx = 0; kx < g.kw; ++kx) {
                const i64 iy = oy * g.stride - g.pad + ky * g.dil;
                const i64 ix = ox * g.stride - g.pad + kx * g.dil;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                dx[((n * g.c_in + grp * cig + cl) * g.h + iy) * g.w + ix] +=
                    d * w[((co * cig + cl) * g.kh + ky) * g.kw + kx];
              }
        }
    }
}

template <typename T>
void conv2d_bwd_weight_ref(const ConvGeom& g, const T* dy, const T* x, T* dw, T* db) {
  const i64 cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  for (i64 n = 0; n < g.n; ++n)
    for (i64 co = 0; co < g.c_out; ++co) {
      const i64 grp = co / cog;
      for (i64 oy = 0; oy < g.oh; ++oy)
        for (i64 ox = 0; ox < g.ow; ++ox) {
          const T d = dy[((n * g.c_out + co) * g.oh + oy) * g.ow + ox];
          if (db) db[co] += d;
          for (i64 cl = 0; cl < cig; ++cl)
            for (i64 ky = 0; ky < g.kh; ++ky)
              for (i64 kx = 0; kx < g.kw; ++kx) {
                const i64 iy = oy * g.stride - g.pad + ky * g.dil;
                const i64 ix = ox * g.stride - g.pad + kx * g.dil;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                dw[((co * cig + cl) * g.kh + ky) * g.kw + kx] +=
                    d * x[((n * g.c_in + grp * cig + cl) * g.h + iy) * g.w + ix];
              }
        }
    }
}

template <typename T>
void channel_sum_acc(i64 n, i64 c, i64 hw, const T* dy, T* db) {
#pragma omp parallel for
  for (i64 ch = 0; ch < c; ++ch) {
    T s = 0;
    for (i64 i = 0; i < n; ++i) {
      const T* p = dy + (i * c + ch) * hw;
      for (i64 k = 0; k < hw; ++k) s += p[k];
    }
    db[ch] += s;
  }
}

// ------------------------------------------------------------------ im2col + gemm

// cols (cig*KH*KW, OH*OW) for one image and one group.
template <typename T>
static void im2col(const ConvGeom& g, const T* x, T* cols) {
  const i64 cig = g.c_in / g.groups, P = g.oh * g.ow;
  for (i64 cl = 0; cl < cig; ++cl)
    for (i64 ky = 0; ky < g.kh; ++ky)
      for (i64 kx = 0; kx < g.kw; ++kx) {
        T* row = cols + ((cl * g.kh + ky) * g.kw + kx) * P;
        const T* xp = x + cl * g.h * g.w;
        i64 y0, y1, x0, x1;
        tap_range(ky, g.h, g.oh, g.stride, g.pad, g.dil, y0, y1);
        tap_range(kx, g.w, g.ow, g.stride, g.pad, g.dil, x0, x1);
        const i64 offy = ky * g.dil - g.pad, offx = kx * g.dil - g.pad;
        for (i64 oy = 0; oy < g.oh; ++oy) {
          T* r = row + oy * g.ow;
          if (oy < y0 || oy >= y1) {
            std::fill(r, r + g.ow, T(0));
            continue;
          }
          const T* xr = xp + (oy * g.stride + offy) * g.w + offx;
          std::fill(r, r + x0, T(0));
          for (i64 ox = x0; ox < x1; ++ox) r[ox] = xr[ox * g.stride];
          std::fill(r + x1, r + g.ow, T(0));
        }
      }
}

// dx += col2im(cols) for one image and one group.
template <typename T>
static void col2im_acc(const ConvGeom& g, const T* cols, T* dx) {
  const i64 cig = g.c_in / g.groups, P = g.oh * g.ow;
  for (i64 cl = 0; cl < cig; ++cl)
    for (i64 ky = 0; ky < g.kh; ++ky)
      for (i64 kx = 0; kx < g.kw; ++kx) {
        const T* row = cols + ((cl * g.kh + ky) * g.kw + kx) * P;
        T* xp = dx + cl * g.h * g.w;
        i64 y0, y1, x0, x1;
        tap_range(ky, g.h, g.oh, g.stride, g.pad, g.dil, y0, y1);
        tap_range(kx, g.w, g.ow, g.stride, g.pad, g.dil, x0, x1);
        const i64 offy = ky * g.dil - g.pad, offx = kx * g.dil - g.pad;
        for (i64 oy = y0; oy < y1; ++oy) {
          T* xr = xp + (oy * g.stride + offy) * g.w + offx;
          const T* r = row + oy * g.ow;
          for (i64 ox = x0; ox < x1; ++ox) xr[ox * g.stride] += r[ox];
        }
      }
}

static bool is_pointwise(const ConvGeom& g) {
  return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0;
}

bool onednn_takes(const ConvGeom& g) { return !g.depthwise() && !is_pointwise(g); }

template <typename T>
void conv2d_fwd(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate) {
  if (g.depthwise()) return depthwise_conv2d_fwd(g, x, w, b, y, accumulate);
  const i64 cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  const i64 K = cig * g.kh * g.kw, P = g.oh * g.ow;
  const bool pw = is_pointwise(g);
  // Images in parallel when there are enough of them (BLAS then runs on the
  // calling thread); otherwise one image at a time with a threaded BLAS.
  const bool par = g.n > 1;
#pragma omp parallel if (par)
  {
    std::vector<T> cols(pw ? 0 : K * P);
#pragma omp for
    for (i64 n = 0; n < g.n; ++n)
      for (i64 grp = 0; grp < g.groups; ++grp) {
        const T* xg = x + (n * g.c_in + grp * cig) * g.h * g.w;
        T* yg = y + (n * g.c_out + grp * cog) * P;
        if (!pw) im2col(g, xg, cols.data());
        const T* B = pw ? xg : cols.data();
        if (b) {
          for (i64 co = 0; co < cog; ++co) {
            T* r = yg + co * P;
            const T bv = b[grp * cog + co];
            if (accumulate) for (i64 i = 0; i < P; ++i) r[i] += bv;
            else std::fill(r, r + P, bv);
          }
        }
        const T beta = (b || accumulate) ? T(1) : T(0);
        gemm<T>(false, false, cog, P, K, T(1), w + grp * cog * K, K, B, P, beta, yg, P);
      }
  }
}

template <typename T>
void conv2d_bwd_data(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  if (g.depthwise()) return depthwise_conv2d_bwd_data(g, dy, w, dx);
  const i64 cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  const i64 K = cig * g.kh * g.kw, P = g.oh * g.ow;
  const bool pw = is_pointwise(g);
#pragma omp parallel if (g.n > 1)
  {
    std::vector<T> cols(pw ? 0 : K * P);
#pragma omp for
    for (i64 n = 0; n < g.n; ++n)
      for (i64 grp = 0; grp < g.groups; ++grp) {
        const T* dyg = dy + (n * g.c_out + grp * cog) * P;
        T* dxg = dx + (n * g.c_in + grp * cig) * g.h * g.w;
        if (pw) {
          gemm<T>(true, false, K, P, cog, T(1), w + grp * cog * K, K, dyg, P, T(1), dxg, P);
        } else {
          gemm<T>(true, false, K, P, cog, T(1), w + grp * cog * K, K, dyg, P, T(0), cols.data(), P);
          col2im_acc(g, cols.data(), dxg);
        }
      }
  }
}

template <typename T>
void conv2d_bwd_weight(const ConvGeom& g, const T* dy, const T* x, T* dw, T* db) {
  if (g.depthwise()) return depthwise_conv2d_bwd_weight(g, dy, x, dw, db);
  const i64 cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  const i64 K = cig * g.kh * g.kw, P = g.oh * g.ow;
  const bool pw = is_pointwise(g);
  if (pw && g.groups == 1 && g.n > 1) {
    // Images in parallel, each thread summing its images into its own
    // partial gradient (one BLAS call per image on the calling thread), then
    // the partials added into dw in thread order.
    const int nt = std::min<int>(omp_get_max_threads(), static_cast<int>(g.n));
    std::vector<T> part(static_cast<size_t>(nt) * cog * K);
#pragma omp parallel num_threads(nt)
    {
      const i64 t = omp_get_thread_num(), lo = g.n * t / nt, hi = g.n * (t + 1) / nt;
      T* pt = part.data() + t * cog * K;
      for (i64 n = lo; n < hi; ++n)
        gemm<T>(false, true, cog, K, P, T(1), dy + n * g.c_out * P, P, x + n * g.c_in * P, P, T(n > lo), pt, K);
#pragma omp barrier
#pragma omp for
      for (i64 i = 0; i < cog * K; ++i) {
        T acc = dw[i];
        for (int u = 0; u < nt; ++u) acc += part[u * cog * K + i];
        dw[i] = acc;
      }
    }
    if (db) channel_sum_acc(g.n, g.c_out, P, dy, db);
    return;
  }
  // Sequential over images (the weight gradient is shared); BLAS threads.
  std::vector<T> cols(pw ? 0 : K * P);
  for (i64 n = 0; n < g.n; ++n)
    for (i64 grp = 0; grp < g.groups; ++grp) {
      const T* dyg = dy + (n * g.c_out + grp * cog) * P;
      const T* xg = x + (n * g.c_in + grp * cig) * g.h * g.w;
      if (!pw) im2col(g, xg, cols.data());
      const T* B = pw ? xg : cols.data();
      gemm<T>(false, true, cog, K, P, T(1), dyg, P, B, P, T(1), dw + grp * cog * K, K);
    }
  if (db) channel_sum_acc(g.n, g.c_out, P, dy, db);
}

// ------------------------------------------------------------------ dispatch

// oneDNN takes float32 convolutions that are not depthwise (our direct
// loops run those) when it accepts the geometry (it returns false if not).
template <typename T>
void conv2d_fwd(ConvImpl impl, const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate) {
  if (impl == ConvImpl::PlainLoops) return conv2d_fwd_ref(g, x, w, b, y, accumulate);
  if constexpr (std::is_same_v<T, float>)
    if (impl == ConvImpl::OneDnn && onednn_takes(g) && onednn_conv2d_fwd(g, x, w, b, y, accumulate)) return;
  conv2d_fwd(g, x, w, b, y, accumulate);
}

template <typename T>
void conv2d_bwd_data(ConvImpl impl, const ConvGeom& g, const T* dy, const T* w, T* dx) {
  if (impl == ConvImpl::PlainLoops) return conv2d_bwd_data_ref(g, dy, w, dx);
  if constexpr (std::is_same_v<T, float>)
    if (impl == ConvImpl::OneDnn && onednn_takes(g) && onednn_conv2d_bwd_data(g, dy, w, dx)) return;
  conv2d_bwd_data(g, dy, w, dx);
}

template <typename T>
void conv2d_bwd_weight(ConvImpl impl, const ConvGeom& g, const T* dy, const T* x, T* dw, T* db) {
  if (impl == ConvImpl::PlainLoops) return conv2d_bwd_weight_ref(g, dy, x, dw, db);
  if constexpr (std::is_same_v<T, float>)
    if (impl == ConvImpl::OneDnn && onednn_takes(g) && onednn_conv2d_bwd_weight(g, dy, x, dw, db)) return;
  conv2d_bwd_weight(g, dy, x, dw, db);
}

#define LK_INST(T)                                                                     \
  template void conv2d_fwd_ref<T>(const ConvGeom&, const T*, const T*, const T*, T*, bool); \
  template void conv2d_fwd<T>(const ConvGeom&, const T*, const T*, const T*, T*, bool);     \
  template void conv2d_bwd_data_ref<T>(const ConvGeom&, const T*, const T*, T*);            \
  template void conv2d_bwd_data<T>(const ConvGeom&, const T*, const T*, T*);                \
  template void conv2d_bwd_weight_ref<T>(const ConvGeom&, const T*, const T*, T*, T*);      \
  template void conv2d_bwd_weight<T>(const ConvGeom&, const T*, const T*, T*, T*);          \
  template void channel_sum_acc<T>(i64, i64, i64, const T*, T*);                         \
  template void conv2d_fwd<T>(ConvImpl, const ConvGeom&, const T*, const T*, const T*, T*, bool); \
  template void conv2d_bwd_data<T>(ConvImpl, const ConvGeom&, const T*, const T*, T*);      \
  template void conv2d_bwd_weight<T>(ConvImpl, const ConvGeom&, const T*, const T*, T*, T*);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
