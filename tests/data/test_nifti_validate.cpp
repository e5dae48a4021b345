// Malformed NIfTI files, crafted byte by byte: each starts from a valid
// header and corrupts one field (or the bytes after it), and must be refused
// with a NiftiError that names the file and the field, before any buffer is
// sized from the header. Every header case runs as .nii and as .nii.gz.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "data/nifti_read.h"
#include "data/nifti_validate.h"
#include "tests/support/nifti_craft.h"

namespace {

using namespace lk;
using namespace lk::data;
using lk::test::Bytes;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// read_nifti(path) must throw a NiftiError for `field`, whose message starts
// with the path and mentions the field (and `contains`, when given).
void expect_error(const std::string& path, const std::string& field, const std::string& contains = "") {
  try {
    (void)read_nifti(path);
    FAIL("no error for " << path << " (expected one about " << field << ")");
  } catch (const NiftiError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(e.file() == path);
    CHECK(e.field() == field);
    CHECK(msg.rfind(path + ": ", 0) == 0);
    CHECK(msg.find(field) != std::string::npos);
    if (!contains.empty()) CHECK(msg.find(contains) != std::string::npos);
  }
}

// Writes the file as .nii and .nii.gz and expects both to fail on `field`.
void expect_both(const test::TempDir& dir, const std::string& name, const Bytes& raw, const std::string& field,
                 const std::string& contains = "") {
  const std::string plain = dir.file(name + ".nii"), gz = dir.file(name + ".nii.gz");
  test::write_bytes(plain, raw);
  test::write_bytes(gz, test::gzip(raw));
  expect_error(plain, field, contains);
  expect_error(gz, field, contains);
}

struct Case1 {
  std::string name, field, contains;
  std::function<void(nifti_1_header&)> corrupt;
};

}  // namespace

TEST_CASE("nifti validate: the valid crafted files read (control)", "[nifti]") {
  test::TempDir dir;
  const Bytes data = test::ramp_int16(4 * 3 * 2);
  const Bytes raw = test::nifti_bytes(test::valid_header1(4, 3, 2, DT_INT16), data);
  test::write_bytes(dir.file("ok.nii"), raw);
  test::write_bytes(dir.file("ok.nii.gz"), test::gzip(raw));
  for (const char* name : {"ok.nii", "ok.nii.gz"}) {
    const Volume v = read_nifti(dir.file(name));
    CHECK(v.geom.dims == std::array<int64_t, 3>{4, 3, 2});
    CHECK(v.data.size() == 24);
    CHECK(v.at(3, 2, 1) == 23.0f);
  }
}

