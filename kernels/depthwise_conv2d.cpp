#include "kernels/depthwise_conv2d.h"

#include <vector>

namespace lk::cpu {

namespace {

// ------------------------------------------------------------------ any stride

// Kernel tap (ky, kx): the output rows [y0, y1) and columns [x0, x1) whose
// input lies inside the image; output (oy, ox) reads input
// (oy*stride + offy, ox*stride + offx).
struct Tap {
  i64 ky, kx, y0, y1, x0, x1, offy, offx;
};

// f(tap) for every tap of the kernel, rows then columns.
template <class F>
inline void for_each_tap(const ConvGeom& g, F&& f) {
  for (i64 ky = 0; ky < g.kh; ++ky) {
    i64 y0, y1;
    tap_range(ky, g.h, g.oh, g.stride, g.pad, g.dil, y0, y1);
    for (i64 kx = 0; kx < g.kw; ++kx) {
      i64 x0, x1;
      tap_range(kx, g.w, g.ow, g.stride, g.pad, g.dil, x0, x1);
      f(Tap{ky, kx, y0, y1, x0, x1, ky * g.dil - g.pad, kx * g.dil - g.pad});
    }
  }
}

template <typename T>
void fwd_any_stride(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate) {
#pragma omp parallel for
  for (i64 nc = 0; nc < g.n * g.c_in; ++nc) {
    const i64 c = nc % g.c_in;
    const T* xp = x + nc * g.h * g.w;
    T* yp = y + nc * g.oh * g.ow;
    const T* wp = w + c * g.kh * g.kw;
    const T bias = b ? b[c] : T(0);
    if (!accumulate) std::fill(yp, yp + g.oh * g.ow, bias);
    else for (i64 i = 0; i < g.oh * g.ow; ++i) yp[i] += bias;
    for_each_tap(g, [&](const Tap& t) {
      const T wv = wp[t.ky * g.kw + t.kx];
      for (i64 oy = t.y0; oy < t.y1; ++oy) {
        const T* xr = xp + (oy * g.stride + t.offy) * g.w + t.offx;
        T* yr = yp + oy * g.ow;
        if (g.stride == 1)
          for (i64 ox = t.x0; ox < t.x1; ++ox) yr[ox] += wv * xr[ox];
        else
          for (i64 ox = t.x0; ox < t.x1; ++ox) yr[ox] += wv * xr[ox * g.stride];
      }
    });
  }
}

template <typename T>
void bwd_data_any_stride(const ConvGeom& g, const T* dy, const T* w, T* dx) {
#pragma omp parallel for
  for (i64 nc = 0; nc < g.n * g.c_in; ++nc) {
    const i64 c = nc % g.c_in;
    T* xp = dx + nc * g.h * g.w;
    const T* yp = dy + nc * g.oh * g.ow;
    const T* wp = w + c * g.kh * g.kw;
    for_each_tap(g, [&](const Tap& t) {
      const T wv = wp[t.ky * g.kw + t.kx];
      for (i64 oy = t.y0; oy < t.y1; ++oy) {
        T* xr = xp + (oy * g.stride + t.offy) * g.w + t.offx;
        const T* yr = yp + oy * g.ow;
        for (i64 ox = t.x0; ox < t.x1; ++ox) xr[ox * g.stride] += wv * yr[ox];
      }
    });
  }
}

template <typename T>
void bwd_weight_any_stride(const ConvGeom& g, const T* dy, const T* x, T* dw, T* db) {
#pragma omp parallel for
  for (i64 c = 0; c < g.c_in; ++c) {
    T* wp = dw + c * g.kh * g.kw;
    for (i64 n = 0; n < g.n; ++n) {
      const T* xp = x + (n * g.c_in + c) * g.h * g.w;
      const T* yp = dy + (n * g.c_in + c) * g.oh * g.ow;
      if (db) {
        T s = 0;
        for (i64 i = 0; i < g.oh * g.ow; ++i) s += yp[i];
        db[c] += s;
      }
      for_each_tap(g, [&](const Tap& t) {
        T s = 0;
        for (i64 oy = t.y0; oy < t.y1; ++oy) {
          const T* xr = xp + (oy * g.stride + t.offy) * g.w + t.offx;
          const T* yr = yp + oy * g.ow;
          for (i64 ox = t.x0; ox < t.x1; ++ox) s += yr[ox] * xr[ox * g.stride];
        }
        wp[t.ky * g.kw + t.kx] += s;
      });
    }
  }
}


// ------------------------------------------------------------------ stride 1

// A per-thread buffer holding one zero-padded plane: rows [top, top + h) and
// columns [left, left + w) are the plane, the rest zero.
template <typename T>
const T* padded(const T* src, i64 h, i64 w, i64 top, i64 left, i64 rows, i64 cols) {
  thread_local std::vector<T> buf;
  buf.assign(static_cast<size_t>(rows * cols), T(0));
  for (i64 r = 0; r < h; ++r) std::copy(src + r * w, src + (r + 1) * w, buf.data() + (r + top) * cols + left);
  return buf.data();
}

// The stride-1 kernels need the padding inside the kernel's reach.
bool stride1(const ConvGeom& g) {
  return g.stride == 1 && g.pad <= (g.kh - 1) * g.dil && g.pad <= (g.kw - 1) * g.dil;
}

template <typename T>
void fwd_stride1(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate) {
  const i64 rows = g.oh + (g.kh - 1) * g.dil, cols = g.ow + (g.kw - 1) * g.dil;
#pragma omp parallel for schedule(static)
  for (i64 nc = 0; nc < g.n * g.c_in; ++nc) {
    const i64 c = nc % g.c_in;
    const T* xp = padded(x + nc * g.h * g.w, g.h, g.w, g.pad, g.pad, rows, cols);
    T* yp = y + nc * g.oh * g.ow;
    const T* wp = w + c * g.kh * g.kw;
    const T bias = b ? b[c] : T(0);
    for (i64 oy = 0; oy < g.oh; ++oy) {
      T* yr = yp + oy * g.ow;
      if (accumulate)
        for (i64 ox = 0; ox < g.ow; ++ox) yr[ox] += bias;
      else
        std::fill(yr, yr + g.ow, bias);
      for (i64 ky = 0; ky < g.kh; ++ky) {
        const T* xr = xp + (oy + ky * g.dil) * cols;
        for (i64 kx = 0; kx < g.kw; ++kx) {
          const T wv = wp[ky * g.kw + kx];
          const T* xs = xr + kx * g.dil;
#pragma omp simd
          for (i64 ox = 0; ox < g.ow; ++ox) yr[ox] += wv * xs[ox];
        }
      }
    }
  }
}

// dx[i] += sum_k w[k] dy[i - k*dil + pad]: the padded dy read backwards.
template <typename T>
void bwd_data_stride1(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  const i64 ty = (g.kh - 1) * g.dil - g.pad, tx = (g.kw - 1) * g.dil - g.pad;
  const i64 rows = g.h + (g.kh - 1) * g.dil, cols = g.w + (g.kw - 1) * g.dil;
#pragma omp parallel for schedule(static)
  for (i64 nc = 0; nc < g.n * g.c_in; ++nc) {
    const i64 c = nc % g.c_in;
    const T* dp = padded(dy + nc * g.oh * g.ow, g.oh, g.ow, ty, tx, rows, cols);
    T* xp = dx + nc * g.h * g.w;
    const T* wp = w + c * g.kh * g.kw;
    for (i64 iy = 0; iy < g.h; ++iy) {
      T* xr = xp + iy * g.w;
      for (i64 ky = 0; ky < g.kh; ++ky) {
        const T* dr = dp + (iy + (g.kh - 1 - ky) * g.dil) * cols;
        for (i64 kx = 0; kx < g.kw; ++kx) {
          const T wv = wp[ky * g.kw + kx];
          const T* ds = dr + (g.kw - 1 - kx) * g.dil;
#pragma omp simd
          for (i64 ix = 0; ix < g.w; ++ix) xr[ix] += wv * ds[ix];
        }
      }
    }
  }
}

template <typename T>
void bwd_weight_stride1(const ConvGeom& g, const T* dy, const T* x, T* dw, T* db) {
  const i64 rows = g.oh + (g.kh - 1) * g.dil, cols = g.ow + (g.kw - 1) * g.dil, taps = g.kh * g.kw;
#pragma omp parallel for schedule(static)
  for (i64 c = 0; c < g.c_in; ++c) {
    std::vector<T> acc(static_cast<size_t>(taps), T(0));
    T bias_acc = 0;
    for (i64 n = 0; n < g.n; ++n) {
      const T* xp = padded(x + (n * g.c_in + c) * g.h * g.w, g.h, g.w, g.pad, g.pad, rows, cols);
      const T* yp = dy + (n * g.c_in + c) * g.oh * g.ow;
      for (i64 oy = 0; oy < g.oh; ++oy) {
        const T* yr = yp + oy * g.ow;
        if (db) {
          T s = 0;
#pragma omp simd reduction(+ : s)
          for (i64 ox = 0; ox < g.ow; ++ox) s += yr[ox];
          bias_acc += s;
        }
        for (i64 ky = 0; ky < g.kh; ++ky) {
          const T* xr = xp + (oy + ky * g.dil) * cols;
          for (i64 kx = 0; kx < g.kw; ++kx) {
            const T* xs = xr + kx * g.dil;
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (i64 ox = 0; ox < g.ow; ++ox) s += yr[ox] * xs[ox];
            acc[static_cast<size_t>(ky * g.kw + kx)] += s;
          }
        }
      }
    }
    T* wp = dw + c * taps;
    for (i64 t = 0; t < taps; ++t) wp[t] += acc[static_cast<size_t>(t)];
    if (db) db[c] += bias_acc;
  }
}

}  // namespace

template <typename T>
void depthwise_conv2d_fwd(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate) {
  if (stride1(g)) fwd_stride1(g, x, w, b, y, accumulate);
  else fwd_any_stride(g, x, w, b, y, accumulate);
}

template <typename T>
void depthwise_conv2d_bwd_data(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  if (stride1(g)) bwd_data_stride1(g, dy, w, dx);
  else bwd_data_any_stride(g, dy, w, dx);
}

template <typename T>
void depthwise_conv2d_bwd_weight(const ConvGeom& g, const T* dy, const T* x, T* dw, T* db) {
  if (stride1(g)) bwd_weight_stride1(g, dy, x, dw, db);
  else bwd_weight_any_stride(g, dy, x, dw, db);
}

#define LK_INST(T)                                                                                         \
  template void depthwise_conv2d_fwd<T>(const ConvGeom&, const T*, const T*, const T*, T*, bool);           \
  template void depthwise_conv2d_bwd_data<T>(const ConvGeom&, const T*, const T*, T*);                      \
  template void depthwise_conv2d_bwd_weight<T>(const ConvGeom&, const T*, const T*, T*, T*);
LK_INSTANTIATE_FLOAT(LK_INST)
#undef LK_INST

}  // namespace lk::cpu
