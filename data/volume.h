// A 3-D image volume on a voxel grid: the geometry (dimensions, spacing and
// the voxel-to-world affine) and float32 voxels, as read from NIfTI files
// (data/nifti_read.h) and written back for predictions (data/nifti_write.h).
//
// Voxel order is NIfTI's: x varies fastest, then y, then z, so the voxel
// (x, y, z) sits at index x + nx * (y + ny * z).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lk::data {

// Row-major 4x4 matrix mapping voxel indices (i, j, k, 1) to world
// coordinates (x, y, z, 1) in millimetres (NIfTI's RAS+ scanner space).
using Affine = std::array<std::array<double, 4>, 4>;
Affine identity_affine();
// diag(spacing) with no offset: NIfTI's "method 1" when neither sform nor
// qform is set.
Affine scaling_affine(const std::array<double, 3>& spacing);

struct Geometry {
  std::array<int64_t, 3> dims{1, 1, 1};     // (nx, ny, nz)
  std::array<double, 3> spacing{1, 1, 1};  // mm per voxel along x, y, z
  Affine affine = identity_affine();

  int64_t numel() const { return dims[0] * dims[1] * dims[2]; }
  int64_t index(int64_t x, int64_t y, int64_t z) const { return x + dims[0] * (y + dims[1] * z); }
};

// Same dimensions, and affines equal within `tol` mm per element (the
// translation column is compared with tol scaled by max(1, |value|)).
bool same_grid(const Geometry& a, const Geometry& b, double tol = 1e-3);
// "240x240x155"
std::string dims_str(const std::array<int64_t, 3>& dims);
// Largest element-wise difference between two affines.
double affine_max_diff(const Affine& a, const Affine& b);

// Where a volume's affine came from.
enum class AffineSource : uint8_t { Sform, Qform, PixdimOnly };

// How the volume was stored on disk (what read_nifti found).
struct NiftiStorage {
  int version = 1;             // 1 (NIfTI-1) or 2 (NIfTI-2)
  bool gzipped = false;
  bool byte_swapped = false;   // header and data stored in the other byte order
  int datatype = 0;            // NIfTI DT_* code of the stored voxels
  double scl_slope = 0;        // as nifti_clib reports it (0: no scaling)
  double scl_inter = 0;
  int qform_code = 0, sform_code = 0;
  AffineSource affine_source = AffineSource::PixdimOnly;
  int64_t vox_offset = 0;      // byte offset of the voxel data
  int num_extensions = 0;      // header extensions nifti_clib read
  // NaN/Inf float voxels in the file, and the index of the first. nifti_clib
  // replaces them by 0 as it reads, so Volume::data holds 0 there: callers
  // that must refuse non-finite input check this count.
  int64_t nonfinite_voxels = 0;
  int64_t first_nonfinite = -1;
};

struct Volume {
  Geometry geom;
  std::vector<float> data;     // geom.numel() values, x fastest
  std::string path;            // the file it was read from
  NiftiStorage storage;

  float at(int64_t x, int64_t y, int64_t z) const { return data[static_cast<size_t>(geom.index(x, y, z))]; }
};

}  // namespace lk::data
