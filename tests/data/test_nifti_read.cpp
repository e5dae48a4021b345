// What read_nifti makes of valid files: every stored datatype as float32,
// scl_slope/scl_inter per the standard, the affine from sform / qform /
// pixdim, NIfTI-2, byte-swapped files, header extensions, 2-D files; a
// sibling file with the other extension is never read, and its workaround
// leaves nothing behind on Ctrl-C.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>

#include "data/nifti_read.h"
#include "data/nifti_write.h"
#include "tests/support/child_process.h"
#include "tests/support/nifti_craft.h"
#include "util/interrupt.h"

namespace {

using namespace lk;
using namespace lk::data;
using lk::test::Bytes;

template <typename T>
Bytes bytes_of(const std::vector<T>& v) {
  Bytes b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Writes a 6x1x1 volume of `values` stored as T (datatype dt) and reads it.
template <typename T>
std::vector<float> roundtrip(const test::TempDir& dir, int dt, const std::vector<T>& values) {
  const std::string path = dir.file("dt" + std::to_string(dt) + ".nii.gz");
  const nifti_1_header h = test::valid_header1(static_cast<int>(values.size()), 1, 1, dt);
  test::write_bytes(path, test::gzip(test::nifti_bytes(h, bytes_of(values))));
  const Volume v = read_nifti(path);
  CHECK(v.storage.datatype == dt);
  return v.data;
}

std::vector<float> ramp_floats(int64_t n) {
  std::vector<float> r(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) r[static_cast<size_t>(i)] = static_cast<float>(i % 1000);
  return r;
}

}  // namespace

TEST_CASE("nifti read: every supported datatype becomes float32", "[nifti]") {
  test::TempDir dir;
  const std::vector<float> s{-3, 0, 7, 100, -100, 42}, u{0, 3, 7, 100, 200, 42};
  CHECK(roundtrip<uint8_t>(dir, DT_UINT8, {0, 3, 7, 100, 200, 42}) == u);
  CHECK(roundtrip<int8_t>(dir, DT_INT8, {-3, 0, 7, 100, -100, 42}) == s);
  CHECK(roundtrip<int16_t>(dir, DT_INT16, {-3, 0, 7, 100, -100, 42}) == s);
  CHECK(roundtrip<uint16_t>(dir, DT_UINT16, {0, 3, 7, 100, 200, 42}) == u);
  CHECK(roundtrip<int32_t>(dir, DT_INT32, {-3, 0, 7, 100, -100, 42}) == s);
  CHECK(roundtrip<uint32_t>(dir, DT_UINT32, {0, 3, 7, 100, 200, 42}) == u);
  CHECK(roundtrip<int64_t>(dir, DT_INT64, {-3, 0, 7, 100, -100, 42}) == s);
  CHECK(roundtrip<uint64_t>(dir, DT_UINT64, {0, 3, 7, 100, 200, 42}) == u);
  CHECK(roundtrip<float>(dir, DT_FLOAT32, {-3, 0, 7, 100, -100, 42}) == s);
  CHECK(roundtrip<double>(dir, DT_FLOAT64, {-3, 0, 7, 100, -100, 42}) == s);
  const std::vector<float> big = roundtrip<uint16_t>(dir, DT_UINT16, {65535, 0, 1, 2, 3, 4});
  CHECK(big[0] == 65535.0f);
}

TEST_CASE("nifti read: scl_slope and scl_inter are applied per the standard", "[nifti]") {
  test::TempDir dir;
  const Bytes data = test::ramp_int16(24);
  auto read_with = [&](float slope, float inter) {
    nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16);
    h.scl_slope = slope;
    h.scl_inter = inter;
    test::write_bytes(dir.file("s.nii"), test::nifti_bytes(h, data));
    return read_nifti(dir.file("s.nii"));
  };
  const std::vector<float> ramp = ramp_floats(24);
  SECTION("slope 2, intercept 10: value = 2 * stored + 10") {
    const Volume v = read_with(2.0f, 10.0f);
    for (size_t i = 0; i < ramp.size(); ++i) CHECK(v.data[i] == 2 * ramp[i] + 10);
  }
  SECTION("slope 0 means no scaling, the intercept is ignored") {
    const Volume v = read_with(0.0f, 5.0f);
    CHECK(v.data == ramp);
    CHECK(v.storage.scl_slope == 0.0);
  }
  SECTION("a NaN slope (nibabel's 'unset') means no scaling") {
    const Volume v = read_with(std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::quiet_NaN());
    CHECK(v.data == ramp);
  }
  SECTION("slope 1 with an intercept shifts") {
    const Volume v = read_with(1.0f, -1.0f);
    CHECK(v.data[5] == 4.0f);
  }
}

