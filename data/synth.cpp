#include "data/synth.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "data/nifti_write.h"
#include "data/synth_noise.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"

namespace lk::data {

const char* synth_kind_name(SynthKind k) {
  switch (k) {
    case SynthKind::Medium: return "medium";
    case SynthKind::Small: return "small";
    case SynthKind::Large: return "large";
    case SynthKind::NoEnhancing: return "no-enhancing";
  }
  return "?";
}

SynthKind synth_case_kind(uint64_t seed, int index) {
  return static_cast<SynthKind>((static_cast<uint64_t>(index) + seed % 4) % 4);
}

namespace {

using namespace synth;
using Vec3 = std::array<double, 3>;

// Bump when the generated images change, so caches built from them can tell.
constexpr int kGeneratorVersion = 1;

// ------------------------------------------------------------------ contrasts
// Tissue classes and their mean intensity per modality (FLAIR, T1, T1ce, T2)
// before the per-case gain: relative values as in clinical MRI.
enum Tissue { kWM, kGM, kDeepGM, kCSF, kEdema, kNecrosis, kSolidCore, kEnhancing, kTissues };
constexpr float kMean[kTissues][4] = {
    /* white matter        */ {420, 820, 800, 520},
    /* cortical grey       */ {560, 600, 620, 760},
    /* deep grey nuclei    */ {500, 690, 700, 640},
    /* CSF                 */ {150, 280, 290, 1600},  // FLAIR suppresses fluid, T2 shows it
    /* edema               */ {900, 560, 570, 1150},  // bright on FLAIR and T2
    /* necrosis (fluid)    */ {470, 320, 340, 1350},  // dark on T1 and T1ce
    /* non-enhancing core  */ {780, 480, 520, 1050},
    /* enhancing tumour    */ {720, 610, 1500, 900},  // bright on T1ce only
};

// Ramp from 0 at e0 to 1 at e1 (either order), smooth at both ends.
double smoothstep(double e0, double e1, double x) {
  const double t = std::clamp((x - e0) / (e1 - e0), 0.0, 1.0);
  return t * t * (3.0 - 2.0 * t);
}

double norm3(const Vec3& v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); }

// ------------------------------------------------------------------ anatomy
struct Anatomy {
  Vec3 c{}, R{};           // brain centre and radii (mm)
  double ravg = 1;         // mean radius: converts (1 - rho) to a depth in mm
  double sulcal_depth = 8; // mm
  double vent = 1;         // ventricle size factor
  double gyri_cell = 9;    // mm
  LatticeNoise shape, gyri, thick, tex;
};

// Lateral ventricles (two curved ellipsoids) and the third ventricle (a
// midline slit): < 1 inside.
double ventricle_field(const Anatomy& a, const Vec3& q) {
  double best = 1e9;
  for (int side = -1; side <= 1; side += 2) {
    const double ux = q[0] - (a.c[0] + side * 0.16 * a.R[0]);
    const double uy = q[1] - (a.c[1] - 0.04 * a.R[1]);
    const double ly = uy / (0.42 * a.R[1]);
    const double uz = q[2] - (a.c[2] + 0.12 * a.R[2]) + 0.28 * a.R[2] * ly * ly;  // horns curve down
    const double rx = 0.085 * a.R[0] * a.vent, rz = 0.12 * a.R[2] * a.vent;
    best = std::min(best, std::sqrt(ux * ux / (rx * rx) + ly * ly + uz * uz / (rz * rz)));
  }
  const double tx = (q[0] - a.c[0]) / (0.9 + 0.6 * a.vent);
  const double ty = (q[1] - a.c[1]) / (0.16 * a.R[1]);
  const double tz = (q[2] - a.c[2] + 0.06 * a.R[2]) / (0.13 * a.R[2]);
  return std::min(best, std::sqrt(tx * tx + ty * ty + tz * tz));
}

// Deep grey nuclei (basal ganglia, thalami): < 1 inside.
double deep_grey_field(const Anatomy& a, const Vec3& q) {
  double best = 1e9;
  for (int side = -1; side <= 1; side += 2) {
    const double bx = (q[0] - (a.c[0] + side * 0.30 * a.R[0])) / (0.11 * a.R[0]);
    const double by = (q[1] - (a.c[1] - 0.02 * a.R[1])) / (0.20 * a.R[1]);
    const double bz = (q[2] - (a.c[2] - 0.02 * a.R[2])) / (0.17 * a.R[2]);
    const double tx = (q[0] - (a.c[0] + side * 0.10 * a.R[0])) / (0.09 * a.R[0]);
    const double ty = (q[1] - (a.c[1] + 0.16 * a.R[1])) / (0.13 * a.R[1]);
    const double tz = (q[2] - (a.c[2] - 0.05 * a.R[2])) / (0.13 * a.R[2]);
    best = std::min({best, std::sqrt(bx * bx + by * by + bz * bz), std::sqrt(tx * tx + ty * ty + tz * tz)});
  }
  return best;
}

// Partial-volume fractions of the normal tissues at q; rho < 1 inside the brain.
struct TissueMix {
  double rho, wm, gm, deep, csf;
};

TissueMix tissue_mix(const Anatomy& a, const Vec3& q) {
  TissueMix m{};
  const Vec3 u{(q[0] - a.c[0]) / a.R[0], (q[1] - a.c[1]) / a.R[1], (q[2] - a.c[2]) / a.R[2]};
  m.rho = norm3(u) / (1.0 + 0.045 * a.shape.at(q[0], q[1], q[2]));
  if (m.rho >= 1.0) return m;
  const double depth = (1.0 - m.rho) * a.ravg;  // mm below the brain surface (approximately)

  // Sulci: thin fluid sheets where the gyral noise crosses zero, down to the
  // sulcal depth; the interhemispheric fissure above the ventricles.
  const double thick = a.thick.at(q[0], q[1], q[2]);
  double dist_sulcus = 1e9;
  if (depth < a.sulcal_depth * (0.75 + 0.25 * thick))
    dist_sulcus = std::abs(a.gyri.at(q[0], q[1], q[2])) * a.gyri_cell * 0.45;
  double dist_fissure = 1e9;
  if (u[2] > -0.15) dist_fissure = std::abs(q[0] - a.c[0] - 1.2 * thick);
  const double vent = ventricle_field(a, q);

  const double csf = std::max({0.7 * smoothstep(1.0, 0.0, depth), smoothstep(1.0, 0.3, dist_sulcus),
                               smoothstep(1.1, 0.4, dist_fissure), smoothstep(1.05, 0.9, vent)});
  // Cortical ribbon, 2.5-4.5 mm, following the surface, the sulci and the fissure.
  const double cortex_depth = std::min({depth, dist_sulcus, dist_fissure - 0.6});
  const double ribbon = 3.5 + 1.0 * thick;
  const double gm = smoothstep(ribbon + 0.6, ribbon - 0.6, cortex_depth);
  const double deep = smoothstep(1.05, 0.85, deep_grey_field(a, q));

  m.csf = csf;
  m.gm = (1.0 - csf) * gm;
  m.deep = (1.0 - csf) * (1.0 - gm) * deep;
  m.wm = std::max(0.0, 1.0 - m.csf - m.gm - m.deep);
  return m;
}

// ------------------------------------------------------------------ tumours
// A lesion's core and edema are each a smooth union of a few ellipsoidal
// blobs (lobulated outlines), roughened by two octaves of noise sampled in
// rotated frames (so no feature lines up with the voxel axes).
struct Blob {
  Vec3 offset{};   // from the lesion centre (mm)
  double r = 1;    // radius relative to the region's radius
};

struct Lesion {
  Vec3 c{};                    // centre (mm)
  std::array<Vec3, 3> axes{};  // orthonormal rows of a random rotation
  std::array<Vec3, 3> axes2{}; // a second one, for the fine noise octave
  Vec3 scale{1, 1, 1};         // relative lengths along the axes (core anisotropy)
  double a = 5;                // core radius (mm): the enhancing rim's outer edge
  double necrosis = 0.5;       // necrotic fraction of the core radius (0: none)
  bool enhancing = true;
  double edema = 1.8;          // edema radius / core radius
  double reach = 10;           // bounding radius of everything this lesion touches (mm)
  std::vector<Blob> core_blobs, edema_blobs;
  LatticeNoise coarse, fine, spread;  // over [-reach, reach]^3 in the rotated frames
};

// A uniformly random rotation (from a random unit quaternion).
std::array<Vec3, 3> random_rotation(Rng& rng) {
  double w = rng.normal(), x = rng.normal(), y = rng.normal(), z = rng.normal();
  const double n = std::sqrt(w * w + x * x + y * y + z * z) + 1e-12;
  w /= n, x /= n, y /= n, z /= n;
  return {{{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
           {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
           {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}}};
}

Vec3 rotate(const std::array<Vec3, 3>& rows, const Vec3& d) {
  return {rows[0][0] * d[0] + rows[0][1] * d[1] + rows[0][2] * d[2],
          rows[1][0] * d[0] + rows[1][1] * d[1] + rows[1][2] * d[2],
          rows[2][0] * d[0] + rows[2][1] * d[1] + rows[2][2] * d[2]};
}

// Polynomial smooth minimum: min(x, y) with the crease rounded over width k.
double smin(double x, double y, double k) {
  const double h = std::max(k - std::abs(x - y), 0.0) / k;
  return std::min(x, y) - h * h * k * 0.25;
}

// The main blob at the centre plus `extra` satellites `spread` radii away.
std::vector<Blob> random_blobs(Rng& rng, int extra, double radius, double spread) {
  std::vector<Blob> blobs{{{0, 0, 0}, 1.0}};
  for (int b = 0; b < extra; ++b) {
    Vec3 dir{rng.normal(), rng.normal(), rng.normal()};
    const double n = norm3(dir) + 1e-12;
    const double dist = rng.uniform(0.3, spread) * radius;
    blobs.push_back({{dir[0] / n * dist, dir[1] / n * dist, dir[2] / n * dist}, rng.uniform(0.45, 0.8)});
  }
  return blobs;
}

// A centre inside the brain, off the ventricles, far enough from the surface.
Vec3 place_lesion(const Anatomy& anat, Rng& rng, double a) {
  const double min_r = std::min({anat.R[0], anat.R[1], anat.R[2]});
  const double max_rho = std::max(0.2, 0.9 - 1.2 * a / min_r);
  for (int attempt = 0; attempt < 400; ++attempt) {
    const Vec3 u{rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)};
    const double r = norm3(u);
    if (r > max_rho || r < 0.1) continue;
    const Vec3 c{anat.c[0] + u[0] * anat.R[0], anat.c[1] + u[1] * anat.R[1], anat.c[2] + u[2] * anat.R[2]};
    if (ventricle_field(anat, c) < 1.5) continue;
    return c;
  }
  return {anat.c[0] + 0.3 * anat.R[0], anat.c[1], anat.c[2]};
}

Lesion make_lesion(const Anatomy& anat, Rng& rng, uint64_t key, double a, double necrosis, bool enhancing,
                   double edema) {
  Lesion l;
  l.a = a;
  l.necrosis = enhancing ? necrosis : 0.0;
  l.enhancing = enhancing;
  l.edema = edema;
  l.axes = random_rotation(rng);
  l.axes2 = random_rotation(rng);
  l.scale = {rng.uniform(0.75, 1.3), rng.uniform(0.75, 1.3), rng.uniform(0.75, 1.3)};
  const double g = std::cbrt(l.scale[0] * l.scale[1] * l.scale[2]);
  for (double& s : l.scale) s /= g;
  l.c = place_lesion(anat, rng, a);
  l.core_blobs = random_blobs(rng, 3, 1.0, 0.6);
  l.edema_blobs = random_blobs(rng, 4, 1.0, 0.75);
  l.reach = a * std::max(edema, 1.3) * 2.2 + 4.0;
  const Vec3 lo{-l.reach, -l.reach, -l.reach}, hi{l.reach, l.reach, l.reach};
  l.coarse = LatticeNoise(hash2(key, 1), lo, hi, std::max(3.0, 0.8 * a));
  l.fine = LatticeNoise(hash2(key, 2), lo, hi, std::max(2.0, 0.35 * a));
  l.spread = LatticeNoise(hash2(key, 3), lo, hi, std::max(4.0, 0.6 * a * edema));
  return l;
}

// What a lesion does at p: its label and the soft weights of its regions.
struct LesionHit {
  int label = 0;         // 1, 2, 4 or 0
  double core = 0;       // weight of the tumour core
  double necrotic = 0;   // of necrosis within the core
  double edema = 0;      // of edema outside the core
  double closeness = 0;  // 1 at the core edge, 0 at the edema edge (edema brightness)
  double texture = 0;    // shape noise, reused as tumour heterogeneity
  bool enhancing = false;
};

LesionHit lesion_at(const Lesion& l, const Vec3& p) {
  LesionHit h;
  const Vec3 d{p[0] - l.c[0], p[1] - l.c[1], p[2] - l.c[2]};
  if (std::abs(d[0]) > l.reach || std::abs(d[1]) > l.reach || std::abs(d[2]) > l.reach) return h;
  const Vec3 local = rotate(l.axes, d), local2 = rotate(l.axes2, d);

  // Core: smooth union of anisotropic blobs (in the lesion frame), roughened.
  double t = 1e9;
  for (const Blob& b : l.core_blobs) {
    const Vec3 q{(local[0] - b.offset[0] * l.a) / l.scale[0], (local[1] - b.offset[1] * l.a) / l.scale[1],
                 (local[2] - b.offset[2] * l.a) / l.scale[2]};
    t = smin(t, norm3(q) / (b.r * l.a), 0.3);
  }
  const double n = 0.65 * l.coarse.at(local[0], local[1], local[2]) + 0.35 * l.fine.at(local2[0], local2[1], local2[2]);
  t *= 1.0 + 0.2 * n;

  // Edema: a wider, more irregular union around the core.
  double te = 1e9;
  const double ra = l.a * l.edema;
  for (const Blob& b : l.edema_blobs) {
    const Vec3 q{local2[0] - b.offset[0] * ra, local2[1] - b.offset[1] * ra, local2[2] - b.offset[2] * ra};
    te = smin(te, norm3(q) / (b.r * ra), 0.3);
  }
  te *= 1.0 + 0.3 * l.spread.at(local2[0], local2[1], local2[2]);
  te = std::min(te, t * 0.8);  // the edema always surrounds the core

  h.texture = n;
  h.enhancing = l.enhancing;
  h.core = smoothstep(1.08, 0.92, t);
  if (l.necrosis > 0) h.necrotic = smoothstep(l.necrosis + 0.07, l.necrosis - 0.07, t);
  h.edema = smoothstep(1.08, 0.92, te);
  h.closeness = std::clamp(1.0 - te, 0.0, 1.0);
  if (t < 1.0) h.label = !l.enhancing || t < l.necrosis ? 1 : 4;
  else if (te < 1.0) h.label = 2;
  return h;
}

// Mass effect: the anatomy seen at p is the one that was closer to the lesion.
Vec3 displaced(const std::vector<Lesion>& lesions, const Vec3& p) {
  Vec3 q = p;
  for (const Lesion& l : lesions) {
    const Vec3 d{p[0] - l.c[0], p[1] - l.c[1], p[2] - l.c[2]};
    const double r = norm3(d) / l.reach;
    if (r >= 1.0) continue;
    const double k = 0.4 * (1.0 - r * r) * (1.0 - r * r);  // smooth, zero beyond the reach
    for (int i = 0; i < 3; ++i) q[i] -= d[i] * k;
  }
  return q;
}

// ------------------------------------------------------------------ one case
struct CasePlan {
  SynthCaseInfo info;
  Anatomy anat;
  std::vector<Lesion> lesions;
  std::array<double, 4> gain{}, sigma{};
  std::array<LatticeNoise, 4> bias;
  uint64_t noise_key = 0;
};

CasePlan plan_case(uint64_t seed, int index, const SynthOptions& opt) {
  CasePlan plan;
  const uint64_t key = hash4(0x53594E5448455449ull /* "SYNTHETI" */, seed, static_cast<uint64_t>(index),
                             kGeneratorVersion);
  Rng rng(key);
  const double sp = opt.spacing;
  const Vec3 extent{opt.dims[0] * sp, opt.dims[1] * sp, opt.dims[2] * sp};
  const Vec3 lo{0, 0, 0};

  Anatomy& a = plan.anat;
  for (int i = 0; i < 3; ++i) a.c[i] = 0.5 * (extent[i] - sp) + rng.uniform(-0.02, 0.02) * extent[i];
  const double size = rng.uniform(0.92, 1.04);
  a.R = {0.39 * extent[0] * size * rng.uniform(0.96, 1.04), 0.44 * extent[1] * size * rng.uniform(0.96, 1.04),
         0.43 * extent[2] * size * rng.uniform(0.96, 1.04)};
  a.ravg = (a.R[0] + a.R[1] + a.R[2]) / 3.0;
  const double scale = std::clamp(std::min({a.R[0], a.R[1], a.R[2]}) / 55.0, 0.3, 3.0);
  a.sulcal_depth = rng.uniform(6.0, 11.0) * std::sqrt(scale);
  a.vent = rng.uniform(0.75, 1.35);
  a.gyri_cell = 9.0 * std::sqrt(scale);
  a.shape = LatticeNoise(hash2(key, 10), lo, extent, 28.0 * scale);
  a.gyri = LatticeNoise(hash2(key, 11), lo, extent, a.gyri_cell);
  a.thick = LatticeNoise(hash2(key, 12), lo, extent, 20.0);
  a.tex = LatticeNoise(hash2(key, 13), lo, extent, 2.5);

  // The kind cycles with the index (shifted by the seed), so every 4
  // consecutive cases hold each kind.
  SynthCaseInfo& info = plan.info;
  char id[32];
  std::snprintf(id, sizeof id, "BraTS2021_%05d", opt.first_id + index);
  info.id = id;
  info.kind = synth_case_kind(seed, index);
  double r = 0, necrosis = 0, edema = 0;
  bool enhancing = true;
  switch (info.kind) {
    case SynthKind::Medium:
      r = rng.uniform(8, 13), necrosis = rng.uniform(0.3, 0.6), edema = rng.uniform(1.5, 2.3);
      break;
    case SynthKind::Small:
      r = rng.uniform(3.5, 6), enhancing = rng.chance(0.5), edema = rng.uniform(1.8, 3.2);
      necrosis = rng.chance(0.5) ? 0.0 : rng.uniform(0.2, 0.45);
      break;
    case SynthKind::Large:
      r = rng.uniform(15, 22), necrosis = rng.uniform(0.45, 0.75), edema = rng.uniform(1.3, 1.8);
      break;
    case SynthKind::NoEnhancing:
      r = rng.uniform(8, 18), enhancing = false, edema = rng.uniform(1.3, 2.2);
      break;
  }
  info.enhancing = enhancing;
  info.core_radius_mm = r * scale;
  plan.lesions.push_back(make_lesion(a, rng, hash2(key, 20), r * scale, necrosis, enhancing, edema));
  // Now and then a second, smaller lesion (multifocal).
  if (info.kind != SynthKind::Small && rng.chance(0.2)) {
    const bool enh2 = enhancing && rng.chance(0.7);
    plan.lesions.push_back(make_lesion(a, rng, hash2(key, 21), r * scale * rng.uniform(0.3, 0.5),
                                       rng.uniform(0.2, 0.5), enh2, rng.uniform(1.6, 2.4)));
  }
  info.lesions = static_cast<int>(plan.lesions.size());

  // Scanner: a gain per modality (BraTS intensities vary a lot between
  // cases), noise, and a smooth bias field.
  for (int m = 0; m < 4; ++m) {
    plan.gain[m] = std::exp(rng.uniform(std::log(0.5), std::log(2.0)));
    plan.sigma[m] = 0.03 * 600.0 * plan.gain[m];
    plan.bias[m] = LatticeNoise(hash2(key, 30 + static_cast<uint64_t>(m)), lo, extent, 60.0 * scale);
  }
  plan.noise_key = hash2(key, 40);
  return plan;
}

// Fills the images and labels of a planned case.
void render(const CasePlan& plan, const SynthOptions& opt, SynthCase& out) {
  const int64_t nx = opt.dims[0], ny = opt.dims[1], nz = opt.dims[2];
  const size_t n = static_cast<size_t>(nx * ny * nz);
  for (auto& img : out.images) img.assign(n, 0);
  out.labels.assign(n, 0);
  const Anatomy& a = plan.anat;
  const double sp = opt.spacing;

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t z = 0; z < nz; ++z) {
    for (int64_t y = 0; y < ny; ++y) {
      for (int64_t x = 0; x < nx; ++x) {
        const Vec3 p{x * sp, y * sp, z * sp};
        // Far outside the brain (even after the mass effect): background.
        const Vec3 u{(p[0] - a.c[0]) / a.R[0], (p[1] - a.c[1]) / a.R[1], (p[2] - a.c[2]) / a.R[2]};
        if (norm3(u) > 1.25) continue;
        const TissueMix t = tissue_mix(a, displaced(plan.lesions, p));
        if (t.rho >= 1.0) continue;

        // The lesions: the one whose core dominates here gives the core
        // label; edema where any lesion's edema reaches.
        LesionHit hit;
        double edema_w = 0, closeness = 0;
        bool in_edema = false;
        for (const Lesion& l : plan.lesions) {
          const LesionHit h = lesion_at(l, p);
          if (h.core > hit.core) hit = h;
          if (h.edema > edema_w) edema_w = h.edema, closeness = h.closeness;
          in_edema = in_edema || h.label == 2;
        }
        int label = hit.label == 1 || hit.label == 4 ? hit.label : in_edema ? 2 : 0;
        // Edema spreads in the white matter: it spares the fluid spaces and,
        // mostly, the cortex.
        if (label == 2 && (t.csf >= 0.5 || t.gm >= 0.6)) label = 0;
        edema_w *= (1.0 - hit.core) * (1.0 - 0.7 * t.gm - 0.95 * t.csf);

        const size_t i = static_cast<size_t>(x + nx * (y + ny * z));
        out.labels[i] = static_cast<uint8_t>(label);
        const double tex = 1.0 + 0.035 * a.tex.at(p[0], p[1], p[2]);
        for (int m = 0; m < 4; ++m) {
          const double anat = (t.wm * kMean[kWM][m] + t.gm * kMean[kGM][m] + t.deep * kMean[kDeepGM][m] +
                               t.csf * kMean[kCSF][m]) * tex;
          const double edema = kMean[kEdema][m] * (1.0 + 0.15 * closeness);
          // Core: necrosis inside viable tumour (enhancing rim or solid core).
          const double viable = (hit.enhancing ? kMean[kEnhancing][m] : kMean[kSolidCore][m]) * (1.0 + 0.12 * hit.texture);
          const double core = hit.necrotic * kMean[kNecrosis][m] * (1.0 + 0.05 * hit.texture) + (1.0 - hit.necrotic) * viable;
          double v = hit.core * core + (1.0 - hit.core) * (edema_w * edema + (1.0 - edema_w) * anat);
          v *= plan.gain[m] * (1.0 + 0.08 * plan.bias[m].at(p[0], p[1], p[2]));
          v += plan.sigma[m] * gauss(hash4(plan.noise_key, static_cast<uint64_t>(m), i, 0));
          out.images[m][i] = static_cast<int16_t>(std::clamp(std::lround(v), 1L, 32767L));
        }
      }
    }
  }
}

}  // namespace

