// Evaluation metrics (eval/metrics.h, eval/evaluate.h): hand-computed
// values, an O(n²) brute force on random masks, golden numbers from
// scipy/MONAI/medpy (tests/golden/metrics/cases.txt), the empty-mask
// conventions, regions, label checks, aggregation and file pairs. The
// `lkaseg evaluate` command: test_evaluate.cpp.
#include <omp.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "data/brats_cases.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "data/nifti_read.h"
#include "data/nifti_write.h"
#include "tests/support/nifti_craft.h"
#include "tests/support/shared_data.h"

using namespace lk::data;
using namespace lk::eval;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using Dims = std::array<int64_t, 3>;
using Spacing = std::array<double, 3>;

namespace {

int64_t numel(const Dims& d) { return d[0] * d[1] * d[2]; }
int64_t idx(const Dims& d, int64_t x, int64_t y, int64_t z) { return x + d[0] * (y + d[1] * z); }

Geometry grid(const Dims& d, const Spacing& s = {1, 1, 1}) {
  Geometry g;
  g.dims = d;
  g.spacing = s;
  g.affine = scaling_affine(s);
  return g;
}

std::vector<uint8_t> box_mask(const Dims& d, Dims lo, Dims hi) {  // [lo, hi)
  std::vector<uint8_t> m(static_cast<size_t>(numel(d)), 0);
  for (int64_t z = lo[2]; z < hi[2]; ++z)
    for (int64_t y = lo[1]; y < hi[1]; ++y)
      for (int64_t x = lo[0]; x < hi[0]; ++x) m[static_cast<size_t>(idx(d, x, y, z))] = 1;
  return m;
}

// Independent statements of the definitions, by brute force.
bool brute_is_surface(const std::vector<uint8_t>& m, const Dims& d, int64_t x, int64_t y, int64_t z) {
  if (!m[static_cast<size_t>(idx(d, x, y, z))]) return false;
  const int off[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
  for (const auto& o : off) {
    const int64_t a = x + o[0], b = y + o[1], c = z + o[2];
    if (a < 0 || b < 0 || c < 0 || a >= d[0] || b >= d[1] || c >= d[2]) return true;
    if (!m[static_cast<size_t>(idx(d, a, b, c))]) return true;
  }
  return false;
}

struct P3 {
  int64_t x, y, z;
};

std::vector<P3> brute_surface(const std::vector<uint8_t>& m, const Dims& d) {
  std::vector<P3> s;
  for (int64_t z = 0; z < d[2]; ++z)
    for (int64_t y = 0; y < d[1]; ++y)
      for (int64_t x = 0; x < d[0]; ++x)
        if (brute_is_surface(m, d, x, y, z)) s.push_back({x, y, z});
  return s;
}

double dist(const P3& a, const P3& b, const Spacing& s) {
  const double dx = static_cast<double>(a.x - b.x) * s[0], dy = static_cast<double>(a.y - b.y) * s[1],
               dz = static_cast<double>(a.z - b.z) * s[2];
  return std::sqrt(dx * dx + dy * dy + dz * dz);
}

std::vector<double> brute_directed(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, const Dims& d,
                                   const Spacing& s) {
  const std::vector<P3> sa = brute_surface(a, d), sb = brute_surface(b, d);
  std::vector<double> out;
  for (const P3& p : sa) {
    double best = std::numeric_limits<double>::infinity();
    for (const P3& q : sb) best = std::min(best, dist(p, q, s));
    out.push_back(best);
  }
  return out;
}

// numpy.percentile(v, q), 'linear', from a full sort.
double brute_percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double h = q / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (h - std::floor(h)) * (v[hi] - v[lo]);
}

std::vector<uint8_t> random_mask(const Dims& d, std::mt19937_64& rng, double p) {
  std::bernoulli_distribution b(p);
  std::vector<uint8_t> m(static_cast<size_t>(numel(d)));
  for (auto& v : m) v = b(rng) ? 1 : 0;
  return m;
}

std::vector<uint8_t> sphere(const Dims& d, double cx, double cy, double cz, double r, const Spacing& s) {
  std::vector<uint8_t> m(static_cast<size_t>(numel(d)), 0);
  for (int64_t z = 0; z < d[2]; ++z)
    for (int64_t y = 0; y < d[1]; ++y)
      for (int64_t x = 0; x < d[0]; ++x) {
        const double dx = (static_cast<double>(x) - cx) * s[0], dy = (static_cast<double>(y) - cy) * s[1],
                     dz = (static_cast<double>(z) - cz) * s[2];
        m[static_cast<size_t>(idx(d, x, y, z))] = dx * dx + dy * dy + dz * dz <= r * r ? 1 : 0;
      }
  return m;
}

}  // namespace