TEST_CASE("nifti validate: each corrupted NIfTI-1 header field is refused", "[nifti]") {
  const std::vector<Case1> cases = {
      {"sizeof_hdr_349", "sizeof_hdr", "349", [](auto& h) { h.sizeof_hdr = 349; }},
      {"sizeof_hdr_0", "sizeof_hdr", "must be 348", [](auto& h) { h.sizeof_hdr = 0; }},
      {"magic_n3", "magic", "\"n+3\"", [](auto& h) { std::memcpy(h.magic, "n+3", 4); }},
      {"magic_analyze", "magic", "ANALYZE", [](auto& h) { std::memset(h.magic, 0, 4); }},
      {"magic_pair", "magic", ".hdr/.img", [](auto& h) { std::memcpy(h.magic, "ni1", 4); }},
      {"dim0_zero", "dim[0]", "dim[0] = 0 must be in 1..7", [](auto& h) { h.dim[0] = 0; }},
      {"dim0_eight", "dim[0]", "dim[0] = 8", [](auto& h) { h.dim[0] = 8; }},
      {"dim0_negative", "dim[0]", "dim[0] = -3", [](auto& h) { h.dim[0] = -3; }},
      {"dim3_negative", "dim[3]", "dim[3] = -5 must be >= 1", [](auto& h) { h.dim[3] = -5; }},
      {"dim2_zero", "dim[2]", "dim[2] = 0 must be >= 1", [](auto& h) { h.dim[2] = 0; }},
      {"dim_overflow", "dim", "overflows", [](auto& h) {
         h.dim[0] = 7;
         for (int i = 1; i < 8; ++i) h.dim[i] = 32767;  // 32767^7 > 2^63
       }},
      {"datatype_complex", "datatype", "COMPLEX64", [](auto& h) { h.datatype = DT_COMPLEX64; h.bitpix = 64; }},
      {"datatype_rgb", "datatype", "RGB24", [](auto& h) { h.datatype = DT_RGB24; h.bitpix = 24; }},
      {"datatype_binary", "datatype", "BINARY", [](auto& h) { h.datatype = DT_BINARY; h.bitpix = 1; }},
      {"datatype_none", "datatype", "datatype = 0", [](auto& h) { h.datatype = 0; }},
      {"datatype_unknown", "datatype", "not a NIfTI datatype", [](auto& h) { h.datatype = 9999; }},
      {"bitpix_mismatch", "bitpix", "bitpix = 8 does not match datatype 4", [](auto& h) { h.bitpix = 8; }},
      {"vox_offset_zero", "vox_offset", ">= 352", [](auto& h) { h.vox_offset = 0; }},
      {"vox_offset_348", "vox_offset", ">= 352", [](auto& h) { h.vox_offset = 348; }},
      {"vox_offset_negative", "vox_offset", "-16", [](auto& h) { h.vox_offset = -16; }},
      {"vox_offset_nan", "vox_offset", "finite", [](auto& h) { h.vox_offset = kNaN; }},
      {"vox_offset_inf", "vox_offset", "finite", [](auto& h) { h.vox_offset = kInf; }},
      {"vox_offset_fraction", "vox_offset", "whole number", [](auto& h) { h.vox_offset = 352.5f; }},
      {"vox_offset_past_end", "vox_offset", "beyond the end", [](auto& h) { h.vox_offset = 1e8f; }},
      {"pixdim1_zero", "pixdim[1]", "pixdim[1] = 0 must be finite and > 0", [](auto& h) { h.pixdim[1] = 0; }},
      {"pixdim2_negative", "pixdim[2]", "pixdim[2] = -1", [](auto& h) { h.pixdim[2] = -1; }},
      {"pixdim3_nan", "pixdim[3]", "nan", [](auto& h) { h.pixdim[3] = kNaN; }},
      {"pixdim1_inf", "pixdim[1]", "inf", [](auto& h) { h.pixdim[1] = kInf; }},
      {"more_voxels_than_data", "dim", "only 48 are present", [](auto& h) { h.dim[3] = 20; }},
  };
  test::TempDir dir;
  const Bytes data = test::ramp_int16(4 * 3 * 2);
  for (const Case1& c : cases) {
    SECTION(c.name) {
      nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16);
      c.corrupt(h);
      expect_both(dir, c.name, test::nifti_bytes(h, data), c.field, c.contains);
    }
  }
}

TEST_CASE("nifti validate: an unused pixdim may be anything; a used one may not", "[nifti]") {
  test::TempDir dir;
  nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16);
  h.pixdim[4] = 0;  // dim[0] = 3: pixdim[4] is not used
  h.pixdim[5] = kNaN;
  test::write_bytes(dir.file("ok.nii.gz"), test::gzip(test::nifti_bytes(h, test::ramp_int16(24))));
  CHECK_NOTHROW(read_nifti(dir.file("ok.nii.gz")));
  // dim[4] = 1 is used now: a time step of 0 (common) is fine, NaN is not.
  h.dim[0] = 4;
  test::write_bytes(dir.file("zero_step.nii.gz"), test::gzip(test::nifti_bytes(h, test::ramp_int16(24))));
  CHECK_NOTHROW(read_nifti(dir.file("zero_step.nii.gz")));
  h.pixdim[4] = kNaN;
  test::write_bytes(dir.file("bad.nii.gz"), test::gzip(test::nifti_bytes(h, test::ramp_int16(24))));
  expect_error(dir.file("bad.nii.gz"), "pixdim[4]", "must be finite");
}

