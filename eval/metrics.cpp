#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "data/nifti_read.h"
#include "util/dice.h"

namespace lk::eval {

using namespace lk::data;

namespace {

using Dims = std::array<int64_t, 3>;
using Spacing = std::array<double, 3>;
constexpr double kInf = std::numeric_limits<double>::infinity();

// Lines handled together in the y and z passes: 8 doubles of consecutive x
// share a cache line, so the strided gathers read whole lines.
constexpr int64_t kBlock = 8;
// Below this many voxels the transform runs on one thread (thread start-up
// would cost more than the work).
constexpr int64_t kParallelVoxels = 1 << 15;

int64_t numel(const Dims& d) { return d[0] * d[1] * d[2]; }

void check_dims(const Dims& d, const char* what) {
  if (d[0] < 1 || d[1] < 1 || d[2] < 1)
    throw MetricsError(std::string(what) + ": dimensions must be positive, got " + dims_str(d));
}

// Lower envelope of the parabolas y = w2 (p - q)² + f[q] over the finite
// f[q] (Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled
// Functions", 2012), evaluated at p = 0..n-1 into d. v and z hold n and
// n + 1 entries. All +inf in f gives all +inf.
void lower_envelope(const double* f, double* d, int64_t n, double w2, int64_t* v, double* z) {
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    const double fq = f[q];
    if (fq == kInf) continue;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -kInf;
      z[1] = kInf;
      continue;
    }
    const double cq = fq + w2 * static_cast<double>(q) * static_cast<double>(q);
    double s = 0;
    for (;;) {
      const auto r = static_cast<double>(v[k]);
      s = (cq - (f[v[k]] + w2 * r * r)) / (2 * w2 * (static_cast<double>(q) - r));
      if (s > z[k]) break;
      --k;  // z[0] = -inf: never below 0
    }
    ++k;
    v[k] = q;
    z[k] = s;
    z[k + 1] = kInf;
  }
  if (k < 0) {
    std::fill(d, d + n, kInf);
    return;
  }
  int64_t j = 0;
  for (int64_t p = 0; p < n; ++p) {
    const auto pd = static_cast<double>(p);
    while (z[j + 1] < pd) ++j;
    const double dq = pd - static_cast<double>(v[j]);
    d[p] = w2 * dq * dq + f[v[j]];
  }
}

// Pass along x: squared distance to the nearest feature on the same line.
void pass_x(const uint8_t* feature, double* out, const Dims& d, double sx) {
  const int64_t nx = d[0], lines = d[1] * d[2];
  const double w2 = sx * sx;
#pragma omp parallel for schedule(static) if (numel(d) >= kParallelVoxels)
  for (int64_t l = 0; l < lines; ++l) {
    const uint8_t* f = feature + l * nx;
    double* o = out + l * nx;
    int64_t last = -1;
    for (int64_t x = 0; x < nx; ++x) {
      if (f[x]) last = x;
      o[x] = last < 0 ? kInf : static_cast<double>(x - last);
    }
    last = -1;
    for (int64_t x = nx - 1; x >= 0; --x) {
      if (f[x]) last = x;
      if (last >= 0) o[x] = std::min(o[x], static_cast<double>(last - x));
      o[x] = o[x] == kInf ? kInf : w2 * o[x] * o[x];
    }
  }
}

// Pass along axis y (stride nx, lines over (x, z)) or z (stride nx*ny,
// lines over (x, y)), in place: lines of kBlock consecutive x at a time.
void pass_envelope(double* data, const Dims& d, int axis, double w) {
  const int64_t nx = d[0], n = d[axis];
  const int64_t stride = axis == 1 ? nx : nx * d[1];
  const int64_t outer = axis == 1 ? d[2] : d[1];            // z for the y pass, y for the z pass
  const int64_t outer_stride = axis == 1 ? nx * d[1] : nx;  // its stride
  if (n == 1) return;
  const int64_t xblocks = (nx + kBlock - 1) / kBlock;
  const int64_t tasks = outer * xblocks;
  const double w2 = w * w;
#pragma omp parallel if (numel(d) >= kParallelVoxels)
  {
    std::vector<double> f(static_cast<size_t>(kBlock * n)), out(static_cast<size_t>(n)), z(static_cast<size_t>(n + 1));
    std::vector<int64_t> v(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t o = t / xblocks, x0 = (t % xblocks) * kBlock, bx = std::min(kBlock, nx - x0);
      double* base = data + o * outer_stride + x0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t b = 0; b < bx; ++b) f[static_cast<size_t>(b * n + i)] = base[i * stride + b];
      for (int64_t b = 0; b < bx; ++b) {
        lower_envelope(f.data() + b * n, out.data(), n, w2, v.data(), z.data());
        for (int64_t i = 0; i < n; ++i) base[i * stride + b] = out[static_cast<size_t>(i)];
      }
    }
  }
}