TEST_CASE("metrics: two single voxels at a known offset, anisotropic spacing", "[metrics]") {
  const Dims d{8, 6, 7};
  const Spacing s{0.5, 2.0, 1.5};
  std::vector<uint8_t> a(static_cast<size_t>(numel(d)), 0), b = a;
  a[static_cast<size_t>(idx(d, 2, 3, 1))] = 1;
  b[static_cast<size_t>(idx(d, 5, 1, 4))] = 1;
  const double want = std::sqrt(1.5 * 1.5 + 4.0 * 4.0 + 4.5 * 4.5);  // (3, -2, 3) voxels
  const MaskMetrics m = evaluate_masks(a, b, grid(d, s));
  CHECK(m.dice == 0);
  CHECK(!m.gt_empty);
  CHECK(!m.pred_empty);
  CHECK(m.hd95_mm == Approx(want).epsilon(1e-14));
  CHECK(hd95(a, b, d, s) == Approx(want).epsilon(1e-14));
  const std::vector<double> ab = directed_surface_distances(a, b, d, s);
  REQUIRE(ab.size() == 1);
  CHECK(ab[0] == Approx(want).epsilon(1e-14));
}

TEST_CASE("metrics: parallel one-voxel planes k apart: every distance is k * spacing", "[metrics]") {
  const Dims d{10, 8, 12};
  const Spacing s{0.9, 1.2, 2.5};
  for (int64_t k : {1, 3, 7}) {
    const std::vector<uint8_t> a = box_mask(d, {0, 0, 2}, {10, 8, 3}), b = box_mask(d, {0, 0, 2 + k}, {10, 8, 3 + k});
    const std::vector<double> ab = directed_surface_distances(a, b, d, s);
    CHECK(ab.size() == 80);
    for (double v : ab) CHECK(v == Approx(static_cast<double>(k) * 2.5).epsilon(1e-14));
    CHECK(hd95(a, b, d, s) == Approx(static_cast<double>(k) * 2.5).epsilon(1e-14));
    CHECK(evaluate_masks(a, b, grid(d, s)).dice == 0);
  }
}

TEST_CASE("metrics: two cubes offset by k voxels", "[metrics]") {
  const Dims d{20, 12, 11};
  const Spacing s{1.3, 0.8, 1.7};
  for (int64_t k : {1, 2, 4, 6}) {
    const std::vector<uint8_t> a = box_mask(d, {2, 3, 2}, {8, 9, 8}), b = box_mask(d, {2 + k, 3, 2}, {8 + k, 9, 8});
    // Dice: the cubes (6³) overlap in (6 - k) x 6 x 6.
    const MaskMetrics m = evaluate_masks(a, b, grid(d, s));
    CHECK(m.overlap == (6 - k) * 36);
    CHECK(m.dice == Approx(2.0 * static_cast<double>((6 - k) * 36) / (2 * 216)).epsilon(1e-15));
    // The farthest surface voxel of either cube is on its far x face: k * sx.
    const std::vector<double> ab = directed_surface_distances(a, b, d, s), ba = directed_surface_distances(b, a, d, s);
    CHECK(*std::max_element(ab.begin(), ab.end()) == Approx(static_cast<double>(k) * 1.3).epsilon(1e-14));
    CHECK(*std::max_element(ba.begin(), ba.end()) == Approx(static_cast<double>(k) * 1.3).epsilon(1e-14));
    // Against the brute force.
    const std::vector<double> bab = brute_directed(a, b, d, s), bba = brute_directed(b, a, d, s);
    REQUIRE(ab.size() == bab.size());
    for (size_t i = 0; i < ab.size(); ++i) CHECK(ab[i] == Approx(bab[i]).epsilon(1e-13).margin(1e-13));
    const double want = std::max(brute_percentile(bab, 95), brute_percentile(bba, 95));
    CHECK(m.hd95_mm == Approx(want).epsilon(1e-13));
  }
}