TEST_CASE("nifti read: affine from sform, else qform, else pixdim", "[nifti]") {
  test::TempDir dir;
  const Bytes data = test::ramp_int16(24);
  nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16, 2.0f);
  // A qform of 180 degrees about z (quaternion b, c, d = 0, 0, 1), offset (1, 2, 3).
  h.qform_code = 1;
  h.quatern_d = 1.0f;
  h.qoffset_x = 1.0f;
  h.qoffset_y = 2.0f;
  h.qoffset_z = 3.0f;
  SECTION("sform_code > 0: the sform") {
    test::write_bytes(dir.file("a.nii"), test::nifti_bytes(h, data));
    const Volume v = read_nifti(dir.file("a.nii"));
    CHECK(v.storage.affine_source == AffineSource::Sform);
    const Affine want{{{2, 0, 0, -10}, {0, 2, 0, 20}, {0, 0, 2, 30}, {0, 0, 0, 1}}};
    CHECK(affine_max_diff(v.geom.affine, want) < 1e-6);
    CHECK(v.geom.spacing == std::array<double, 3>{2, 2, 2});
  }
  SECTION("sform_code 0, qform_code > 0: the qform") {
    h.sform_code = 0;
    test::write_bytes(dir.file("a.nii"), test::nifti_bytes(h, data));
    const Volume v = read_nifti(dir.file("a.nii"));
    CHECK(v.storage.affine_source == AffineSource::Qform);
    const Affine want{{{-2, 0, 0, 1}, {0, -2, 0, 2}, {0, 0, 2, 3}, {0, 0, 0, 1}}};
    CHECK(affine_max_diff(v.geom.affine, want) < 1e-6);
  }
  SECTION("both codes 0: diag(pixdim)") {
    h.sform_code = 0;
    h.qform_code = 0;
    test::write_bytes(dir.file("a.nii"), test::nifti_bytes(h, data));
    const Volume v = read_nifti(dir.file("a.nii"));
    CHECK(v.storage.affine_source == AffineSource::PixdimOnly);
    CHECK(affine_max_diff(v.geom.affine, scaling_affine({2, 2, 2})) == 0);
  }
  SECTION("a NaN in the sform is refused") {
    h.srow_y[1] = std::numeric_limits<float>::quiet_NaN();
    test::write_bytes(dir.file("a.nii"), test::nifti_bytes(h, data));
    CHECK_THROWS_AS(read_nifti(dir.file("a.nii")), NiftiError);
  }
}

TEST_CASE("nifti read: NIfTI-2, .nii and .nii.gz", "[nifti]") {
  test::TempDir dir;
  const nifti_2_header h = test::valid_header2(5, 4, 3, DT_INT16, 1.5);
  const Bytes raw = test::nifti_bytes(h, test::ramp_int16(60));
  test::write_bytes(dir.file("n2.nii"), raw);
  test::write_bytes(dir.file("n2.nii.gz"), test::gzip(raw));
  for (const char* name : {"n2.nii", "n2.nii.gz"}) {
    const Volume v = read_nifti(dir.file(name));
    CHECK(v.storage.version == 2);
    CHECK(v.storage.vox_offset == 544);
    CHECK(v.geom.dims == std::array<int64_t, 3>{5, 4, 3});
    CHECK(v.geom.spacing == std::array<double, 3>{1.5, 1.5, 1.5});
    CHECK(v.geom.affine[1][3] == 20.0);
    CHECK(v.data == ramp_floats(60));
  }
}

