#include "data/nifti_read.h"

#include <nifti2_io.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>

#include "util/atomic_file.h"

namespace lk::data {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& field, const std::string& detail) {
  throw NiftiError(path, field, detail);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// nifti_clib, asked for foo.nii.gz, opens foo.nii when that exists (and the
// other way round): it looks for the header under every extension. When
// such a sibling exists, it is given a private link to the one file we
// validated instead, under a fresh name in the temporary folder
// ("lkaseg_nifti.tmp.lkaseg-<pid>.XXXXXX.nii.gz"), which no sibling shares.
// The link is registered with util/interrupt before it is made: a Ctrl-C
// while reading leaves nothing behind.
class ClibPath {
 public:
  explicit ClibPath(const std::string& path) : path_(path) {
    std::string sibling;
    if (ends_with(path, ".nii.gz")) sibling = path.substr(0, path.size() - 3);
    else if (ends_with(path, ".nii")) sibling = path + ".gz";
    std::error_code ec;
    if (sibling.empty() || !std::filesystem::exists(sibling, ec)) return;
    const std::string base = (std::filesystem::temp_directory_path(ec) / "lkaseg_nifti").string();
    if (ec) fail(path, "file", "a sibling " + sibling + " exists and no temporary folder for a private link: " + ec.message());
    std::string target = std::filesystem::absolute(path, ec).string();
    if (ec) target = path;
    try {
      link_ = std::make_unique<TempLink>(target, base, ends_with(path, ".gz") ? ".nii.gz" : ".nii");
    } catch (const std::exception& e) {
      fail(path, "file", "a sibling " + sibling + " exists and no private link could be made: " + e.what());
    }
    path_ = link_->name;
  }
  const char* c_str() const { return path_.c_str(); }

 private:
  std::string path_;
  std::unique_ptr<TempLink> link_;
};

struct NimFree {
  void operator()(nifti_image* nim) const { nifti_image_free(nim); }
};
using NimPtr = std::unique_ptr<nifti_image, NimFree>;

// nifti_clib prints its own diagnostics to stderr; ours are the exceptions.
void quiet_nifti_clib() {
  static std::once_flag once;
  std::call_once(once, [] { nifti_set_debug_level(0); });
}

Affine to_affine(const nifti_dmat44& m) {
  Affine a{};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) a[r][c] = m.m[r][c];
  return a;
}

bool finite_affine(const Affine& a) {
  for (const auto& row : a)
    for (double v : row)
      if (!std::isfinite(v)) return false;
  return true;
}

// Converts n stored voxels to float32, scaled when `scale` is set.
template <typename T>
void convert(const void* src, float* dst, int64_t n, bool scale, double slope, double inter) {
  const T* s = static_cast<const T*>(src);
  if (scale) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(slope * static_cast<double>(s[i]) + inter);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
  }
}

void convert_any(const std::string& path, int datatype, const void* src, float* dst, int64_t n, bool scale,
                 double slope, double inter) {
  switch (datatype) {
    case DT_UINT8: return convert<uint8_t>(src, dst, n, scale, slope, inter);
    case DT_INT8: return convert<int8_t>(src, dst, n, scale, slope, inter);
    case DT_INT16: return convert<int16_t>(src, dst, n, scale, slope, inter);
    case DT_UINT16: return convert<uint16_t>(src, dst, n, scale, slope, inter);
    case DT_INT32: return convert<int32_t>(src, dst, n, scale, slope, inter);
    case DT_UINT32: return convert<uint32_t>(src, dst, n, scale, slope, inter);
    case DT_INT64: return convert<int64_t>(src, dst, n, scale, slope, inter);
    case DT_UINT64: return convert<uint64_t>(src, dst, n, scale, slope, inter);
    case DT_FLOAT32: return convert<float>(src, dst, n, scale, slope, inter);
    case DT_FLOAT64: return convert<double>(src, dst, n, scale, slope, inter);
    default: fail(path, "datatype", "datatype = " + std::to_string(datatype) + " is not supported");
  }
}

}  // namespace