TEST_CASE("nifti validate: a 4-D volume passes validation but is not a 3-D Volume", "[nifti]") {
  test::TempDir dir;
  nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16);
  h.dim[0] = 4;
  h.dim[4] = 2;
  const std::string path = dir.file("fourd.nii.gz");
  test::write_bytes(path, test::gzip(test::nifti_bytes(h, test::ramp_int16(48))));
  CHECK(validate_nifti(path).nvox == 48);
  expect_error(path, "dim[4]", "3-D volume is expected");
  // As most tools write one: no time step (pixdim[4] = 0). The message says
  // what the file is, not that pixdim[4] is bad.
  h.pixdim[4] = 0;
  test::write_bytes(path, test::gzip(test::nifti_bytes(h, test::ramp_int16(48))));
  CHECK(validate_nifti(path).nvox == 48);
  expect_error(path, "dim[4]", "a 4-D image of 2 volumes, but a 3-D volume is expected");
  // A voxel size of 0 is still refused.
  h.pixdim[2] = 0;
  test::write_bytes(path, test::gzip(test::nifti_bytes(h, test::ramp_int16(48))));
  CHECK_THROWS_WITH(validate_nifti(path), Catch::Contains("pixdim[2] = 0 must be finite and > 0"));
}

TEST_CASE("nifti validate: missing or short data is refused without allocating it", "[nifti]") {
  test::TempDir dir;
  const nifti_1_header h = test::valid_header1(4, 3, 2, DT_INT16);
  const Bytes full = test::nifti_bytes(h, test::ramp_int16(24));

  SECTION("one byte short") {
    const Bytes cut(full.begin(), full.end() - 1);
    expect_both(dir, "short1", cut, "dim", "only 47 are present");
  }
  SECTION("no data at all") {
    const Bytes cut(full.begin(), full.begin() + 352);
    expect_both(dir, "nodata", cut, "dim", "only 0 are present");
  }
  SECTION("file ends inside the header") {
    const Bytes cut(full.begin(), full.begin() + 100);
    expect_both(dir, "cut_header", cut, "header", "only 100 bytes");
  }
  SECTION("file of 2 bytes") {
    expect_both(dir, "two_bytes", Bytes{1, 2}, "header", "too few");
  }
  SECTION("empty file") {
    const std::string path = dir.file("empty.nii");
    test::write_bytes(path, {});
    expect_error(path, "header", "too few");
  }
  SECTION("a NIfTI-2 header claiming 10^12 voxels over 48 bytes of data") {
    nifti_2_header h2 = test::valid_header2(1000000, 1000000, 1, DT_INT16);
    expect_both(dir, "huge2", test::nifti_bytes(h2, test::ramp_int16(24)), "dim", "2000000000000 bytes");
  }
}

TEST_CASE("nifti validate: truncated and corrupt gzip streams are refused", "[nifti]") {
  test::TempDir dir;
  const nifti_1_header h = test::valid_header1(16, 16, 8, DT_INT16);
  const Bytes gz = test::gzip(test::nifti_bytes(h, test::ramp_int16(16 * 16 * 8)));
  REQUIRE(gz.size() > 200);

  SECTION("stream cut in the middle") {
    const std::string path = dir.file("half.nii.gz");
    test::write_bytes(path, Bytes(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2)));
    expect_error(path, "gzip", "truncated");
  }
  SECTION("only the 8-byte trailer (CRC, length) missing") {
    const std::string path = dir.file("notrailer.nii.gz");
    test::write_bytes(path, Bytes(gz.begin(), gz.end() - 8));
    expect_error(path, "gzip", "truncated");
  }
  SECTION("stream cut inside the header") {
    const std::string path = dir.file("tiny.nii.gz");
    test::write_bytes(path, Bytes(gz.begin(), gz.begin() + 30));
    expect_error(path, "gzip", "truncated inside the");
  }
  SECTION("corrupt bytes in the compressed data") {
    Bytes bad = gz;
    for (size_t i = bad.size() / 2; i < bad.size() / 2 + 16; ++i) bad[i] ^= 0x5a;
    const std::string path = dir.file("corrupt.nii.gz");
    test::write_bytes(path, bad);
    expect_error(path, "gzip", "corrupt");
  }
  SECTION("wrong CRC in the trailer") {
    Bytes bad = gz;
    bad[bad.size() - 8] ^= 0xff;
    const std::string path = dir.file("crc.nii.gz");
    test::write_bytes(path, bad);
    expect_error(path, "gzip", "corrupt");
  }
}

