#include "data/nifti_validate.h"

#include <nifti2_io.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace lk::data {

NiftiError::NiftiError(const std::string& file, std::string field, const std::string& detail)
    : std::runtime_error(file + ": " + detail), file_(file), field_(std::move(field)) {}

namespace {

static_assert(sizeof(nifti_1_header) == 348, "nifti_1_header must be the 348-byte on-disk layout");
static_assert(sizeof(nifti_2_header) == 540, "nifti_2_header must be the 540-byte on-disk layout");

// The single-file formats put a 4-byte extension flag right after the header,
// so the voxel data can start no earlier than this.
constexpr int64_t kMinVoxOffset1 = 348 + 4;
constexpr int64_t kMinVoxOffset2 = 540 + 4;
// Decompression chunk of the data check: fixed, never sized from a header.
constexpr unsigned kChunkBytes = 256 * 1024;

[[noreturn]] void fail(const std::string& path, const std::string& field, const std::string& detail) {
  throw NiftiError(path, field, detail);
}

std::string num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Printable form of a magic field: "n+1", "ab\x07".
std::string quote_magic(const char* m, int n) {
  std::string s = "\"";
  for (int i = 0; i < n && m[i] != 0; ++i) {
    const auto c = static_cast<unsigned char>(m[i]);
    if (c >= 32 && c < 127) {
      s += static_cast<char>(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      s += b;
    }
  }
  return s + "\"";
}

// RAII for a zlib read handle.
struct GzReader {
  gzFile f = nullptr;
  explicit GzReader(const std::string& path) : f(gzopen(path.c_str(), "rb")) {}
  ~GzReader() {
    if (f) gzclose(f);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  // Z_OK, Z_BUF_ERROR (stream ended early), Z_DATA_ERROR, ...
  int error(std::string* message) const {
    int err = Z_OK;
    const char* m = gzerror(f, &err);
    if (message) {
      *message = m ? m : "";
      // zlib prefixes the path: "<path>: incorrect data check".
      const auto colon = message->rfind(": ");
      if (colon != std::string::npos) message->erase(0, colon + 2);
    }
    return err;
  }
};

// The file name must say .nii or .nii.gz, and the first bytes must agree.
bool check_name_and_compression(const std::string& path) {
  const bool gz_name = ends_with(path, ".nii.gz");
  if (!gz_name && !ends_with(path, ".nii"))
    fail(path, "file name", "file name must end in .nii or .nii.gz (single-file NIfTI)");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, "file", "file does not exist or is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "file", "file cannot be opened: " + std::string(std::strerror(errno)));
  unsigned char b[2] = {0, 0};
  in.read(reinterpret_cast<char*>(b), 2);
  const bool gz_content = in.gcount() == 2 && b[0] == 0x1f && b[1] == 0x8b;
  if (gz_name && !gz_content) fail(path, "file name", "file name says .nii.gz but the content is not gzip-compressed");
  if (!gz_name && gz_content) fail(path, "file name", "file name says .nii but the content is gzip-compressed (expected .nii.gz)");
  return gz_name;
}

// Copies the fields we use from a native-order NIfTI-1 header.
void take_nifti1(const std::string& path, const nifti_1_header& h, NiftiHeader& out) {
  if (std::memcmp(h.magic, "ni1", 4) == 0)
    fail(path, "magic", "magic = \"ni1\" marks a .hdr/.img pair; only single-file .nii/.nii.gz is supported");
  if (std::memcmp(h.magic, "n+1", 4) != 0)
    fail(path, "magic", "magic = " + quote_magic(h.magic, 4) + " must be \"n+1\" (not a NIfTI-1 file; ANALYZE 7.5 is not supported)");
  for (int i = 0; i < 8; ++i) {
    out.dim[i] = h.dim[i];
    out.pixdim[i] = h.pixdim[i];
  }
  out.datatype = h.datatype;
  out.bitpix = h.bitpix;
  const double off = h.vox_offset;
  if (!std::isfinite(off)) fail(path, "vox_offset", "vox_offset = " + num(off) + " must be a finite byte offset");
  if (off < kMinVoxOffset1)
    fail(path, "vox_offset", "vox_offset = " + num(off) + " must be >= 352 (348-byte header + 4-byte extension flag)");
  if (off != std::floor(off)) fail(path, "vox_offset", "vox_offset = " + num(off) + " must be a whole number of bytes");
  if (off > 9.0e18) fail(path, "vox_offset", "vox_offset = " + num(off) + " is too large");
  out.vox_offset = static_cast<int64_t>(off);
  out.scl_slope = h.scl_slope;
  out.scl_inter = h.scl_inter;
  out.qform_code = h.qform_code;
  out.sform_code = h.sform_code;
  out.description.assign(h.descrip, strnlen(h.descrip, sizeof h.descrip));
}

// Copies the fields we use from a native-order NIfTI-2 header.
void take_nifti2(const std::string& path, const nifti_2_header& h, NiftiHeader& out) {
  if (std::memcmp(h.magic, "ni2", 4) == 0)
    fail(path, "magic", "magic = \"ni2\" marks a .hdr/.img pair; only single-file .nii/.nii.gz is supported");
  if (std::memcmp(h.magic, "n+2", 4) != 0)
    fail(path, "magic", "magic = " + quote_magic(h.magic, 4) + " must be \"n+2\" (not a NIfTI-2 file)");
  if (std::memcmp(h.magic + 4, "\r\n\032\n", 4) != 0)
    fail(path, "magic", "magic bytes 4..7 must be \\r\\n\\x1a\\n (altered by a text-mode transfer?)");
  for (int i = 0; i < 8; ++i) {
    out.dim[i] = h.dim[i];
    out.pixdim[i] = h.pixdim[i];
  }
  out.datatype = h.datatype;
  out.bitpix = h.bitpix;
  if (h.vox_offset < kMinVoxOffset2)
    fail(path, "vox_offset", "vox_offset = " + std::to_string(h.vox_offset) +
                                 " must be >= 544 (540-byte header + 4-byte extension flag)");
  out.vox_offset = h.vox_offset;
  out.scl_slope = h.scl_slope;
  out.scl_inter = h.scl_inter;
  out.qform_code = h.qform_code;
  out.sform_code = h.sform_code;
  out.description.assign(h.descrip, strnlen(h.descrip, sizeof h.descrip));
}

// Checks shared by both versions: dims, voxel count, datatype, pixdim.
void check_fields(const std::string& path, NiftiHeader& h) {
  const int64_t nd = h.dim[0];
  if (nd < 1 || nd > 7) fail(path, "dim[0]", "dim[0] = " + std::to_string(nd) + " must be in 1..7");
  int64_t nvox = 1;
  for (int64_t i = 1; i <= nd; ++i) {
    const std::string f = "dim[" + std::to_string(i) + "]";
    if (h.dim[i] < 1) fail(path, f, f + " = " + std::to_string(h.dim[i]) + " must be >= 1");
    if (__builtin_mul_overflow(nvox, h.dim[i], &nvox))
      fail(path, "dim", "the voxel count dim[1] * ... * dim[" + std::to_string(nd) + "] overflows 64 bits");
  }
  h.nvox = nvox;

  h.bytes_per_voxel = nifti_supported_datatype_bytes(h.datatype);
  if (h.bytes_per_voxel == 0) {
    const std::string label = nifti_datatype_label(h.datatype);
    if (label == "unknown")
      fail(path, "datatype", "datatype = " + std::to_string(h.datatype) + " is not a NIfTI datatype code");
    fail(path, "datatype", "datatype = " + std::to_string(h.datatype) + " (" + label +
                               ") is not supported (integer or real voxels only)");
  }
  if (h.bitpix != 8 * h.bytes_per_voxel)
    fail(path, "bitpix", "bitpix = " + std::to_string(h.bitpix) + " does not match datatype " +
                             std::to_string(h.datatype) + " (" + nifti_datatype_label(h.datatype) + ", " +
                             std::to_string(8 * h.bytes_per_voxel) + " bits)");
  if (__builtin_mul_overflow(nvox, static_cast<int64_t>(h.bytes_per_voxel), &h.data_bytes))
    fail(path, "dim", "the data size (voxel count of dim * " + std::to_string(h.bytes_per_voxel) + " bytes) overflows 64 bits");
  int64_t end = 0;
  if (__builtin_add_overflow(h.vox_offset, h.data_bytes, &end))
    fail(path, "vox_offset", "vox_offset + data size overflows 64 bits");

  // Voxel sizes must be positive; the steps of further dimensions (time
  // in pixdim[4]) only finite: 0 is common there.
  for (int64_t i = 1; i <= nd; ++i) {
    const std::string f = "pixdim[" + std::to_string(i) + "]";
    const double p = h.pixdim[i];
    if (!std::isfinite(p) || (i <= 3 && p <= 0))
      fail(path, f, f + " = " + num(p) + (i <= 3 ? " must be finite and > 0" : " must be finite"));
  }
}

// Counts NaN/Inf among float32/float64 voxels arriving in chunks of the file
// (an element may straddle two chunks). nifti_clib silently replaces such
// voxels by 0 when it reads the data, so they must be counted here.
class NonFiniteScan {
 public:
  explicit NonFiniteScan(const NiftiHeader& h)
      : begin_(h.vox_offset), end_(h.vox_offset + h.data_bytes), size_(h.bytes_per_voxel), swap_(h.byte_swapped) {}

  // bytes[0, n) sit at file offset `at`.
  void feed(const unsigned char* bytes, int64_t n, int64_t at) {
    const int64_t lo = std::max(at, begin_), hi = std::min(at + n, end_);
    for (int64_t i = lo; i < hi; ++i) {
      carry_[fill_++] = bytes[i - at];
      if (fill_ == size_) {
        element();
        fill_ = 0;
      }
    }
  }
  int64_t count() const { return count_; }
  int64_t first() const { return first_; }

 private:
  void element() {
    if (swap_) std::reverse(carry_, carry_ + size_);
    bool finite = true;
    if (size_ == 4) {
      float f;
      std::memcpy(&f, carry_, 4);
      finite = std::isfinite(f);
    } else {
      double d;
      std::memcpy(&d, carry_, 8);
      finite = std::isfinite(d);
    }
    if (!finite) {
      if (first_ < 0) first_ = index_;
      ++count_;
    }
    ++index_;
  }

  int64_t begin_, end_;
  int size_;
  bool swap_;
  unsigned char carry_[8] = {};
  int fill_ = 0;
  int64_t index_ = 0, count_ = 0, first_ = -1;
};

}  // namespace

int nifti_supported_datatype_bytes(int datatype) {
  switch (datatype) {
    case DT_UINT8: case DT_INT8: return 1;
    case DT_INT16: case DT_UINT16: return 2;
    case DT_INT32: case DT_UINT32: case DT_FLOAT32: return 4;
    case DT_INT64: case DT_UINT64: case DT_FLOAT64: return 8;
    default: return 0;
  }
}

const char* nifti_datatype_label(int datatype) {
  switch (datatype) {
    case DT_BINARY: return "BINARY";
    case DT_UINT8: return "UINT8";
    case DT_INT16: return "INT16";
    case DT_INT32: return "INT32";
    case DT_FLOAT32: return "FLOAT32";
    case DT_COMPLEX64: return "COMPLEX64";
    case DT_FLOAT64: return "FLOAT64";
    case DT_RGB24: return "RGB24";
    case DT_INT8: return "INT8";
    case DT_UINT16: return "UINT16";
    case DT_UINT32: return "UINT32";
    case DT_INT64: return "INT64";
    case DT_UINT64: return "UINT64";
    case DT_FLOAT128: return "FLOAT128";
    case DT_COMPLEX128: return "COMPLEX128";
    case DT_COMPLEX256: return "COMPLEX256";
    case DT_RGBA32: return "RGBA32";
    default: return "unknown";
  }
}

NiftiHeader read_nifti_header(const std::string& path) {
  NiftiHeader out;
  out.gzipped = check_name_and_compression(path);

  // The first 540 bytes at most, decompressed when gzipped (gzread passes a
  // plain file through unchanged).
  unsigned char buf[540] = {};
  GzReader gz(path);
  if (!gz.f) fail(path, "file", "file cannot be opened");
  const int n = gzread(gz.f, buf, sizeof buf);
  std::string zmsg;
  const int zerr = gz.error(&zmsg);
  if (n < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR))
    fail(path, "gzip", "gzip stream is corrupt inside the header (zlib: " + zmsg + ")");
  if (n < 4 && zerr == Z_BUF_ERROR) fail(path, "gzip", "gzip stream is truncated inside the header");
  if (n < 4) fail(path, "header", "file holds " + std::to_string(n) + " bytes, too few for a NIfTI header");

  int32_t size = 0;
  std::memcpy(&size, buf, 4);
  const int32_t swapped_size = static_cast<int32_t>(__builtin_bswap32(static_cast<uint32_t>(size)));
  if (size == 348 || size == 540) {
    out.version = size == 348 ? 1 : 2;
  } else if (swapped_size == 348 || swapped_size == 540) {
    out.version = swapped_size == 348 ? 1 : 2;
    out.byte_swapped = true;
  } else {
    fail(path, "sizeof_hdr", "sizeof_hdr = " + std::to_string(size) + " must be 348 (NIfTI-1) or 540 (NIfTI-2)");
  }
  const int need = out.version == 1 ? 348 : 540;
  if (n < need) {
    if (zerr == Z_BUF_ERROR)
      fail(path, "gzip", "gzip stream is truncated inside the " + std::to_string(need) + "-byte header");
    fail(path, "header", "header is " + std::to_string(need) + " bytes (sizeof_hdr) but the file holds only " +
                             std::to_string(n) + " bytes");
  }

  if (out.version == 1) {
    nifti_1_header h;
    std::memcpy(&h, buf, sizeof h);
    if (out.byte_swapped) nifti_swap_as_nifti1(&h);
    take_nifti1(path, h, out);
  } else {
    nifti_2_header h;
    std::memcpy(&h, buf, sizeof h);
    if (out.byte_swapped) nifti_swap_as_nifti2(&h);
    take_nifti2(path, h, out);
  }
  check_fields(path, out);
  return out;
}

void check_nifti_data(const std::string& path, NiftiHeader& h) {
  const bool floats = h.datatype == DT_FLOAT32 || h.datatype == DT_FLOAT64;
  if (!h.gzipped && !floats) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail(path, "file", "file size cannot be read: " + ec.message());
    h.available_bytes = static_cast<int64_t>(size);
  } else {
    // Decompress the whole stream in fixed chunks, counting: the only way to
    // know how much data a gzip file holds, and whether it is complete.
    // Float voxels are scanned for NaN/Inf on the way (plain files are read
    // through gzread too, which passes them through unchanged).
    GzReader gz(path);
    if (!gz.f) fail(path, "file", "file cannot be opened");
    gzbuffer(gz.f, kChunkBytes);
    std::vector<unsigned char> chunk(kChunkBytes);
    NonFiniteScan scan(h);
    int64_t total = 0;
    for (;;) {
      const int got = gzread(gz.f, chunk.data(), kChunkBytes);
      if (got <= 0) break;
      if (floats) scan.feed(chunk.data(), got, total);
      total += got;
    }
    h.nonfinite_voxels = scan.count();
    h.first_nonfinite = scan.first();
    std::string zmsg;
    const int zerr = gz.error(&zmsg);
    if (zerr == Z_BUF_ERROR)
      fail(path, "gzip", "gzip stream is truncated (it ends after " + std::to_string(total) + " decompressed bytes)");
    if (zerr != Z_OK)
      fail(path, "gzip", "gzip stream is corrupt (zlib: " + zmsg + ")");
    h.available_bytes = total;
  }
  if (h.available_bytes < h.vox_offset)
    fail(path, "vox_offset", "vox_offset = " + std::to_string(h.vox_offset) + " lies beyond the end of the data (" +
                                 std::to_string(h.available_bytes) + " bytes)");
  if (h.available_bytes - h.vox_offset < h.data_bytes) {
    std::string dims;
    for (int64_t i = 1; i <= h.dim[0]; ++i) {
      if (i > 1) dims += 'x';
      dims += std::to_string(h.dim[i]);
    }
    fail(path, "dim", "the header's dim " + dims + " = " + std::to_string(h.nvox) + " voxels of " +
                          nifti_datatype_label(h.datatype) + " need " + std::to_string(h.data_bytes) +
                          " bytes from vox_offset " + std::to_string(h.vox_offset) + ", but only " +
                          std::to_string(h.available_bytes - h.vox_offset) + " are present");
  }
}

NiftiHeader validate_nifti(const std::string& path) {
  NiftiHeader h = read_nifti_header(path);
  check_nifti_data(path, h);
  return h;
}

}  // namespace lk::data