std::vector<double> squared_edt_impl(const uint8_t* feature, const Dims& d, const Spacing& sp) {
  std::vector<double> out(static_cast<size_t>(numel(d)));
  pass_x(feature, out.data(), d, sp[0]);
  pass_envelope(out.data(), d, 1, sp[1]);
  pass_envelope(out.data(), d, 2, sp[2]);
  return out;
}

std::vector<uint8_t> surface_impl(const uint8_t* m, const Dims& d) {
  const int64_t nx = d[0], ny = d[1], nz = d[2];
  std::vector<uint8_t> s(static_cast<size_t>(numel(d)), 0);
#pragma omp parallel for schedule(static) if (numel(d) >= kParallelVoxels)
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x) {
        const int64_t i = x + nx * (y + ny * z);
        if (!m[i]) continue;
        const bool inner = x > 0 && x < nx - 1 && y > 0 && y < ny - 1 && z > 0 && z < nz - 1 && m[i - 1] && m[i + 1] &&
                           m[i - nx] && m[i + nx] && m[i - nx * ny] && m[i + nx * ny];
        s[static_cast<size_t>(i)] = inner ? 0 : 1;
      }
  return s;
}

// Distances from the surface voxels `from_surface` to the nearest voxel of
// `to_surface` (both on the grid d).
std::vector<double> directed_impl(const std::vector<uint8_t>& from_surface, const std::vector<uint8_t>& to_surface,
                                  const Dims& d, const Spacing& sp) {
  const std::vector<double> edt = squared_edt_impl(to_surface.data(), d, sp);
  std::vector<double> out;
  for (size_t i = 0; i < from_surface.size(); ++i)
    if (from_surface[i]) out.push_back(std::sqrt(edt[i]));
  return out;
}

// HD95 of two non-empty masks on the grid d (already cropped or not).
double hd95_impl(const uint8_t* a, const uint8_t* b, const Dims& d, const Spacing& sp) {
  const std::vector<uint8_t> sa = surface_impl(a, d), sb = surface_impl(b, d);
  const double ab = percentile_linear(directed_impl(sa, sb, d, sp), 95.0);
  const double ba = percentile_linear(directed_impl(sb, sa, d, sp), 95.0);
  return std::max(ab, ba);
}

struct Box {
  Dims lo{std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max(),
          std::numeric_limits<int64_t>::max()};
  Dims hi{-1, -1, -1};  // inclusive
  void add(int64_t x, int64_t y, int64_t z) {
    lo[0] = std::min(lo[0], x), lo[1] = std::min(lo[1], y), lo[2] = std::min(lo[2], z);
    hi[0] = std::max(hi[0], x), hi[1] = std::max(hi[1], y), hi[2] = std::max(hi[2], z);
  }
  void merge(const Box& o) {
    for (int a = 0; a < 3; ++a) lo[a] = std::min(lo[a], o.lo[a]), hi[a] = std::max(hi[a], o.hi[a]);
  }
  Dims extent() const { return {hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1}; }
};

// The voxels of box `bx` of the grid d where keep(value) holds, as a 0/1 mask
// on the box's grid. Surfaces computed on it equal those of the whole grid
// cropped, as every foreground voxel lies in the box (a neighbour outside
// the box is background either way).
template <class Keep>
std::vector<uint8_t> crop(const uint8_t* m, const Dims& d, const Box& bx, Keep keep) {
  const Dims e = bx.extent();
  std::vector<uint8_t> out(static_cast<size_t>(numel(e)));
  for (int64_t z = 0; z < e[2]; ++z)
    for (int64_t y = 0; y < e[1]; ++y) {
      const uint8_t* src = m + bx.lo[0] + d[0] * ((bx.lo[1] + y) + d[1] * (bx.lo[2] + z));
      uint8_t* dst = out.data() + e[0] * (y + e[1] * z);
      for (int64_t x = 0; x < e[0]; ++x) dst[x] = keep(src[x]) ? 1 : 0;
    }
  return out;
}

