// Test helpers for the data tests: a self-deleting temporary folder, and
// NIfTI files crafted byte by byte (valid headers built here, independent of
// the writer under test, so single fields can be corrupted one at a time).
#pragma once

#include <nifti2_io.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lk::test {

// A fresh folder under the system temp dir, removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

using Bytes = std::vector<uint8_t>;

// A valid single-file NIfTI-1 header: dims (nx, ny, nz), the datatype and its
// bitpix, pixdim 1 (spacing `sp`), vox_offset 352, scl_slope 1, sform_code 1
// with srow = diag(sp) + offset (-10, 20, 30), qform_code 0, magic "n+1".
nifti_1_header valid_header1(int nx, int ny, int nz, int datatype, float sp = 1.0f);
// The same for NIfTI-2 (vox_offset 544, magic "n+2\0\r\n\032\n").
nifti_2_header valid_header2(int64_t nx, int64_t ny, int64_t nz, int datatype, double sp = 1.0);

// The file bytes: header, 4-byte extension flag (first byte 1 when `ext` is
// non-empty), `ext` bytes, zero padding up to vox_offset, then `data` (right
// after the extension when vox_offset is corrupt or byte-swapped).
Bytes nifti_bytes(const nifti_1_header& h, const Bytes& data, const Bytes& ext = {});
Bytes nifti_bytes(const nifti_2_header& h, const Bytes& data, const Bytes& ext = {});

// int16 voxels 0, 1, 2, ... (wrapping at 1000), little-endian native bytes.
Bytes ramp_int16(int64_t n);
// A header extension (NIfTI layout: esize, ecode, payload) of `esize` bytes.
Bytes comment_extension(int esize, const std::string& text);

Bytes gzip(const Bytes& raw, int level = 6);
void write_bytes(const std::string& path, const Bytes& b);
Bytes read_bytes(const std::string& path);

// Swaps every multi-byte field (header) or every 2-byte voxel (data).
nifti_1_header swapped(nifti_1_header h);
nifti_2_header swapped(nifti_2_header h);
Bytes swap_int16(Bytes b);

}  // namespace lk::test
