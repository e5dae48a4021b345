#include "data/brats_cases.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "data/nifti_read.h"

namespace lk::data {

const std::array<const char*, kBratsChannels> kBratsChannelNames = {"FLAIR", "T1", "T1ce", "T2"};

namespace fs = std::filesystem;

namespace {

// How one BraTS release names the files of case <id>: <id><sep><key>.nii.gz.
struct Scheme {
  BratsNaming naming;
  const char* label;                              // "BraTS 2021"
  const char* sep;                                // between the id and the key
  std::array<const char*, kBratsChannels> image_keys;  // FLAIR, T1, T1ce, T2
  const char* seg_key;
  const char* label_set;                          // the valid label values, for messages
};

const Scheme kScheme2021{BratsNaming::Brats2021, "BraTS 2021", "_", {"flair", "t1", "t1ce", "t2"}, "seg",
                         "{0, 1, 2, 4}"};
const Scheme kScheme2023{BratsNaming::Brats2023, "BraTS 2023", "-", {"t2f", "t1n", "t1c", "t2w"}, "seg",
                         "{0, 1, 2, 3}"};

const Scheme& scheme_of(BratsNaming n) { return n == BratsNaming::Brats2021 ? kScheme2021 : kScheme2023; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_nifti_name(const std::string& name) { return ends_with(name, ".nii") || ends_with(name, ".nii.gz"); }

// The file names in `names` ending in <sep><key>.nii.gz or <sep><key>.nii.
std::vector<std::string> matching(const std::vector<std::string>& names, const Scheme& s, const char* key) {
  const std::string stem = std::string(s.sep) + key;
  std::vector<std::string> out;
  for (const std::string& n : names)
    if (ends_with(n, stem + ".nii.gz") || ends_with(n, stem + ".nii")) out.push_back(n);
  return out;
}

// How many of the scheme's five keys have at least one file.
int keys_present(const std::vector<std::string>& names, const Scheme& s) {
  int n = !matching(names, s, s.seg_key).empty();
  for (const char* k : s.image_keys) n += !matching(names, s, k).empty();
  return n;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The one file for `key`: "" when there is none, an error when ambiguous.
std::string find_one(const fs::path& dir, const std::vector<std::string>& names, const Scheme& s, const char* key,
                     const char* what) {
  const std::vector<std::string> m = matching(names, s, key);
  if (m.size() > 1) {
    std::string list;
    for (const std::string& n : m) list += (list.empty() ? "" : ", ") + n;
    throw BratsError((dir / m[0]).string(), "ambiguous " + std::string(what) + ": " + std::to_string(m.size()) +
                                                " files match (" + list + ")");
  }
  return m.empty() ? "" : (dir / m[0]).string();
}

BratsCase find_case_files(const fs::path& dir, const BratsOptions& opt) {
  const std::vector<std::string> names = files_in(dir);
  const int n2021 = keys_present(names, kScheme2021), n2023 = keys_present(names, kScheme2023);
  if (n2021 > 0 && n2023 > 0)
    throw BratsError(dir.string(), "mixes BraTS 2021 (_flair, _t1, ...) and BraTS 2023 (-t2f, -t1n, ...) file names");
  if (n2021 == 0 && n2023 == 0)
    throw BratsError(dir.string(), "no BraTS files: expected <case>_{flair,t1,t1ce,t2,seg}.nii.gz (2021) or "
                                   "<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz (2023)");
  const Scheme& s = n2021 > 0 ? kScheme2021 : kScheme2023;

  BratsCase c;
  c.id = dir.filename().string();
  c.dir = dir.string();
  c.naming = s.naming;
  for (int ch = 0; ch < kBratsChannels; ++ch) {
    c.images[ch] = find_one(dir, names, s, s.image_keys[ch], kBratsChannelNames[ch]);
    if (c.images[ch].empty()) {
      const std::string expected = c.id + s.sep + s.image_keys[ch] + ".nii.gz";
      throw BratsError((dir / expected).string(), std::string("missing ") + kBratsChannelNames[ch] + " image (" +
                                                      s.label + " naming)");
    }
  }
  c.seg = find_one(dir, names, s, s.seg_key, "segmentation");
  if (c.seg.empty() && opt.require_seg) {
    const std::string expected = c.id + s.sep + s.seg_key + ".nii.gz";
    throw BratsError((dir / expected).string(), std::string("missing segmentation (") + s.label + " naming)");
  }
  return c;
}

void warn(const BratsOptions& opt, const std::string& message) {
  if (opt.warn) opt.warn(message);
  else std::fprintf(stderr, "lkaseg: warning: %s\n", message.c_str());
}

void skip(const BratsOptions& opt, BratsDataset& ds, const std::string& id, const std::string& reason) {
  warn(opt, "skipping case " + id + ": " + reason);
  ds.skipped.push_back({id, reason});
}

// Every file of a case must share the FLAIR's grid.
void check_grid(const Volume& v, const Geometry& ref, const std::string& ref_path) {
  if (v.geom.dims != ref.dims)
    throw BratsError(v.path, "shape " + dims_str(v.geom.dims) + " differs from the FLAIR's " + dims_str(ref.dims) +
                                 " (" + ref_path + ")");
  if (!same_grid(v.geom, ref)) {
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", affine_max_diff(v.geom.affine, ref.affine));
    throw BratsError(v.path, std::string("affine differs from the FLAIR's by up to ") + b + " (" + ref_path + ")");
  }
}

// NaN/Inf in the file (counted by the validation, as nifti_clib reads them
// as 0) or made by the conversion (a float64 beyond float32's range).
void check_finite(const Volume& v) {
  int64_t bad = v.storage.nonfinite_voxels, first = v.storage.first_nonfinite;
  if (bad == 0)
    for (size_t i = 0; i < v.data.size(); ++i)
      if (!std::isfinite(v.data[i])) {
        if (first < 0) first = static_cast<int64_t>(i);
        ++bad;
      }
  if (bad == 0) return;
  const auto& d = v.geom.dims;
  const int64_t x = first % d[0], y = (first / d[0]) % d[1], z = first / (d[0] * d[1]);
  throw BratsError(v.path, std::to_string(bad) + " voxels are NaN or Inf (the first at voxel (" + std::to_string(x) +
                               ", " + std::to_string(y) + ", " + std::to_string(z) + "))");
}

// Label volume → BraTS 2021 values; 2023's ET (3) becomes 4.
std::vector<uint8_t> map_labels(const Volume& seg, BratsNaming naming) {
  const bool y2023 = naming == BratsNaming::Brats2023;
  const float et = y2023 ? 3.0f : 4.0f;
  std::vector<uint8_t> out(seg.data.size());
  std::map<float, int64_t> bad;
  for (size_t i = 0; i < seg.data.size(); ++i) {
    const float v = seg.data[i];
    if (v == 0.0f || v == 1.0f || v == 2.0f) out[i] = static_cast<uint8_t>(v);
    else if (v == et) out[i] = 4;
    else bad[v] += 1;
  }
  if (bad.empty()) return out;
  std::string list;
  int shown = 0;
  for (const auto& [value, count] : bad) {
    if (shown++ == 5) {
      list += ", ...";
      break;
    }
    char b[64];
    std::snprintf(b, sizeof b, "%s%g (%lld voxels)", list.empty() ? "" : ", ", static_cast<double>(value),
                  static_cast<long long>(count));
    list += b;
  }
  const Scheme& s = scheme_of(naming);
  throw BratsError(seg.path, std::string("label values outside ") + s.label_set + " (" + s.label + "): " + list);
}

}  // namespace

BratsDataset discover_brats_cases(const std::string& root, const BratsOptions& opt) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw BratsError(root, "is not a folder");
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.empty() || name[0] == '.') continue;
    bool is_case = name.rfind("BraTS", 0) == 0;
    if (!is_case) {
      const std::vector<std::string> files = files_in(e.path());
      is_case = std::any_of(files.begin(), files.end(), is_nifti_name);
    }
    if (is_case) dirs.push_back(e.path());
  }
  if (dirs.empty())
    throw BratsError(root, "no BraTS case folders (e.g. BraTS2021_00006/BraTS2021_00006_flair.nii.gz or "
                           "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz)");
  std::sort(dirs.begin(), dirs.end());

