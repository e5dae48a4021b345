// write_nifti: what is written reads back identically (values, dims,
// spacing, affine), deterministically, and bad requests are refused.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numbers>

#include "data/nifti_read.h"
#include "data/nifti_write.h"
#include "tests/support/nifti_craft.h"

namespace {

using namespace lk;
using namespace lk::data;

// 7x5x3, spacing (0.8, 1.2, 2.5), rotated 30 degrees about z, offset.
Geometry oblique_geometry() {
  Geometry g;
  g.dims = {7, 5, 3};
  g.spacing = {0.8, 1.2, 2.5};
  const double c = std::cos(std::numbers::pi / 6), s = std::sin(std::numbers::pi / 6);
  g.affine = {{{c * 0.8, -s * 1.2, 0, -12.5}, {s * 0.8, c * 1.2, 0, 40.25}, {0, 0, 2.5, -7}, {0, 0, 0, 1}}};
  return g;
}

template <typename T>
std::vector<T> pattern(int64_t n, double scale) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<T>(((i * 37) % 11) * scale);
  return v;
}

template <typename T>
void check_roundtrip(const std::string& path, int datatype, double scale) {
  const Geometry g = oblique_geometry();
  const std::vector<T> values = pattern<T>(g.numel(), scale);
  write_nifti(path, g, values);
  const Volume v = read_nifti(path);
  CHECK(v.storage.datatype == datatype);
  CHECK(v.geom.dims == g.dims);
  for (int i = 0; i < 3; ++i) CHECK(v.geom.spacing[i] == Approx(g.spacing[i]).epsilon(1e-6));
  CHECK(affine_max_diff(v.geom.affine, g.affine) < 1e-5);
  CHECK(same_grid(v.geom, g));
  REQUIRE(v.data.size() == values.size());
  for (size_t i = 0; i < values.size(); ++i) CHECK(v.data[i] == static_cast<float>(values[i]));
}

}  // namespace

TEST_CASE("nifti write: uint8, int16, int32, float32 read back identically", "[nifti]") {
  test::TempDir dir;
  check_roundtrip<uint8_t>(dir.file("u8.nii.gz"), 2, 1.0);
  check_roundtrip<int16_t>(dir.file("i16.nii.gz"), 4, -300.0);
  check_roundtrip<int32_t>(dir.file("i32.nii"), 8, 1e6);
  check_roundtrip<float>(dir.file("f32.nii.gz"), 16, 0.125);
}

TEST_CASE("nifti write: the qform matches the sform's rotation", "[nifti]") {
  test::TempDir dir;
  const Geometry g = oblique_geometry();
  write_nifti(dir.file("q.nii"), g, pattern<uint8_t>(g.numel(), 1));
  // Remove the sform code so the reader falls back to the qform.
  test::Bytes b = test::read_bytes(dir.file("q.nii"));
  nifti_1_header h;
  std::memcpy(&h, b.data(), sizeof h);
  h.sform_code = 0;
  std::memcpy(b.data(), &h, sizeof h);
  test::write_bytes(dir.file("q.nii"), b);
  const Volume v = read_nifti(dir.file("q.nii"));
  CHECK(v.storage.affine_source == AffineSource::Qform);
  CHECK(affine_max_diff(v.geom.affine, g.affine) < 1e-5);
}

TEST_CASE("nifti write: the same input gives the same bytes", "[nifti]") {
  test::TempDir dir;
  const Geometry g = oblique_geometry();
  const auto values = pattern<int16_t>(g.numel(), 3);
  write_nifti(dir.file("a.nii.gz"), g, values, {.gzip_level = 1, .description = "x"});
  write_nifti(dir.file("b.nii.gz"), g, values, {.gzip_level = 1, .description = "x"});
  CHECK(test::read_bytes(dir.file("a.nii.gz")) == test::read_bytes(dir.file("b.nii.gz")));
  CHECK_FALSE(std::filesystem::exists(dir.file("a.nii.gz.partial")));
}

TEST_CASE("nifti write: bad requests are refused, naming the file", "[nifti]") {
  test::TempDir dir;
  Geometry g = oblique_geometry();
  const auto values = pattern<uint8_t>(g.numel(), 1);
  auto refuses = [&](const std::string& path, const Geometry& geom, const std::vector<uint8_t>& v,
                     const std::string& what) {
    try {
      write_nifti(path, geom, v);
      FAIL("no error for " << path);
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(path) != std::string::npos);
      CHECK(msg.find(what) != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(path));
  };
  refuses(dir.file("x.img"), g, values, ".nii or .nii.gz");
  refuses(dir.file("short.nii.gz"), g, std::vector<uint8_t>(10), "10 voxels given");
  Geometry big = g;
  big.dims[0] = 40000;
  refuses(dir.file("big.nii.gz"), big, values, "1..32767");
  Geometry flat = g;
  flat.spacing[1] = 0;
  refuses(dir.file("flat.nii.gz"), flat, values, "spacing[1]");
  refuses(dir.file("no_such_dir/x.nii.gz"), g, values, "cannot create");
}