TEST_CASE("metrics: percentile_linear is numpy's linear percentile", "[metrics]") {
  CHECK(percentile_linear({1, 2, 3, 4}, 95) == Approx(3.85).epsilon(1e-15));  // numpy: 3.85
  CHECK(percentile_linear({4, 3, 2, 1}, 95) == Approx(3.85).epsilon(1e-15));
  CHECK(percentile_linear({0, 10}, 95) == Approx(9.5).epsilon(1e-15));
  CHECK(percentile_linear({7}, 95) == 7);
  CHECK(percentile_linear({3, 1, 2}, 0) == 1);
  CHECK(percentile_linear({3, 1, 2}, 100) == 3);
  CHECK(percentile_linear({3, 1, 2}, 50) == 2);
  // 21 values 0..20: h = 19 exactly.
  std::vector<double> v;
  for (int i = 20; i >= 0; --i) v.push_back(i);
  CHECK(percentile_linear(v, 95) == Approx(19).epsilon(1e-15));
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 50);
  for (int n : {2, 5, 19, 20, 101, 1000}) {
    std::vector<double> w(static_cast<size_t>(n));
    for (auto& x : w) x = u(rng);
    for (double q : {0.0, 5.0, 50.0, 95.0, 99.9, 100.0})
      CHECK(percentile_linear(w, q) == Approx(brute_percentile(w, q)).epsilon(1e-13));
  }
  CHECK_THROWS_AS(percentile_linear({}, 95), MetricsError);
  CHECK_THROWS_AS(percentile_linear({1}, 101), MetricsError);
}

TEST_CASE("metrics: squared EDT matches the brute force (anisotropic, random masks)", "[metrics]") {
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    std::mt19937_64 rng(seed);
    const Dims d{static_cast<int64_t>(5 + seed % 4), static_cast<int64_t>(4 + seed % 3),
                 static_cast<int64_t>(3 + seed)};
    const Spacing s{0.6 + 0.1 * static_cast<double>(seed), 1.7, 0.45 * static_cast<double>(seed)};
    const std::vector<uint8_t> f = random_mask(d, rng, seed == 5 ? 0.02 : 0.15);
    const std::vector<double> e = squared_edt(f, d, s);
    for (int64_t z = 0; z < d[2]; ++z)
      for (int64_t y = 0; y < d[1]; ++y)
        for (int64_t x = 0; x < d[0]; ++x) {
          double best = std::numeric_limits<double>::infinity();
          for (int64_t c = 0; c < d[2]; ++c)
            for (int64_t b = 0; b < d[1]; ++b)
              for (int64_t a = 0; a < d[0]; ++a)
                if (f[static_cast<size_t>(idx(d, a, b, c))]) {
                  const double v = dist({x, y, z}, {a, b, c}, s);
                  best = std::min(best, v * v);
                }
          const double got = e[static_cast<size_t>(idx(d, x, y, z))];
          if (std::isinf(best))
            CHECK(std::isinf(got));
          else
            CHECK(got == Approx(best).epsilon(1e-13).margin(1e-13));
        }
  }
  // No feature at all: +inf everywhere.
  const std::vector<double> none = squared_edt(std::vector<uint8_t>(24, 0), {2, 3, 4}, {1, 1, 1});
  for (double v : none) CHECK(std::isinf(v));
}

