// Connected components (data/components.h): 26-connectivity (faces, edges
// and corners join), numbering in index order, and agreement with a plain
// union-find over every neighbour pair on random masks.
#include <catch2/catch.hpp>

#include <numeric>
#include <random>

#include "data/components.h"

using namespace lk::data;

namespace {

int64_t idx(const std::array<int64_t, 3>& d, int64_t x, int64_t y, int64_t z) { return x + d[0] * (y + d[1] * z); }

// Reference: union-find over all pairs of foreground voxels that differ by at
// most 1 on every axis.
std::vector<int64_t> reference_roots(const std::vector<uint8_t>& m, const std::array<int64_t, 3>& d) {
  std::vector<int64_t> parent(m.size());
  std::iota(parent.begin(), parent.end(), 0);
  const auto find = [&](int64_t a) {
    while (parent[static_cast<size_t>(a)] != a) a = parent[static_cast<size_t>(a)];
    return a;
  };
  for (int64_t z = 0; z < d[2]; ++z)
    for (int64_t y = 0; y < d[1]; ++y)
      for (int64_t x = 0; x < d[0]; ++x) {
        if (!m[static_cast<size_t>(idx(d, x, y, z))]) continue;
        for (int64_t dz = -1; dz <= 1; ++dz)
          for (int64_t dy = -1; dy <= 1; ++dy)
            for (int64_t dx = -1; dx <= 1; ++dx) {
              const int64_t qx = x + dx, qy = y + dy, qz = z + dz;
              if (qx < 0 || qy < 0 || qz < 0 || qx >= d[0] || qy >= d[1] || qz >= d[2]) continue;
              if (!m[static_cast<size_t>(idx(d, qx, qy, qz))]) continue;
              parent[static_cast<size_t>(find(idx(d, x, y, z)))] = find(idx(d, qx, qy, qz));
            }
      }
  std::vector<int64_t> root(m.size(), -1);
  for (size_t i = 0; i < m.size(); ++i)
    if (m[i]) root[i] = find(static_cast<int64_t>(i));
  return root;
}

}  // namespace

TEST_CASE("components: corners join under 26-connectivity, a gap separates", "[components]") {
  const std::array<int64_t, 3> d{5, 5, 5};
  std::vector<uint8_t> m(125, 0);
  m[static_cast<size_t>(idx(d, 0, 0, 0))] = 1;
  m[static_cast<size_t>(idx(d, 1, 1, 1))] = 1;  // corner neighbour of (0,0,0)
  m[static_cast<size_t>(idx(d, 3, 3, 3))] = 1;  // one voxel gap from (1,1,1)
  m[static_cast<size_t>(idx(d, 4, 4, 4))] = 1;
  m[static_cast<size_t>(idx(d, 4, 0, 0))] = 1;  // alone
  const Components c = connected_components(m, d);
  REQUIRE(c.count() == 3);
  // Numbered by first voxel in index order: (0,0,0) first, then (4,0,0), then (3,3,3).
  CHECK(c.label[static_cast<size_t>(idx(d, 0, 0, 0))] == 1);
  CHECK(c.label[static_cast<size_t>(idx(d, 1, 1, 1))] == 1);
  CHECK(c.label[static_cast<size_t>(idx(d, 4, 0, 0))] == 2);
  CHECK(c.label[static_cast<size_t>(idx(d, 3, 3, 3))] == 3);
  CHECK(c.label[static_cast<size_t>(idx(d, 4, 4, 4))] == 3);
  CHECK(c.size == std::vector<int64_t>{2, 1, 2});
  CHECK(c.label[static_cast<size_t>(idx(d, 2, 2, 2))] == 0);
}

TEST_CASE("components: empty and full masks, a size mismatch is refused", "[components]") {
  const std::array<int64_t, 3> d{3, 4, 2};
  CHECK(connected_components(std::vector<uint8_t>(24, 0), d).count() == 0);
  const Components full = connected_components(std::vector<uint8_t>(24, 7), d);
  CHECK(full.count() == 1);
  CHECK(full.size == std::vector<int64_t>{24});
  CHECK_THROWS_AS(connected_components(std::vector<uint8_t>(23, 0), d), std::invalid_argument);
}

TEST_CASE("components: the same partition as a union-find on random masks", "[components]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const std::array<int64_t, 3> d{static_cast<int64_t>(3 + rng() % 9), static_cast<int64_t>(3 + rng() % 9),
                                   static_cast<int64_t>(2 + rng() % 7)};
    const double density = 0.05 + 0.1 * (trial % 4);
    std::bernoulli_distribution on(density);
    std::vector<uint8_t> m(static_cast<size_t>(d[0] * d[1] * d[2]));
    for (auto& v : m) v = on(rng);
    const Components c = connected_components(m, d);
    const std::vector<int64_t> root = reference_roots(m, d);
    std::vector<int64_t> sizes(static_cast<size_t>(c.count()), 0);
    for (size_t i = 0; i < m.size(); ++i) {
      INFO("trial " << trial << " voxel " << i);
      REQUIRE((c.label[i] != 0) == (m[i] != 0));
      if (!m[i]) continue;
      ++sizes[static_cast<size_t>(c.label[i] - 1)];
      for (size_t j = 0; j < i; ++j)
        if (m[j]) REQUIRE((c.label[i] == c.label[j]) == (root[i] == root[j]));
    }
    CHECK(sizes == c.size);
  }
}
