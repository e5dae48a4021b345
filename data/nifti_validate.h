// Validation of NIfTI files before any library trusts their header.
//
// read_nifti_header() reads only the first 348 (NIfTI-1) or 540 (NIfTI-2)
// bytes, through zlib's gzread for .nii.gz, and checks every field the
// reader relies on: sizeof_hdr and magic (byte-swapped headers are
// recognised and swapped), dim[0] in 1..7 and each used dim >= 1, the voxel
// count and byte size without overflow, a supported datatype whose bitpix
// agrees, vox_offset (finite, whole, past the header and its 4-byte
// extension flag) and pixdim (finite; > 0 for the spatial dims 1..3).
//
// check_nifti_data() then makes sure the voxel data the header promises is
// really there: the file size for .nii; for .nii.gz the whole stream is
// decompressed in fixed-size chunks and counted, which also catches a
// truncated or corrupt gzip stream. Float voxels are scanned for NaN/Inf on
// the way (nifti_clib would silently turn them into 0). Nothing is
// allocated from header values.
//
// Every failure throws NiftiError, whose message names the file and the
// field, e.g. "case/x_t1.nii.gz: dim[3] = -5 must be >= 1".
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace lk::data {

class NiftiError : public std::runtime_error {
 public:
  // what() is "<file>: <detail>"; detail starts with the field, e.g.
  // field "dim[3]", detail "dim[3] = -5 must be >= 1".
  NiftiError(const std::string& file, std::string field, const std::string& detail);
  const std::string& file() const { return file_; }
  const std::string& field() const { return field_; }

 private:
  std::string file_, field_;
};

// The header fields the reader depends on, in native byte order, widened to
// NIfTI-2 types.
struct NiftiHeader {
  int version = 1;              // 1 or 2
  bool gzipped = false;         // the file is a gzip stream (.nii.gz)
  bool byte_swapped = false;    // stored in the other byte order
  std::array<int64_t, 8> dim{};
  std::array<double, 8> pixdim{};
  int datatype = 0;             // NIfTI DT_* code
  int bitpix = 0;
  int bytes_per_voxel = 0;
  int64_t vox_offset = 0;       // where the voxel data starts
  double scl_slope = 0, scl_inter = 0;
  int qform_code = 0, sform_code = 0;
  std::string description;      // descrip (up to 80 characters)
  int64_t nvox = 0;             // product of dim[1..dim[0]]
  int64_t data_bytes = 0;       // nvox * bytes_per_voxel
  int64_t available_bytes = -1; // bytes in the (decompressed) file; -1 until check_nifti_data
  // Float data only (check_nifti_data): NaN/Inf voxels in the file and the
  // index of the first. nifti_clib replaces them by 0 when it reads.
  int64_t nonfinite_voxels = 0;
  int64_t first_nonfinite = -1;
};

// Checks the file name (.nii or .nii.gz, matching the content), reads and
// validates the header. Throws NiftiError.
NiftiHeader read_nifti_header(const std::string& path);

// Checks that vox_offset + data_bytes bytes are present and, for gzip, that
// the stream is complete and intact; fills h.available_bytes. Throws NiftiError.
void check_nifti_data(const std::string& path, NiftiHeader& h);

// read_nifti_header + check_nifti_data.
NiftiHeader validate_nifti(const std::string& path);

// Bytes per voxel of a datatype the reader converts to float32 (integers of
// 8 to 64 bits, float32, float64), or 0 for any other code.
int nifti_supported_datatype_bytes(int datatype);
// "INT16", "FLOAT32", ..., "COMPLEX64", or "unknown".
const char* nifti_datatype_label(int datatype);

}  // namespace lk::data