TEST_CASE("metrics: surfaces, directed distances and HD95 match the brute force", "[metrics]") {
  for (uint64_t seed : {11, 12, 13, 14, 15, 16}) {
    std::mt19937_64 rng(seed);
    const Dims d{9, 8, 7};
    const Spacing s{0.5 + 0.2 * static_cast<double>(seed % 3), 1.1, 2.0 + 0.3 * static_cast<double>(seed % 2)};
    std::vector<uint8_t> a, b;
    if (seed % 2) {
      a = random_mask(d, rng, 0.3);
      b = random_mask(d, rng, 0.25);
    } else {  // a sphere and a shifted, slightly larger one
      a = sphere(d, 4, 3.5, 3, 3.2, {1, 1, 1});
      b = sphere(d, 4.0 + static_cast<double>(seed % 3), 4, 3.5, 3.6, {1, 1, 1});
    }
    const std::vector<uint8_t> sa = surface_voxels(a, d);
    const std::vector<P3> bsa = brute_surface(a, d);
    size_t count = 0;
    for (size_t i = 0; i < sa.size(); ++i) count += sa[i];
    CHECK(count == bsa.size());
    for (const P3& p : bsa) CHECK(sa[static_cast<size_t>(idx(d, p.x, p.y, p.z))] == 1);

    const std::vector<double> ab = directed_surface_distances(a, b, d, s), ba = directed_surface_distances(b, a, d, s);
    const std::vector<double> bab = brute_directed(a, b, d, s), bba = brute_directed(b, a, d, s);
    REQUIRE(ab.size() == bab.size());
    REQUIRE(ba.size() == bba.size());
    for (size_t i = 0; i < ab.size(); ++i) CHECK(ab[i] == Approx(bab[i]).epsilon(1e-13).margin(1e-13));
    for (size_t i = 0; i < ba.size(); ++i) CHECK(ba[i] == Approx(bba[i]).epsilon(1e-13).margin(1e-13));
    const double want = std::max(brute_percentile(bab, 95), brute_percentile(bba, 95));
    CHECK(hd95(a, b, d, s) == Approx(want).epsilon(1e-12));
    CHECK(hd95(b, a, d, s) == Approx(want).epsilon(1e-12));  // symmetric
  }
}

TEST_CASE("metrics: results do not depend on the thread count", "[metrics]") {
  std::mt19937_64 rng(7);
  const Dims d{61, 47, 33};  // over the threshold for threads, odd sizes
  const Spacing s{0.9, 1.1, 2.3};
  const std::vector<uint8_t> f = random_mask(d, rng, 0.001);
  const std::vector<uint8_t> a = sphere(d, 30, 22, 16, 14, s), b = sphere(d, 33, 21, 17, 13, s);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<double> e1 = squared_edt(f, d, s);
  const double h1 = hd95(a, b, d, s);
  omp_set_num_threads(3);
  const std::vector<double> e3 = squared_edt(f, d, s);
  const double h3 = hd95(a, b, d, s);
  omp_set_num_threads(before);
  CHECK(e1 == e3);
  CHECK(h1 == h3);
}

TEST_CASE("metrics: Dice on crafted overlaps", "[metrics]") {
  const Dims d{10, 4, 3};
  const Geometry g = grid(d);
  // P: 10 voxels (x 0..9 of row y=0, z=0), G: 6 voxels (x 6..9 and two elsewhere).
  const std::vector<uint8_t> p = box_mask(d, {0, 0, 0}, {10, 1, 1});
  std::vector<uint8_t> gt = box_mask(d, {6, 0, 0}, {10, 1, 1});
  gt[static_cast<size_t>(idx(d, 0, 3, 2))] = 1;
  gt[static_cast<size_t>(idx(d, 9, 3, 2))] = 1;
  const MaskMetrics m = evaluate_masks(p, gt, g);
  CHECK(m.pred_voxels == 10);
  CHECK(m.gt_voxels == 6);
  CHECK(m.overlap == 4);
  CHECK(m.dice == 0.5);  // 2*4 / (10 + 6)
  CHECK(evaluate_masks(p, p, g).dice == 1);
  CHECK(evaluate_masks(p, p, g).hd95_mm == 0);
  // Non-zero values count as foreground.
  std::vector<uint8_t> p7 = p;
  for (auto& v : p7) v = v ? 7 : 0;
  CHECK(evaluate_masks(p7, gt, g).dice == 0.5);
}