// Dice, HD95 and the flags from the counts; HD95 computed (lazily) only
// when both masks are non-empty.
template <class Hd>
MaskMetrics finish(int64_t np, int64_t ng, int64_t tp, Hd hd) {
  MaskMetrics m;
  m.pred_voxels = np;
  m.gt_voxels = ng;
  m.overlap = tp;
  m.pred_empty = np == 0;
  m.gt_empty = ng == 0;
  if (m.pred_empty && m.gt_empty) {
    m.dice = 1;
    m.hd95_mm = 0;
  } else if (m.pred_empty || m.gt_empty) {
    m.dice = 0;
    m.hd95_mm = kEmptyHd95Mm;
  } else {
    m.dice = Overlap{np, ng, tp}.dice();
    m.hd95_mm = hd();
  }
  return m;
}

std::string fmt_g(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

std::string spacing_str(const Spacing& s) { return fmt_g(s[0]) + " x " + fmt_g(s[1]) + " x " + fmt_g(s[2]) + " mm"; }

// Region membership bits of each BraTS 2021 label value.
constexpr uint8_t region_bit(Region r) { return static_cast<uint8_t>(1u << static_cast<unsigned>(r)); }
std::array<uint8_t, 256> region_bits_table() {
  std::array<uint8_t, 256> t{};
  for (int l = 0; l < 256; ++l)
    for (Region r : kRegions)
      if (region_contains(r, static_cast<uint8_t>(l))) t[static_cast<size_t>(l)] |= region_bit(r);
  return t;
}

}  // namespace

// ---- building blocks ------------------------------------------------------

std::vector<uint8_t> surface_voxels(const std::vector<uint8_t>& mask, const std::array<int64_t, 3>& dims) {
  check_dims(dims, "surface_voxels");
  if (static_cast<int64_t>(mask.size()) != numel(dims))
    throw MetricsError("surface_voxels: mask has " + std::to_string(mask.size()) + " voxels, the grid " +
                       dims_str(dims) + " has " + std::to_string(numel(dims)));
  return surface_impl(mask.data(), dims);
}

std::vector<double> squared_edt(const std::vector<uint8_t>& feature, const std::array<int64_t, 3>& dims,
                                const std::array<double, 3>& spacing) {
  check_dims(dims, "squared_edt");
  if (static_cast<int64_t>(feature.size()) != numel(dims))
    throw MetricsError("squared_edt: mask has " + std::to_string(feature.size()) + " voxels, the grid " +
                       dims_str(dims) + " has " + std::to_string(numel(dims)));
  for (double s : spacing)
    if (!(s > 0) || !std::isfinite(s)) throw MetricsError("squared_edt: spacing must be finite and > 0");
  return squared_edt_impl(feature.data(), dims, spacing);
}

std::vector<double> directed_surface_distances(const std::vector<uint8_t>& from, const std::vector<uint8_t>& to,
                                               const std::array<int64_t, 3>& dims,
                                               const std::array<double, 3>& spacing) {
  const std::vector<uint8_t> sf = surface_voxels(from, dims), st = surface_voxels(to, dims);
  if (std::find(sf.begin(), sf.end(), 1) == sf.end() || std::find(st.begin(), st.end(), 1) == st.end())
    throw MetricsError("directed_surface_distances: both masks must be non-empty");
  for (double s : spacing)
    if (!(s > 0) || !std::isfinite(s)) throw MetricsError("directed_surface_distances: spacing must be finite and > 0");
  return directed_impl(sf, st, dims, spacing);
}

double percentile_linear(std::vector<double> values, double q) {
  if (values.empty()) throw MetricsError("percentile_linear: no values");
  if (!(q >= 0 && q <= 100)) throw MetricsError("percentile_linear: q must be in [0, 100], got " + fmt_g(q));
  const size_t n = values.size();
  // numpy: virtual index (q / 100) (n - 1), then a + (b - a) t, written
  // b - (b - a)(1 - t) when t >= 0.5 (numpy's _lerp, for monotonicity).
  const double h = (q / 100.0) * static_cast<double>(n - 1);
  const double fl = std::floor(h);
  const auto lo = std::min(static_cast<size_t>(fl), n - 1);
  const double t = h - fl;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(lo), values.end());
  const double a = values[lo];
  const double b =
      lo + 1 < n ? *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(lo + 1), values.end()) : a;
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

double hd95(const std::vector<uint8_t>& pred, const std::vector<uint8_t>& gt, const std::array<int64_t, 3>& dims,
            const std::array<double, 3>& spacing) {
  Geometry g;
  g.dims = dims;
  g.spacing = spacing;
  const MaskMetrics m = evaluate_masks(pred, gt, g);
  if (m.pred_empty || m.gt_empty) throw MetricsError("hd95: both masks must be non-empty");
  return m.hd95_mm;
}

