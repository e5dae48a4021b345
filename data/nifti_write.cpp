#include "data/nifti_write.h"

#include <nifti2_io.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include <unistd.h>

#include "util/atomic_file.h"
#include "util/interrupt.h"

namespace lk::data {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": cannot write NIfTI: " + what);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_geometry(const std::string& path, const Geometry& g, size_t n, int frames) {
  if (frames < 1 || frames > 32767) fail(path, "frames = " + std::to_string(frames) + " must be in 1..32767");
  for (int i = 0; i < 3; ++i) {
    if (g.dims[i] < 1 || g.dims[i] > 32767)
      fail(path, "dims[" + std::to_string(i) + "] = " + std::to_string(g.dims[i]) + " must be in 1..32767");
    if (!std::isfinite(g.spacing[i]) || g.spacing[i] <= 0)
      fail(path, "spacing[" + std::to_string(i) + "] must be finite and > 0");
  }
  for (const auto& row : g.affine)
    for (double v : row)
      if (!std::isfinite(v)) fail(path, "the affine holds a non-finite value");
  if (static_cast<int64_t>(n) != g.numel() * frames)
    fail(path, std::to_string(n) + " voxels given for " + (frames > 1 ? std::to_string(frames) + " volumes of " : "a ") +
                   dims_str(g.dims) + (frames > 1 ? "" : " volume"));
}

// The 348-byte header for the geometry, built by nifti_clib.
nifti_1_header make_header(const Geometry& g, int datatype, const NiftiWriteOptions& opt) {
  const int64_t dims[8] = {opt.frames > 1 ? 4 : 3, g.dims[0], g.dims[1], g.dims[2], opt.frames, 1, 1, 1};
  std::unique_ptr<nifti_1_header, decltype(&std::free)> made(nifti_make_new_n1_header(dims, datatype), &std::free);
  if (!made) throw std::runtime_error("nifti_make_new_n1_header failed");
  nifti_1_header h = *made;

  for (int i = 0; i < 3; ++i) h.pixdim[i + 1] = static_cast<float>(g.spacing[i]);
  h.pixdim[4] = 1.0f;  // a 4-D file's volumes are channels, not time points
  h.xyzt_units = NIFTI_UNITS_MM;
  h.scl_slope = 1.0f;
  h.scl_inter = 0.0f;
  h.vox_offset = 352.0f;
  std::memset(h.descrip, 0, sizeof h.descrip);
  std::memcpy(h.descrip, opt.description.data(), std::min(opt.description.size(), sizeof h.descrip - 1));

  // sform: the affine as given.
  h.sform_code = static_cast<short>(opt.xform_code);
  for (int c = 0; c < 4; ++c) {
    h.srow_x[c] = static_cast<float>(g.affine[0][c]);
    h.srow_y[c] = static_cast<float>(g.affine[1][c]);
    h.srow_z[c] = static_cast<float>(g.affine[2][c]);
  }
  // qform: the closest rotation + offset, as a quaternion.
  nifti_dmat44 m;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) m.m[r][c] = g.affine[r][c];
  double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
  nifti_dmat44_to_quatern(m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
  h.qform_code = static_cast<short>(opt.xform_code);
  h.quatern_b = static_cast<float>(qb);
  h.quatern_c = static_cast<float>(qc);
  h.quatern_d = static_cast<float>(qd);
  h.qoffset_x = static_cast<float>(qx);
  h.qoffset_y = static_cast<float>(qy);
  h.qoffset_z = static_cast<float>(qz);
  h.pixdim[0] = static_cast<float>(qfac < 0 ? -1.0 : 1.0);
  return h;
}

// Writes header + 4-byte empty extension flag + voxels, checked, to `tmp`.
void write_bytes(const std::string& path, const std::string& tmp, bool gz, int level, const nifti_1_header& h,
                 const void* voxels, size_t nbytes) {
  const char ext[4] = {0, 0, 0, 0};
  if (gz) {
    const std::string mode = "wb" + std::to_string(std::clamp(level, 1, 9));
    gzFile f = gzopen(tmp.c_str(), mode.c_str());
    if (!f) fail(path, "cannot create " + tmp + ": " + std::strerror(errno));
    bool ok = gzbuffer(f, 256 * 1024) == 0;
    ok = ok && gzwrite(f, &h, sizeof h) == static_cast<int>(sizeof h);
    ok = ok && gzwrite(f, ext, 4) == 4;
    const auto* p = static_cast<const unsigned char*>(voxels);
    for (size_t done = 0; ok && done < nbytes;) {
      const unsigned n = static_cast<unsigned>(std::min<size_t>(nbytes - done, size_t{1} << 30));
      ok = gzwrite(f, p + done, n) == static_cast<int>(n);
      done += n;
    }
    int err = Z_OK;
    const std::string msg = ok ? "" : gzerror(f, &err);
    errno = 0;
    const int close = gzclose(f);  // flushes: a full disk often shows only here
    const std::string why = !msg.empty() ? msg : close == Z_ERRNO && errno != 0 ? std::strerror(errno) : "";
    if (!ok || close != Z_OK) fail(path, "gzip write failed" + (why.empty() ? "" : ": " + why));
  } else {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail(path, "cannot create " + tmp + ": " + std::strerror(errno));
    bool ok = std::fwrite(&h, sizeof h, 1, f) == 1 && std::fwrite(ext, 4, 1, f) == 1;
    ok = ok && (nbytes == 0 || std::fwrite(voxels, nbytes, 1, f) == 1);
    const int saved = errno;
    const int close = std::fclose(f);
    if (!ok || close != 0) fail(path, std::string("write failed: ") + std::strerror(ok ? errno : saved));
  }
}

void write_any(const std::string& path, const Geometry& g, int datatype, const void* voxels, size_t n,
               size_t elem_bytes, const NiftiWriteOptions& opt) {
  const bool gz = ends_with(path, ".nii.gz");
  if (!gz && !ends_with(path, ".nii")) fail(path, "the file name must end in .nii or .nii.gz");
  check_geometry(path, g, n, opt.frames);
  const nifti_1_header h = make_header(g, datatype, opt);
  // A temporary beside the file (util/interrupt.h: removed by Ctrl-C, named
  // after this process so a later run can tell a killed one's), renamed over it.
  const TempFile t = make_temp_file(path);
  ::close(t.fd);
  const std::string& tmp = t.name;
  try {
    write_bytes(path, tmp, gz, opt.gzip_level, h, voxels, n * elem_bytes);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace

void write_nifti(const std::string& path, const Geometry& g, const std::vector<uint8_t>& v,
                 const NiftiWriteOptions& opt) {
  write_any(path, g, DT_UINT8, v.data(), v.size(), sizeof(uint8_t), opt);
}
void write_nifti(const std::string& path, const Geometry& g, const std::vector<int16_t>& v,
                 const NiftiWriteOptions& opt) {
  write_any(path, g, DT_INT16, v.data(), v.size(), sizeof(int16_t), opt);
}
void write_nifti(const std::string& path, const Geometry& g, const std::vector<int32_t>& v,
                 const NiftiWriteOptions& opt) {
  write_any(path, g, DT_INT32, v.data(), v.size(), sizeof(int32_t), opt);
}
void write_nifti(const std::string& path, const Geometry& g, const std::vector<float>& v,
                 const NiftiWriteOptions& opt) {
  write_any(path, g, DT_FLOAT32, v.data(), v.size(), sizeof(float), opt);
}

}  // namespace lk::data