SynthCase make_synthetic_case(uint64_t seed, int index, const SynthOptions& opt) {
  for (int i = 0; i < 3; ++i)
    if (opt.dims[i] < 8 || opt.dims[i] > 1024)
      throw std::invalid_argument("synthetic case: dims must be in 8..1024, got " + dims_str(opt.dims));
  if (!(opt.spacing > 0.1 && opt.spacing < 10)) throw std::invalid_argument("synthetic case: spacing must be in (0.1, 10) mm");
  if (index < 0) throw std::invalid_argument("synthetic case: index must be >= 0");

  const CasePlan plan = plan_case(seed, index, opt);
  SynthCase c;
  c.info = plan.info;
  c.geom.dims = opt.dims;
  c.geom.spacing = {opt.spacing, opt.spacing, opt.spacing};
  // BraTS' axis flips (-x, -y, +z), centred on the volume.
  const double s = opt.spacing;
  c.geom.affine = {{{-s, 0, 0, 0.5 * s * static_cast<double>(opt.dims[0] - 1)},
                    {0, -s, 0, 0.5 * s * static_cast<double>(opt.dims[1] - 1)},
                    {0, 0, s, -0.5 * s * static_cast<double>(opt.dims[2] - 1)},
                    {0, 0, 0, 1}}};
  render(plan, opt, c);
  for (uint8_t l : c.labels) c.info.voxels[l] += 1;
  return c;
}