TEST_CASE("metrics: empty-mask conventions", "[metrics]") {
  CHECK(kEmptyHd95Mm == 373.13);
  CHECK(std::sqrt(240.0 * 240 + 240.0 * 240 + 155.0 * 155) == Approx(kEmptyHd95Mm).margin(0.005));
  const Dims d{5, 5, 5};
  const Geometry g = grid(d, {1, 2, 3});
  const std::vector<uint8_t> none(125, 0), some = box_mask(d, {1, 1, 1}, {3, 3, 3});
  MaskMetrics m = evaluate_masks(none, none, g);
  CHECK(m.dice == 1);
  CHECK(m.hd95_mm == 0);
  CHECK(m.gt_empty);
  CHECK(m.pred_empty);
  CHECK(!m.applicable());
  m = evaluate_masks(some, none, g);  // prediction only: a false positive
  CHECK(m.dice == 0);
  CHECK(m.hd95_mm == kEmptyHd95Mm);
  CHECK(m.gt_empty);
  CHECK(!m.pred_empty);
  CHECK(!m.applicable());
  m = evaluate_masks(none, some, g);  // missed entirely
  CHECK(m.dice == 0);
  CHECK(m.hd95_mm == kEmptyHd95Mm);
  CHECK(!m.gt_empty);
  CHECK(m.pred_empty);
  CHECK(m.applicable());
  CHECK_THROWS_AS(hd95(none, some, d, {1, 1, 1}), MetricsError);
  CHECK_THROWS_WITH(evaluate_masks(std::vector<uint8_t>(124, 0), none, g), Contains("5x5x5"));
}

TEST_CASE("metrics: regions of a crafted label volume", "[metrics]") {
  const Dims d{6, 5, 4};
  const Geometry g = grid(d, {1, 1, 2});
  std::vector<uint8_t> gt(static_cast<size_t>(numel(d)), 0), pr = gt;
  auto set = [&](std::vector<uint8_t>& v, int64_t x, int64_t y, int64_t z, uint8_t l) {
    v[static_cast<size_t>(idx(d, x, y, z))] = l;
  };
  // Ground truth: NCR 2 voxels, ET 3, ED 5.  Prediction: NCR 1 (right), ET 3
  // (2 right, 1 on an ED voxel), ED 4 (3 right, 1 on an NCR voxel).
  set(gt, 1, 1, 1, 1), set(gt, 2, 1, 1, 1);
  set(gt, 1, 2, 1, 4), set(gt, 2, 2, 1, 4), set(gt, 3, 2, 1, 4);
  for (int64_t x = 0; x < 5; ++x) set(gt, x, 3, 1, 2);
  set(pr, 1, 1, 1, 1);
  set(pr, 2, 1, 1, 2);
  set(pr, 1, 2, 1, 4), set(pr, 2, 2, 1, 4), set(pr, 0, 3, 1, 4);
  set(pr, 1, 3, 1, 2), set(pr, 2, 3, 1, 2), set(pr, 3, 3, 1, 2);
  const CaseMetrics c = evaluate_labels(pr, gt, g);
  CHECK(c[Region::NCR].dice == Approx(2.0 * 1 / (1 + 2)));
  CHECK(c[Region::ET].dice == Approx(2.0 * 2 / (3 + 3)));
  CHECK(c[Region::ED].dice == Approx(2.0 * 3 / (4 + 5)));
  // WT: gt 10 voxels, pred 8, all pred voxels inside gt's WT.
  CHECK(c[Region::WT].gt_voxels == 10);
  CHECK(c[Region::WT].pred_voxels == 8);
  CHECK(c[Region::WT].dice == Approx(2.0 * 8 / 18));
  // TC: gt {NCR, ET} 5 voxels; pred {NCR 1, ET 3} = 4, overlap 3 ((1,1,1), (1,2,1), (2,2,1)).
  CHECK(c[Region::TC].overlap == 3);
  CHECK(c[Region::TC].dice == Approx(2.0 * 3 / 9));
  // Each region equals evaluate_masks on its mask.
  for (Region r : kRegions) {
    std::vector<uint8_t> pm(pr.size()), gm(gt.size());
    for (size_t i = 0; i < pr.size(); ++i) pm[i] = region_contains(r, pr[i]), gm[i] = region_contains(r, gt[i]);
    const MaskMetrics m = evaluate_masks(pm, gm, g);
    INFO(region_name(r));
    CHECK(c[r].dice == m.dice);
    CHECK(c[r].hd95_mm == m.hd95_mm);
  }
  // A label outside {0, 1, 2, 4}.
  set(pr, 5, 4, 3, 3);
  CHECK_THROWS_WITH(evaluate_labels(pr, gt, g), Contains("label 3") && Contains("prediction"));
}

