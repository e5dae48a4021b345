// Reading a NIfTI volume into float32.
//
// read_nifti(path): NIfTI-1 or NIfTI-2, .nii or .nii.gz, either byte order.
// The file is validated first (data/nifti_validate.h: header fields, data
// present, gzip stream intact), then read through nifti_clib, whose result is
// cross-checked against the validated header. Then:
//   * any supported stored datatype (u)int8..64, float32, float64 → float32;
//   * scl_slope / scl_inter applied as the standard says: value = slope *
//     stored + inter when slope is non-zero; slope 0 means "no scaling" (the
//     intercept is then ignored too). nifti_clib reports a non-finite slope or
//     intercept as 0, so NaN slope (as nibabel writes) also means no scaling;
//   * the affine is the sform when sform_code > 0, else the qform when
//     qform_code > 0, else diag(pixdim) (NIfTI "method 1");
//   * spacing is pixdim[1..3] (1 for dims beyond dim[0]).
//   * NaN/Inf float voxels: nifti_clib replaces them by 0; their count and
//     the first index are in storage.nonfinite_voxels / first_nonfinite.
// Only 3-D data is accepted: dim[4..7] must be 1.
// read_nifti_channels(path): the same for a 3-D or 4-D file (dim[5..7] = 1):
// one Volume per index of the 4th dimension (dim[4] of them; a 3-D file gives
// one), all on the file's grid. Multi-channel images such as the Medical
// Segmentation Decathlon's (x, y, z, modality) are stored this way. The
// file's NaN/Inf count goes with the volume holding the first such voxel.
// Errors throw NiftiError naming the file and the field.
#pragma once

#include <string>
#include <vector>

#include "data/nifti_validate.h"
#include "data/volume.h"

namespace lk::data {

Volume read_nifti(const std::string& path);
std::vector<Volume> read_nifti_channels(const std::string& path);

}  // namespace lk::data