  BratsDataset ds;
  ds.root = root;
  for (const fs::path& d : dirs) {
    try {
      ds.cases.push_back(find_case_files(d, opt));
    } catch (const BratsError& e) {
      if (!opt.skip_bad) throw;
      skip(opt, ds, d.filename().string(), e.what());
    }
  }
  return ds;
}

BratsCaseData load_brats_case(const BratsCase& c) {
  BratsCaseData out;
  out.source = c;
  for (int ch = 0; ch < kBratsChannels; ++ch) {
    Volume v = read_nifti(c.images[ch]);
    if (ch == 0) out.geom = v.geom;
    else check_grid(v, out.geom, c.images[0]);
    check_finite(v);
    out.images[ch] = std::move(v.data);
  }
  if (!c.seg.empty()) {
    const Volume s = read_nifti(c.seg);
    check_grid(s, out.geom, c.images[0]);
    check_finite(s);
    out.labels = map_labels(s, c.naming);
  }
  return out;
}

std::optional<BratsCaseData> load_brats_case(const BratsCase& c, const BratsOptions& opt, BratsDataset& summary) {
  try {
    return load_brats_case(c);
  } catch (const std::runtime_error& e) {  // BratsError, NiftiError
    if (!opt.skip_bad) throw;
    skip(opt, summary, c.id, e.what());
    return std::nullopt;
  }
}

BratsDataset validate_brats_dataset(const std::string& root, const BratsOptions& opt) {
  BratsDataset ds = discover_brats_cases(root, opt);
  std::vector<BratsCase> good;
  for (const BratsCase& c : ds.cases)
    if (load_brats_case(c, opt, ds)) good.push_back(c);
  ds.cases = std::move(good);
  return ds;
}

}  // namespace lk::data