TEST_CASE("metrics: label codings and label errors name the file and the value", "[metrics]") {
  CHECK(to_brats_labels({0, 1, 2, 4}, BratsNaming::Brats2021, "x") == std::vector<uint8_t>{0, 1, 2, 4});
  CHECK(to_brats_labels({0, 1, 2, 3}, BratsNaming::Brats2023, "x") == std::vector<uint8_t>{0, 1, 2, 4});
  CHECK_THROWS_WITH(to_brats_labels({0, 3, 3, 1}, BratsNaming::Brats2021, "pred/a.nii.gz"),
                    Contains("pred/a.nii.gz") && Contains("{0, 1, 2, 4}") && Contains("3 (2 voxels)"));
  CHECK_THROWS_WITH(to_brats_labels({0, 4}, BratsNaming::Brats2023, "seg.nii.gz"),
                    Contains("seg.nii.gz") && Contains("{0, 1, 2, 3}") && Contains("4 (1 voxels)"));
  CHECK_THROWS_WITH(to_brats_labels({1.5f}, BratsNaming::Brats2021, "f"), Contains("1.5"));
  CHECK_THROWS_WITH(to_brats_labels({std::nanf("")}, BratsNaming::Brats2021, "f"), Contains("nan"));
  CHECK(parse_label_coding("brats2023") == BratsNaming::Brats2023);
  CHECK(parse_label_coding("2021") == BratsNaming::Brats2021);
  CHECK_THROWS_AS(parse_label_coding("2020"), std::invalid_argument);
}

TEST_CASE("metrics: golden numbers from scipy / MONAI (tests/golden/metrics)", "[metrics][golden]") {
  std::ifstream in(std::string(LKASEG_GOLDEN_DIR) + "/metrics/cases.txt");
  REQUIRE(in.good());
  std::string line;
  int cases = 0, regions_checked = 0;
  const auto parse_rle = [](const std::string& l, const std::string& key, int64_t n) {
    std::istringstream ss(l);
    std::string k, tok;
    ss >> k;
    REQUIRE(k == key);
    std::vector<uint8_t> v;
    while (ss >> tok) {
      const size_t c = tok.find(':');
      const int label = std::stoi(tok.substr(0, c));
      const int64_t count = std::stoll(tok.substr(c + 1));
      v.insert(v.end(), static_cast<size_t>(count), static_cast<uint8_t>(label));
    }
    REQUIRE(static_cast<int64_t>(v.size()) == n);
    return v;
  };
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream hs(line);
    std::string key, name;
    Dims d{};
    Spacing s{};
    hs >> key >> name >> d[0] >> d[1] >> d[2] >> s[0] >> s[1] >> s[2];
    REQUIRE(key == "case");
    std::string pl, gl;
    REQUIRE(std::getline(in, pl));
    REQUIRE(std::getline(in, gl));
    const std::vector<uint8_t> pred = parse_rle(pl, "pred", numel(d)), gt = parse_rle(gl, "gt", numel(d));
    const CaseMetrics c = evaluate_labels(pred, gt, grid(d, s));
    ++cases;
    for (;;) {
      REQUIRE(std::getline(in, line));
      if (line == "end") break;
      std::istringstream rs(line);
      std::string rkey, rname, dice_s, ref_s, monai_s, medpy_s;
      int gt_empty = 0, pred_empty = 0;
      rs >> rkey >> rname >> dice_s >> ref_s >> monai_s >> medpy_s >> gt_empty >> pred_empty;
      REQUIRE(rkey == "region");
      const Region* r = nullptr;
      for (const Region& q : kRegions)
        if (rname == region_name(q)) r = &q;
      REQUIRE(r != nullptr);
      INFO(name << " " << rname);
      const MaskMetrics& m = c[*r];
      CHECK(m.gt_empty == (gt_empty != 0));
      CHECK(m.pred_empty == (pred_empty != 0));
      CHECK(m.dice == Approx(std::stod(dice_s)).epsilon(1e-14).margin(1e-15));
      CHECK(m.hd95_mm == Approx(std::stod(ref_s)).epsilon(1e-12).margin(1e-12));
      if (monai_s != "nan") CHECK(m.hd95_mm == Approx(std::stod(monai_s)).epsilon(1e-6).margin(1e-6));
      ++regions_checked;
    }
  }
  CHECK(cases == 6);
  CHECK(regions_checked == 30);
}