namespace {

// The file as one Volume whose data holds `frames` volumes one after the
// other (dim[4] of them when `allow_4d`, else exactly one).
Volume read_frames(const std::string& path, bool allow_4d, int64_t& frames) {
  const NiftiHeader h = validate_nifti(path);
  for (int64_t i = allow_4d ? 5 : 4; i <= h.dim[0]; ++i)
    if (h.dim[i] != 1) {
      const std::string f = "dim[" + std::to_string(i) + "]";
      fail(path, f, f + " = " + std::to_string(h.dim[i]) + ": a " + std::to_string(h.dim[0]) + "-D image of " +
                        std::to_string(h.nvox / (h.dim[1] * h.dim[2] * h.dim[3])) + " volumes, but a " +
                        (allow_4d ? "3-D or 4-D image is expected" : "3-D volume is expected (one modality per file)"));
    }
  frames = allow_4d && h.dim[0] >= 4 ? h.dim[4] : 1;

  quiet_nifti_clib();
  const ClibPath clib_path(path);
  NimPtr nim(nifti_image_read(clib_path.c_str(), 1));
  if (!nim || !nim->data) fail(path, "file", "nifti_clib could not read the file after it passed validation");
  // nifti_clib parsed the same bytes: it must agree with what we validated.
  if (nim->nvox != h.nvox || nim->datatype != h.datatype || nim->nbyper != h.bytes_per_voxel)
    fail(path, "header", "nifti_clib reads " + std::to_string(nim->nvox) + " voxels of datatype " +
                             std::to_string(nim->datatype) + ", validation found " + std::to_string(h.nvox) +
                             " of datatype " + std::to_string(h.datatype));

  Volume v;
  v.path = path;
  for (int i = 0; i < 3; ++i) {
    const bool used = i + 1 <= h.dim[0];
    v.geom.dims[i] = used ? h.dim[i + 1] : 1;
    v.geom.spacing[i] = used ? h.pixdim[i + 1] : 1.0;
  }

  NiftiStorage& st = v.storage;
  st.version = h.version;
  st.gzipped = h.gzipped;
  st.byte_swapped = h.byte_swapped;
  st.datatype = h.datatype;
  st.scl_slope = nim->scl_slope;
  st.scl_inter = nim->scl_inter;
  st.qform_code = nim->qform_code;
  st.sform_code = nim->sform_code;
  st.vox_offset = h.vox_offset;
  st.num_extensions = nim->num_ext;
  st.nonfinite_voxels = h.nonfinite_voxels;
  st.first_nonfinite = h.first_nonfinite;

  if (nim->sform_code > 0) {
    v.geom.affine = to_affine(nim->sto_xyz);
    st.affine_source = AffineSource::Sform;
  } else if (nim->qform_code > 0) {
    v.geom.affine = to_affine(nim->qto_xyz);
    st.affine_source = AffineSource::Qform;
  } else {
    v.geom.affine = scaling_affine(v.geom.spacing);
    st.affine_source = AffineSource::PixdimOnly;
  }
  if (!finite_affine(v.geom.affine)) {
    const bool sform = st.affine_source == AffineSource::Sform;
    fail(path, sform ? "srow_x" : "quatern_b",
         sform ? "srow_x/srow_y/srow_z hold a non-finite value (sform_code > 0)"
               : "the qform (quatern_b/c/d, qoffset_x/y/z) gives a non-finite affine");
  }

  // The standard: scale when scl_slope != 0. nifti_clib has already turned a
  // non-finite slope or intercept into 0.
  const bool scale = st.scl_slope != 0.0 && std::isfinite(st.scl_slope);
  const double inter = std::isfinite(st.scl_inter) ? st.scl_inter : 0.0;
  v.data.resize(static_cast<size_t>(h.nvox));
  convert_any(path, h.datatype, nim->data, v.data.data(), h.nvox, scale, st.scl_slope, inter);
  return v;
}

}  // namespace

Volume read_nifti(const std::string& path) {
  int64_t frames = 1;
  return read_frames(path, false, frames);
}

std::vector<Volume> read_nifti_channels(const std::string& path) {
  int64_t frames = 1;
  Volume all = read_frames(path, true, frames);
  const size_t n = static_cast<size_t>(all.geom.numel());
  std::vector<Volume> out(static_cast<size_t>(frames));
  for (size_t t = 0; t < out.size(); ++t) {
    out[t].geom = all.geom;
    out[t].path = all.path;
    out[t].storage = all.storage;
    out[t].data.assign(all.data.begin() + static_cast<std::ptrdiff_t>(t * n),
                       all.data.begin() + static_cast<std::ptrdiff_t>((t + 1) * n));
  }
  // The file's non-finite count goes with the volume holding the first one
  // (its index taken within that volume); the others report none.
  const int64_t first = all.storage.first_nonfinite;
  for (size_t t = 0; t < out.size(); ++t) {
    const bool holds = first >= 0 && static_cast<size_t>(first) / n == t;
    out[t].storage.nonfinite_voxels = holds ? all.storage.nonfinite_voxels : 0;
    out[t].storage.first_nonfinite = holds ? first % static_cast<int64_t>(n) : -1;
  }
  return out;
}

}  // namespace lk::data