TEST_CASE("nifti read: byte-swapped (big-endian) files", "[nifti]") {
  test::TempDir dir;
  const Bytes be_data = test::swap_int16(test::ramp_int16(24));
  test::write_bytes(dir.file("be1.nii.gz"),
                    test::gzip(test::nifti_bytes(test::swapped(test::valid_header1(4, 3, 2, DT_INT16)), be_data)));
  test::write_bytes(dir.file("be2.nii"),
                    test::nifti_bytes(test::swapped(test::valid_header2(4, 3, 2, DT_INT16)), be_data));
  for (const char* name : {"be1.nii.gz", "be2.nii"}) {
    const Volume v = read_nifti(dir.file(name));
    CHECK(v.storage.byte_swapped);
    CHECK(v.geom.dims == std::array<int64_t, 3>{4, 3, 2});
    CHECK(v.geom.affine[2][3] == 30.0);
    CHECK(v.data == ramp_floats(24));
  }
}

TEST_CASE("nifti read: header extensions are skipped, data read from vox_offset", "[nifti]") {
  test::TempDir dir;
  const Bytes data = test::ramp_int16(24);
  SECTION("one 32-byte comment extension, vox_offset 384") {
    nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16);
    h.vox_offset = 384;
    test::write_bytes(dir.file("e.nii.gz"), test::gzip(test::nifti_bytes(h, data, test::comment_extension(32, "hi"))));
    const Volume v = read_nifti(dir.file("e.nii.gz"));
    CHECK(v.storage.num_extensions == 1);
    CHECK(v.data == ramp_floats(24));
  }
  SECTION("a 2224-byte extension, vox_offset 2592 (as in BraTS2021_01476_seg)") {
    nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16);
    h.vox_offset = 2592;
    test::write_bytes(dir.file("e.nii.gz"),
                      test::gzip(test::nifti_bytes(h, data, test::comment_extension(2592 - 352, "brats"))));
    const Volume v = read_nifti(dir.file("e.nii.gz"));
    CHECK(v.storage.vox_offset == 2592);
    CHECK(v.storage.num_extensions == 1);
    CHECK(v.data == ramp_floats(24));
  }
  SECTION("an extension whose esize is malformed: the data still comes from vox_offset") {
    nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16);
    h.vox_offset = 400;
    Bytes ext = test::comment_extension(48, "bad");
    const int32_t bad_size = 7;
    std::memcpy(ext.data(), &bad_size, 4);
    test::write_bytes(dir.file("e.nii"), test::nifti_bytes(h, data, ext));
    const Volume v = read_nifti(dir.file("e.nii"));
    CHECK(v.data == ramp_floats(24));
  }
}

TEST_CASE("nifti read: a 2-D file is a volume with nz = 1", "[nifti]") {
  test::TempDir dir;
  nifti_1_header h = test::valid_header1(4, 3, 1, DT_INT16);
  h.dim[0] = 2;
  h.pixdim[3] = 0;  // unused
  test::write_bytes(dir.file("flat.nii"), test::nifti_bytes(h, test::ramp_int16(12)));
  const Volume v = read_nifti(dir.file("flat.nii"));
  CHECK(v.geom.dims == std::array<int64_t, 3>{4, 3, 1});
  CHECK(v.geom.spacing[2] == 1.0);
  CHECK(v.data == ramp_floats(12));
}