TEST_CASE("metrics: aggregation (mean, population/sample std, not-applicable cells)", "[metrics]") {
  std::vector<CaseMetrics> cs(3);
  const auto set = [](MaskMetrics& m, double dice, double hd, bool ge, bool pe) {
    m.dice = dice, m.hd95_mm = hd, m.gt_empty = ge, m.pred_empty = pe;
  };
  set(cs[0][Region::NCR], 0.8, 2, false, false);
  set(cs[1][Region::NCR], 0.6, 4, false, false);
  set(cs[2][Region::NCR], 0.0, kEmptyHd95Mm, true, false);  // n/a: ground truth empty
  for (auto& c : cs) set(c[Region::ET], 1, 0, true, true);  // n/a everywhere
  std::array<RegionSummary, kNumRegions> s = aggregate(cs);
  const RegionSummary& ncr = s[static_cast<size_t>(Region::NCR)];
  CHECK(ncr.n == 2);
  CHECK(ncr.not_applicable == 1);
  CHECK(ncr.dice_mean == Approx(0.7));
  CHECK(ncr.dice_std == Approx(0.1));  // population
  CHECK(ncr.hd95_mean == Approx(3));
  CHECK(ncr.hd95_std == Approx(1));
  const RegionSummary& et = s[static_cast<size_t>(Region::ET)];
  CHECK(et.n == 0);
  CHECK(et.not_applicable == 3);
  CHECK(std::isnan(et.dice_mean));
  // The regions left at their defaults (both empty: Dice 1, HD95 0) are n/a too.
  CHECK(s[static_cast<size_t>(Region::WT)].not_applicable == 3);

  AggregateOptions o;
  o.ddof = 1;
  s = aggregate(cs, o);
  CHECK(s[static_cast<size_t>(Region::NCR)].dice_std == Approx(std::sqrt(0.02)));
  o.include_gt_empty = true;
  s = aggregate(cs, o);
  CHECK(s[static_cast<size_t>(Region::NCR)].n == 3);
  CHECK(s[static_cast<size_t>(Region::NCR)].dice_mean == Approx(1.4 / 3));
  CHECK(s[static_cast<size_t>(Region::NCR)].hd95_mean == Approx((6 + kEmptyHd95Mm) / 3));
  CHECK(s[static_cast<size_t>(Region::ET)].dice_mean == 1);
  CHECK(s[static_cast<size_t>(Region::ET)].hd95_mean == 0);
}

TEST_CASE("metrics: file pairs: grids must match, labels are checked", "[metrics]") {
  const lk::test::TempDir dir;
  Geometry g = grid({8, 7, 6}, {1, 1, 2});
  g.affine[0][3] = -10;
  std::vector<uint8_t> lab(static_cast<size_t>(g.numel()), 0);
  lab[10] = 1, lab[11] = 2, lab[12] = 4;
  write_nifti(dir.file("gt.nii.gz"), g, lab);
  write_nifti(dir.file("same.nii.gz"), g, lab);
  const CaseMetrics c = evaluate_label_files(dir.file("same.nii.gz"), BratsNaming::Brats2021, dir.file("gt.nii.gz"),
                                             BratsNaming::Brats2021);
  for (Region r : kRegions) CHECK(c[r].dice == 1);

  Geometry other = grid({8, 7, 5}, {1, 1, 2});
  write_nifti(dir.file("shape.nii.gz"), other, std::vector<uint8_t>(static_cast<size_t>(other.numel()), 0));
  CHECK_THROWS_WITH(evaluate_label_files(dir.file("shape.nii.gz"), BratsNaming::Brats2021, dir.file("gt.nii.gz"),
                                         BratsNaming::Brats2021),
                    Contains("shape.nii.gz") && Contains("gt.nii.gz") && Contains("8x7x5") && Contains("8x7x6"));
  Geometry moved = g;
  moved.affine[1][3] = 5;
  write_nifti(dir.file("moved.nii.gz"), moved, lab);
  CHECK_THROWS_WITH(evaluate_label_files(dir.file("moved.nii.gz"), BratsNaming::Brats2021, dir.file("gt.nii.gz"),
                                         BratsNaming::Brats2021),
                    Contains("moved.nii.gz") && Contains("gt.nii.gz") && Contains("affine"));
  Geometry spaced = g;
  spaced.spacing = {1, 1, 3};
  write_nifti(dir.file("spaced.nii.gz"), spaced, lab);
  CHECK_THROWS_WITH(evaluate_label_files(dir.file("spaced.nii.gz"), BratsNaming::Brats2021, dir.file("gt.nii.gz"),
                                         BratsNaming::Brats2021),
                    Contains("spaced.nii.gz") && Contains("gt.nii.gz") && Contains("spacing"));
  std::vector<uint8_t> bad = lab;
  bad[20] = 3;
  write_nifti(dir.file("bad.nii.gz"), g, bad);
  CHECK_THROWS_WITH(evaluate_label_files(dir.file("bad.nii.gz"), BratsNaming::Brats2021, dir.file("gt.nii.gz"),
                                         BratsNaming::Brats2021),
                    Contains("bad.nii.gz") && Contains("3 (1 voxels)"));
  // The same file read as BraTS 2023: 3 is ET, 4 is the bad value.
  CHECK_THROWS_WITH(evaluate_label_files(dir.file("bad.nii.gz"), BratsNaming::Brats2023, dir.file("gt.nii.gz"),
                                         BratsNaming::Brats2021),
                    Contains("bad.nii.gz") && Contains("4 (1 voxels)"));
}