void write_synthetic_case(const std::string& dir, const SynthCase& c, const SynthOptions& opt) {
  namespace fs = std::filesystem;
  const fs::path folder = fs::path(dir) / c.info.id;
  fs::create_directories(dir);
  std::string tmp = temp_template(folder.string());
  if (!::mkdtemp(tmp.data()))
    throw std::runtime_error(folder.string() + ": cannot create a temporary folder: " + std::strerror(errno));
  try {
    NiftiWriteOptions w;
    w.gzip_level = opt.gzip_level;
    w.description = kSynthDescription;
    const char* keys[4] = {"flair", "t1", "t1ce", "t2"};
    for (int m = 0; m < 4; ++m)
      write_nifti((fs::path(tmp) / (c.info.id + "_" + keys[m] + ".nii.gz")).string(), c.geom, c.images[m], w);
    write_nifti((fs::path(tmp) / (c.info.id + "_seg.nii.gz")).string(), c.geom, c.labels, w);
    if (fs::exists(folder)) {  // moved aside, then removed: never a mix of two cases
      std::string old = temp_template(folder.string());
      if (!::mkdtemp(old.data())) throw std::runtime_error(folder.string() + ": cannot replace it: " + std::strerror(errno));
      fs::rename(folder, fs::path(old) / "old");
      fs::rename(tmp, folder);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, folder);
    }
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw std::runtime_error("case " + c.info.id + " not written (nothing of it is left): " + e.what());
  }
}

std::vector<SynthCaseInfo> generate_synthetic_dataset(const std::string& dir, int n_cases, uint64_t seed,
                                                      const SynthOptions& opt, const std::atomic<bool>* stop) {
  if (n_cases < 1) throw std::invalid_argument("synthetic dataset: the number of cases must be >= 1");
  std::filesystem::create_directories(dir);
  {
    std::ostringstream note;
    note << "lkaseg synthetic BraTS-like dataset (data/synth.h), generator version " << kGeneratorVersion << "\n"
         << "seed " << seed << ", cases " << n_cases << ", first id " << opt.first_id << "\n"
         << "dims " << dims_str(opt.dims) << ", spacing " << opt.spacing << " mm\n";
    write_file_atomically((std::filesystem::path(dir) / "SYNTHETIC.txt").string(), note.str());
  }
  std::vector<SynthCaseInfo> infos;
  for (int i = 0; i < n_cases && !(stop && stop->load()); ++i) {
    const SynthCase c = make_synthetic_case(seed, i, opt);
    write_synthetic_case(dir, c, opt);
    infos.push_back(c.info);
  }
  return infos;
}

}  // namespace lk::data