TEST_CASE("nifti read: NaN/Inf float voxels are counted (nifti_clib reads them as 0)", "[nifti]") {
  test::TempDir dir;
  SECTION("float32, .nii and .nii.gz") {
    std::vector<float> v(24, 1.0f);
    v[5] = std::numeric_limits<float>::quiet_NaN();
    v[9] = -std::numeric_limits<float>::infinity();
    const Bytes raw = test::nifti_bytes(test::valid_header1(4, 3, 2, DT_FLOAT32), bytes_of(v));
    test::write_bytes(dir.file("f.nii"), raw);
    test::write_bytes(dir.file("f.nii.gz"), test::gzip(raw));
    for (const char* name : {"f.nii", "f.nii.gz"}) {
      const Volume r = read_nifti(dir.file(name));
      CHECK(r.storage.nonfinite_voxels == 2);
      CHECK(r.storage.first_nonfinite == 5);
      CHECK(r.data[5] == 0.0f);  // nifti_clib's replacement
    }
  }
  SECTION("float64, byte-swapped") {
    std::vector<double> v(24, 2.0);
    v[23] = std::numeric_limits<double>::infinity();
    Bytes data = bytes_of(v);
    for (size_t i = 0; i < data.size(); i += 8) std::reverse(data.begin() + static_cast<long>(i), data.begin() + static_cast<long>(i) + 8);
    test::write_bytes(dir.file("d.nii.gz"),
                      test::gzip(test::nifti_bytes(test::swapped(test::valid_header1(4, 3, 2, DT_FLOAT64)), data)));
    const Volume r = read_nifti(dir.file("d.nii.gz"));
    CHECK(r.storage.nonfinite_voxels == 1);
    CHECK(r.storage.first_nonfinite == 23);
    CHECK(r.data[0] == 2.0f);
  }
  SECTION("a voxel straddling two decompression chunks (vox_offset 354, 400 KB)") {
    const int n = 100000;
    std::vector<float> v(n, 3.0f);
    v[65447] = std::numeric_limits<float>::quiet_NaN();  // bytes 262142..262145 of the file
    v[n - 1] = std::numeric_limits<float>::quiet_NaN();
    nifti_1_header h = test::valid_header1(400, 250, 1, DT_FLOAT32);
    h.vox_offset = 354;
    test::write_bytes(dir.file("s.nii.gz"), test::gzip(test::nifti_bytes(h, bytes_of(v)), 1));
    const Volume r = read_nifti(dir.file("s.nii.gz"));
    CHECK(r.storage.nonfinite_voxels == 2);
    CHECK(r.storage.first_nonfinite == 65447);
    CHECK(r.data[65448] == 3.0f);
  }
  SECTION("integer data has none") {
    test::write_bytes(dir.file("i.nii"), test::nifti_bytes(test::valid_header1(4, 3, 2, DT_INT16), test::ramp_int16(24)));
    CHECK(read_nifti(dir.file("i.nii")).storage.nonfinite_voxels == 0);
  }
}

TEST_CASE("nifti read: a sibling file with the other extension does not stand in for the one asked for", "[nifti]") {
  // nifti_clib, given foo.nii.gz, may open foo.nii when both exist (found by
  // the fuzz replay): the reader must read exactly the validated file.
  const test::TempDir dir;
  Geometry g;
  g.dims = {3, 2, 2};
  std::vector<int16_t> a(12, 7), b(12, -3);
  for (const auto& [asked, other] : {std::pair{"x.nii.gz", "x.nii"}, std::pair{"y.nii", "y.nii.gz"}}) {
    CAPTURE(asked);
    write_nifti(dir.file(asked), g, a);
    write_nifti(dir.file(other), g, b);
    const Volume v = read_nifti(dir.file(asked));
    CHECK(v.data[0] == 7.f);
    CHECK(v.data[11] == 7.f);
  }
}

TEST_CASE("nifti read: a Ctrl-C while reading past a sibling leaves no private link behind", "[nifti]") {
  // The private link (above) lives in the temporary folder, which nothing
  // cleans: the child reads in a loop with TMPDIR pointing at a folder of its
  // own while SIGINT lands at a random moment; that folder must stay empty.
  const test::TempDir dir;
  Geometry g;
  g.dims = {3, 2, 2};
  write_nifti(dir.file("x.nii.gz"), g, std::vector<int16_t>(12, 7));
  write_nifti(dir.file("x.nii"), g, std::vector<int16_t>(12, -3));
  const std::filesystem::path tmp = dir.path() / "tmp";
  std::filesystem::create_directories(tmp);
  std::mt19937 rng(5);
  int trials = 0;
  bool empty = true;
  for (; trials < 100 && empty; ++trials) {
    const int code = test::interrupt_at_random(
        rng, 3000,
        [&tmp] {
          ::setenv("TMPDIR", tmp.c_str(), 1);
          lk::install_interrupt_handlers();
        },
        [&dir] {
          if (read_nifti(dir.file("x.nii.gz")).data[0] != 7.f) ::_exit(3);
        });
    CHECK(code == 130);
    empty = std::filesystem::is_empty(tmp);
  }
  INFO("trial " << trials);
  CHECK(empty);
}