// Timing of one 240x240x155 evaluation (not run by default:
// `test_metrics "[.timing]"`): a real case against a shifted copy of
// itself, and the worst case of masks filling most of the volume.
TEST_CASE("metrics: timing of a 240x240x155 evaluation", "[.timing]") {
  using clock = std::chrono::steady_clock;
  const auto secs = [](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };
  const Dims d{240, 240, 155};
  const Geometry g = grid(d);
  if (lk::test::have_brats2021()) {
    const BratsDataset ds = discover_brats_cases(lk::test::brats2021_dir().string());
    for (const BratsCase& c : ds.cases) {
      const Volume v = read_nifti(c.seg);
      const Geometry& cg = v.geom;
      const std::vector<uint8_t> truth = to_brats_labels(v.data, c.naming, c.seg);
      std::vector<uint8_t> p(truth.size(), 0);  // shifted by (2, -1, 1) voxels
      for (int64_t z = 1; z < cg.dims[2]; ++z)
        for (int64_t y = 0; y + 1 < cg.dims[1]; ++y)
          for (int64_t x = 2; x < cg.dims[0]; ++x)
            p[static_cast<size_t>(cg.index(x, y, z))] = truth[static_cast<size_t>(cg.index(x - 2, y + 1, z - 1))];
      const auto t0 = clock::now();
      const CaseMetrics m = evaluate_labels(p, truth, cg);
      std::printf("%s (%s): 5 regions in %.3f s; WT Dice %.4f HD95 %.3f mm, %lld voxels\n", c.id.c_str(),
                  dims_str(cg.dims).c_str(), secs(t0), m[Region::WT].dice, m[Region::WT].hd95_mm,
                  static_cast<long long>(m[Region::WT].gt_voxels));
    }
  }
  const Spacing s{1, 1, 1};
  const std::vector<uint8_t> a = sphere(d, 119.5, 119.5, 77, 110, s), b = sphere(d, 121, 118, 78, 100, s);
  auto t0 = clock::now();
  const MaskMetrics m = evaluate_masks(a, b, g);
  std::printf("worst case, two spheres of radius 110 and 100 in 240x240x155: %.3f s (Dice %.4f, HD95 %.3f mm)\n",
              secs(t0), m.dice, m.hd95_mm);
  std::vector<uint8_t> la(a.size()), lb(b.size());
  for (size_t i = 0; i < a.size(); ++i) la[i] = a[i] ? 2 : 0, lb[i] = b[i] ? 2 : 0;
  t0 = clock::now();
  evaluate_labels(la, lb, g);
  std::printf("worst case as labels (ED = WT, 5 regions, 2 non-empty): %.3f s\n", secs(t0));
  std::fflush(stdout);
}