TEST_CASE("nifti validate: file names and compression must agree", "[nifti]") {
  test::TempDir dir;
  const Bytes raw = test::nifti_bytes(test::valid_header1(4, 3, 2, DT_INT16), test::ramp_int16(24));
  test::write_bytes(dir.file("gz_named_plain.nii"), test::gzip(raw));
  expect_error(dir.file("gz_named_plain.nii"), "file name", "content is gzip-compressed");
  test::write_bytes(dir.file("plain_named_gz.nii.gz"), raw);
  expect_error(dir.file("plain_named_gz.nii.gz"), "file name", "not gzip-compressed");
  test::write_bytes(dir.file("pair.img"), raw);
  expect_error(dir.file("pair.img"), "file name", "must end in .nii or .nii.gz");
  expect_error(dir.file("absent.nii.gz"), "file", "does not exist");
}

TEST_CASE("nifti validate: corrupted NIfTI-2 headers are refused", "[nifti]") {
  test::TempDir dir;
  const Bytes data = test::ramp_int16(24);
  auto with = [&](const std::function<void(nifti_2_header&)>& corrupt) {
    nifti_2_header h = test::valid_header2(4, 3, 2, DT_INT16);
    corrupt(h);
    return test::nifti_bytes(h, data);
  };
  expect_both(dir, "n2_magic_tail", with([](auto& h) { h.magic[5] = '\n'; h.magic[4] = '\n'; }), "magic", "text-mode");
  expect_both(dir, "n2_magic", with([](auto& h) { std::memcpy(h.magic, "n+1", 4); }), "magic", "\"n+1\"");
  expect_both(dir, "n2_pair", with([](auto& h) { std::memcpy(h.magic, "ni2", 4); }), "magic", ".hdr/.img");
  expect_both(dir, "n2_dim0", with([](auto& h) { h.dim[0] = 9; }), "dim[0]", "dim[0] = 9");
  expect_both(dir, "n2_dim1", with([](auto& h) { h.dim[1] = -2; }), "dim[1]", "dim[1] = -2");
  expect_both(dir, "n2_overflow", with([](auto& h) { h.dim[1] = h.dim[2] = int64_t{1} << 40; }), "dim", "overflows");
  expect_both(dir, "n2_bytes_overflow",
              with([](auto& h) { h.dim[1] = int64_t{1} << 62; h.dim[2] = 1; h.dim[3] = 1; }), "dim", "data size");
  expect_both(dir, "n2_offset", with([](auto& h) { h.vox_offset = 540; }), "vox_offset", ">= 544");
  expect_both(dir, "n2_offset_overflow",
              with([](auto& h) { h.vox_offset = std::numeric_limits<int64_t>::max() - 10; }), "vox_offset", "overflows");
  expect_both(dir, "n2_pixdim", with([](auto& h) { h.pixdim[2] = std::nan(""); }), "pixdim[2]", "finite");
  expect_both(dir, "n2_bitpix", with([](auto& h) { h.bitpix = 32; }), "bitpix", "does not match");
}

TEST_CASE("nifti validate: byte-swapped headers are checked after swapping", "[nifti]") {
  test::TempDir dir;
  nifti_1_header h1 = test::valid_header1(4, 3, 2, DT_INT16);
  h1.dim[3] = -5;
  expect_both(dir, "be1_dim", test::nifti_bytes(test::swapped(h1), test::ramp_int16(24)), "dim[3]", "-5");
  nifti_2_header h2 = test::valid_header2(4, 3, 2, DT_INT16);
  h2.pixdim[1] = 0;
  expect_both(dir, "be2_pixdim", test::nifti_bytes(test::swapped(h2), test::ramp_int16(24)), "pixdim[1]", "= 0");
  nifti_1_header h3 = test::valid_header1(4, 3, 2, DT_INT16);
  h3.sizeof_hdr = 1000;  // not 348 or 540 in either byte order
  expect_both(dir, "sizeof_1000", test::nifti_bytes(h3, test::ramp_int16(24)), "sizeof_hdr", "1000");
}
