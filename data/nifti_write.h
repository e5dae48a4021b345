// Writing 3-D volumes as single-file NIfTI-1 (.nii.gz or .nii).
//
// The header is built by nifti_clib (nifti_make_new_n1_header, and the qform
// quaternion from the affine by nifti_dmat44_to_quatern): pixdim from the
// spacing, xyzt_units mm, sform = the affine, qform = its rigid part, both
// with `xform_code`, scl_slope 1 / scl_inter 0 (stored values are the values),
// vox_offset 352 with an empty extension flag. The bytes are written by zlib
// (gzip at `gzip_level`, mtime 0, so the same input gives the same file) or
// stdio, every call checked, to "<path>.partial" and then renamed, so a
// failed write never leaves a half file under the final name.
//
// Used for the synthetic dataset (int16 images, uint8 labels) and for
// predictions (uint8 / int32 label maps in the geometry of the source case).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/volume.h"

namespace lk::data {

struct NiftiWriteOptions {
  int gzip_level = 6;        // 1 (fast) .. 9 (small); .nii.gz only
  std::string description{}; // the header's descrip field (up to 79 characters)
  int xform_code = 1;        // NIFTI_XFORM_SCANNER_ANAT, for sform and qform
  int frames = 1;            // > 1: a 4-D file of `frames` volumes (dim[4], pixdim[4] = 1), one after the other
};

// `voxels` holds g.numel() * opt.frames values, x fastest, volume after volume. The path must end in .nii.gz
// or .nii. Throws std::runtime_error (naming the file) on bad geometry
// (dims must be 1..32767 for NIfTI-1, spacing finite > 0, affine finite) or
// an I/O failure.
void write_nifti(const std::string& path, const Geometry& g, const std::vector<uint8_t>& voxels,
                 const NiftiWriteOptions& opt = {});
void write_nifti(const std::string& path, const Geometry& g, const std::vector<int16_t>& voxels,
                 const NiftiWriteOptions& opt = {});
void write_nifti(const std::string& path, const Geometry& g, const std::vector<int32_t>& voxels,
                 const NiftiWriteOptions& opt = {});
void write_nifti(const std::string& path, const Geometry& g, const std::vector<float>& voxels,
                 const NiftiWriteOptions& opt = {});

}  // namespace lk::data