MaskMetrics evaluate_masks(const std::vector<uint8_t>& pred, const std::vector<uint8_t>& gt, const Geometry& g) {
  check_dims(g.dims, "evaluate_masks");
  const int64_t n = g.numel();
  if (static_cast<int64_t>(pred.size()) != n || static_cast<int64_t>(gt.size()) != n)
    throw MetricsError("evaluate_masks: masks have " + std::to_string(pred.size()) + " and " +
                       std::to_string(gt.size()) + " voxels, the grid " + dims_str(g.dims) + " has " +
                       std::to_string(n));
  for (double s : g.spacing)
    if (!(s > 0) || !std::isfinite(s)) throw MetricsError("evaluate_masks: spacing must be finite and > 0");
  int64_t np = 0, ng = 0, tp = 0;
  Box box;
  const Dims& d = g.dims;
  for (int64_t z = 0; z < d[2]; ++z)
    for (int64_t y = 0; y < d[1]; ++y)
      for (int64_t x = 0; x < d[0]; ++x) {
        const auto i = static_cast<size_t>(g.index(x, y, z));
        const bool p = pred[i] != 0, t = gt[i] != 0;
        if (!p && !t) continue;
        np += p, ng += t, tp += p && t;
        box.add(x, y, z);
      }
  return finish(np, ng, tp, [&] {
    const auto keep = [](uint8_t v) { return v != 0; };
    const std::vector<uint8_t> a = crop(pred.data(), d, box, keep), b = crop(gt.data(), d, box, keep);
    return hd95_impl(a.data(), b.data(), box.extent(), g.spacing);
  });
}

// ---- BraTS regions ----------------------------------------------------------

const char* region_name(Region r) {
  switch (r) {
    case Region::NCR:
      return "NCR";
    case Region::ET:
      return "ET";
    case Region::ED:
      return "ED";
    case Region::WT:
      return "WT";
    case Region::TC:
      return "TC";
  }
  return "?";
}

bool region_contains(Region r, uint8_t label) {
  switch (r) {
    case Region::NCR:
      return label == 1;
    case Region::ET:
      return label == 4;
    case Region::ED:
      return label == 2;
    case Region::WT:
      return label == 1 || label == 2 || label == 4;
    case Region::TC:
      return label == 1 || label == 4;
  }
  return false;
}

BratsNaming parse_label_coding(const std::string& s) {
  if (s == "2021" || s == "brats2021") return BratsNaming::Brats2021;
  if (s == "2023" || s == "brats2023") return BratsNaming::Brats2023;
  if (s == "msd") return BratsNaming::Msd;
  throw std::invalid_argument("label coding '" + s +
                              "': expected brats2021 ({0, 1, 2, 4}), brats2023 ({0, 1, 2, 3}) or msd ({0, 1 edema, "
                              "2 non-enhancing, 3 enhancing})");
}

std::vector<uint8_t> to_brats_labels(const std::vector<float>& voxels, BratsNaming coding, const std::string& path) {
  try {
    return data::labels_to_brats2021(voxels, coding, path);
  } catch (const data::BratsError& e) {
    throw MetricsError(e.what());
  }
}

CaseMetrics evaluate_labels(const std::vector<uint8_t>& pred, const std::vector<uint8_t>& gt, const Geometry& g) {
  check_dims(g.dims, "evaluate_labels");
  const int64_t n = g.numel();
  if (static_cast<int64_t>(pred.size()) != n || static_cast<int64_t>(gt.size()) != n)
    throw MetricsError("evaluate_labels: label volumes have " + std::to_string(pred.size()) + " and " +
                       std::to_string(gt.size()) + " voxels, the grid " + dims_str(g.dims) + " has " +
                       std::to_string(n));
  for (double s : g.spacing)
    if (!(s > 0) || !std::isfinite(s)) throw MetricsError("evaluate_labels: spacing must be finite and > 0");
  static const std::array<uint8_t, 256> bits = region_bits_table();
  for (const auto* v : {&pred, &gt})
    for (size_t i = 0; i < v->size(); ++i) {
      const uint8_t l = (*v)[i];
      if (l != 0 && l != 1 && l != 2 && l != 4)
        throw MetricsError(std::string("evaluate_labels: ") + (v == &pred ? "prediction" : "ground truth") + " label " +
                           std::to_string(l) + " at voxel " + std::to_string(i) + " is outside {0, 1, 2, 4}");
    }

  std::array<int64_t, kNumRegions> np{}, ng{}, tp{};
  std::array<Box, kNumRegions> box{};
  const Dims& d = g.dims;
  for (int64_t z = 0; z < d[2]; ++z)
    for (int64_t y = 0; y < d[1]; ++y) {
      const int64_t row = d[0] * (y + d[1] * z);
      for (int64_t x = 0; x < d[0]; ++x) {
        const uint8_t bp = bits[pred[static_cast<size_t>(row + x)]], bg = bits[gt[static_cast<size_t>(row + x)]];
        if ((bp | bg) == 0) continue;
        for (int r = 0; r < kNumRegions; ++r) {
          const unsigned m = 1u << r;
          const bool p = bp & m, t = bg & m;
          if (!p && !t) continue;
          np[static_cast<size_t>(r)] += p;
          ng[static_cast<size_t>(r)] += t;
          tp[static_cast<size_t>(r)] += p && t;
          box[static_cast<size_t>(r)].add(x, y, z);
        }
      }
    }
  CaseMetrics out;
  for (Region r : kRegions) {
    const auto k = static_cast<size_t>(r);
    out[r] = finish(np[k], ng[k], tp[k], [&] {
      const auto keep = [r](uint8_t v) { return region_contains(r, v); };
      const std::vector<uint8_t> a = crop(pred.data(), d, box[k], keep), b = crop(gt.data(), d, box[k], keep);
      return hd95_impl(a.data(), b.data(), box[k].extent(), g.spacing);
    });
  }
  return out;
}

