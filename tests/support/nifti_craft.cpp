#include "tests/support/nifti_craft.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace lk::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "lkaseg_data_test_XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

nifti_1_header valid_header1(int nx, int ny, int nz, int datatype, float sp) {
  nifti_1_header h;
  std::memset(&h, 0, sizeof h);
  h.sizeof_hdr = 348;
  h.dim[0] = 3;
  h.dim[1] = static_cast<short>(nx);
  h.dim[2] = static_cast<short>(ny);
  h.dim[3] = static_cast<short>(nz);
  for (int i = 4; i < 8; ++i) h.dim[i] = 1;
  h.datatype = static_cast<short>(datatype);
  int nbyper = 0, swapsize = 0;
  nifti_datatype_sizes(datatype, &nbyper, &swapsize);
  h.bitpix = static_cast<short>(8 * nbyper);
  h.pixdim[0] = 1.0f;
  for (int i = 1; i < 8; ++i) h.pixdim[i] = i <= 3 ? sp : 1.0f;
  h.vox_offset = 352.0f;
  h.scl_slope = 1.0f;
  h.xyzt_units = NIFTI_UNITS_MM;
  h.sform_code = 1;
  const float offset[3] = {-10.0f, 20.0f, 30.0f};
  float* rows[3] = {h.srow_x, h.srow_y, h.srow_z};
  for (int r = 0; r < 3; ++r) {
    rows[r][r] = sp;
    rows[r][3] = offset[r];
  }
  std::memcpy(h.magic, "n+1", 4);
  return h;
}

nifti_2_header valid_header2(int64_t nx, int64_t ny, int64_t nz, int datatype, double sp) {
  nifti_2_header h;
  std::memset(&h, 0, sizeof h);
  h.sizeof_hdr = 540;
  std::memcpy(h.magic, "n+2\0\r\n\032\n", 8);
  h.dim[0] = 3;
  h.dim[1] = nx;
  h.dim[2] = ny;
  h.dim[3] = nz;
  for (int i = 4; i < 8; ++i) h.dim[i] = 1;
  h.datatype = static_cast<int16_t>(datatype);
  int nbyper = 0, swapsize = 0;
  nifti_datatype_sizes(datatype, &nbyper, &swapsize);
  h.bitpix = static_cast<int16_t>(8 * nbyper);
  h.pixdim[0] = 1.0;
  for (int i = 1; i < 8; ++i) h.pixdim[i] = i <= 3 ? sp : 1.0;
  h.vox_offset = 544;
  h.scl_slope = 1.0;
  h.xyzt_units = NIFTI_UNITS_MM;
  h.sform_code = 1;
  const double offset[3] = {-10.0, 20.0, 30.0};
  double* rows[3] = {h.srow_x, h.srow_y, h.srow_z};
  for (int r = 0; r < 3; ++r) {
    rows[r][r] = sp;
    rows[r][3] = offset[r];
  }
  return h;
}

namespace {
template <typename H>
Bytes assemble(const H& h, int64_t vox_offset, const Bytes& data, const Bytes& ext) {
  Bytes out(sizeof h);
  std::memcpy(out.data(), &h, sizeof h);
  out.push_back(ext.empty() ? 0 : 1);  // extension flag
  out.insert(out.end(), 3, 0);
  out.insert(out.end(), ext.begin(), ext.end());
  if (static_cast<int64_t>(out.size()) < vox_offset) out.resize(static_cast<size_t>(vox_offset), 0);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}
}  // namespace

// The data goes to vox_offset when that reads as a sane value (a corrupted or
// byte-swapped header's does not): else right after the extension.
Bytes nifti_bytes(const nifti_1_header& h, const Bytes& data, const Bytes& ext) {
  const float off = h.vox_offset;
  const bool sane = off >= 352.0f && off < 1e7f;
  return assemble(h, sane ? static_cast<int64_t>(off) : 0, data, ext);
}

Bytes nifti_bytes(const nifti_2_header& h, const Bytes& data, const Bytes& ext) {
  const bool sane = h.vox_offset >= 544 && h.vox_offset < 10000000;
  return assemble(h, sane ? h.vox_offset : 0, data, ext);
}

Bytes ramp_int16(int64_t n) {
  Bytes b(static_cast<size_t>(n) * 2);
  for (int64_t i = 0; i < n; ++i) {
    const int16_t v = static_cast<int16_t>(i % 1000);
    std::memcpy(&b[static_cast<size_t>(i) * 2], &v, 2);
  }
  return b;
}

Bytes comment_extension(int esize, const std::string& text) {
  Bytes b(static_cast<size_t>(esize), 0);
  const int32_t code = NIFTI_ECODE_COMMENT;
  std::memcpy(&b[0], &esize, 4);
  std::memcpy(&b[4], &code, 4);
  std::memcpy(&b[8], text.data(), std::min<size_t>(text.size(), b.size() - 8));
  return b;
}

Bytes gzip(const Bytes& raw, int level) {
  z_stream s{};
  if (deflateInit2(&s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
  Bytes out(deflateBound(&s, raw.size()) + 64);
  s.next_in = const_cast<Bytef*>(raw.data());
  s.avail_in = static_cast<uInt>(raw.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&s, Z_FINISH);
  deflateEnd(&s);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate");
  out.resize(s.total_out);
  return out;
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

nifti_1_header swapped(nifti_1_header h) {
  nifti_swap_as_nifti1(&h);
  return h;
}

nifti_2_header swapped(nifti_2_header h) {
  nifti_swap_as_nifti2(&h);
  return h;
}

Bytes swap_int16(Bytes b) {
  for (size_t i = 0; i + 1 < b.size(); i += 2) std::swap(b[i], b[i + 1]);
  return b;
}

}  // namespace lk::test