namespace {

void check_finite_labels(const Volume& v) {
  if (v.storage.nonfinite_voxels > 0)
    throw MetricsError(v.path + ": " + std::to_string(v.storage.nonfinite_voxels) +
                       " label voxels are NaN or Inf (the first at index " + std::to_string(v.storage.first_nonfinite) +
                       ")");
}

}  // namespace

CaseMetrics evaluate_label_files(const std::string& pred_path, BratsNaming pred_coding, const std::string& gt_path,
                                 BratsNaming gt_coding) {
  const Volume gt = read_nifti(gt_path);
  const Volume pr = read_nifti(pred_path);
  check_finite_labels(gt);
  check_finite_labels(pr);
  if (pr.geom.dims != gt.geom.dims)
    throw MetricsError(pred_path + ": prediction shape " + dims_str(pr.geom.dims) +
                       " differs from the ground truth's " + dims_str(gt.geom.dims) + " (" + gt_path + ")");
  for (int a = 0; a < 3; ++a)
    if (std::abs(pr.geom.spacing[static_cast<size_t>(a)] - gt.geom.spacing[static_cast<size_t>(a)]) >
        1e-3 * std::max(1.0, std::abs(gt.geom.spacing[static_cast<size_t>(a)])))
      throw MetricsError(pred_path + ": prediction spacing " + spacing_str(pr.geom.spacing) +
                         " differs from the ground truth's " + spacing_str(gt.geom.spacing) + " (" + gt_path + ")");
  if (!same_grid(pr.geom, gt.geom))
    throw MetricsError(pred_path + ": prediction affine differs from the ground truth's by up to " +
                       fmt_g(affine_max_diff(pr.geom.affine, gt.geom.affine)) + " (" + gt_path + ")");
  const std::vector<uint8_t> gl = to_brats_labels(gt.data, gt_coding, gt_path);
  const std::vector<uint8_t> pl = to_brats_labels(pr.data, pred_coding, pred_path);
  return evaluate_labels(pl, gl, gt.geom);
}

// ---- aggregation ------------------------------------------------------------

std::array<RegionSummary, kNumRegions> aggregate(const std::vector<CaseMetrics>& cases, const AggregateOptions& opt) {
  std::array<RegionSummary, kNumRegions> out{};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (Region r : kRegions) {
    RegionSummary& s = out[static_cast<size_t>(r)];
    std::vector<double> dice, hd;
    for (const CaseMetrics& c : cases) {
      const MaskMetrics& m = c[r];
      if (m.gt_empty && !opt.include_gt_empty) {
        ++s.not_applicable;
        continue;
      }
      dice.push_back(m.dice);
      hd.push_back(m.hd95_mm);
    }
    s.n = static_cast<int64_t>(dice.size());
    const auto stats = [&](const std::vector<double>& v, double& mean, double& sd) {
      if (v.empty()) {
        mean = sd = nan;
        return;
      }
      double sum = 0;
      for (double x : v) sum += x;
      mean = sum / static_cast<double>(v.size());
      const auto denom = static_cast<int64_t>(v.size()) - opt.ddof;
      if (denom <= 0) {
        sd = nan;
        return;
      }
      double ss = 0;
      for (double x : v) ss += (x - mean) * (x - mean);
      sd = std::sqrt(ss / static_cast<double>(denom));
    };
    stats(dice, s.dice_mean, s.dice_std);
    stats(hd, s.hd95_mean, s.hd95_std);
  }
  return out;
}

}  // namespace lk::eval
