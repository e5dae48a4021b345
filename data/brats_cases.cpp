#include "data/brats_cases.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

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
const Scheme kSchemeMsd{BratsNaming::Msd, "MSD", "", {"", "", "", ""}, "", "{0, 1, 2, 3}"};

const Scheme& scheme_of(BratsNaming n) {
  return n == BratsNaming::Brats2021 ? kScheme2021 : n == BratsNaming::Brats2023 ? kScheme2023 : kSchemeMsd;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_nifti_name(const std::string& name) { return ends_with(name, ".nii") || ends_with(name, ".nii.gz"); }

// The file names in `names` ending in <sep><key>.nii.gz or <sep><key>.nii.
std::vector<std::string> matching(const std::vector<std::string>& names, const Scheme& s, const char* key) {
  const std::string stem = std::string(s.sep) + key;
  std::vector<std::string> out;
  for (const std::string& n : names)  // hidden files (macOS "._x_flair.nii.gz") are not cases' files
    if (n[0] != '.' && (ends_with(n, stem + ".nii.gz") || ends_with(n, stem + ".nii"))) out.push_back(n);
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

}  // namespace

namespace {

bool is_hidden(const std::string& name) { return name.empty() || name[0] == '.'; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A case folder: named BraTS*/Brats* (any case) or holding NIfTI files.
bool is_case_folder(const fs::path& dir) {
  if (lower(dir.filename().string()).rfind("brats", 0) == 0) return true;
  const std::vector<std::string> files = files_in(dir);
  return std::any_of(files.begin(), files.end(), [](const std::string& n) { return !is_hidden(n) && is_nifti_name(n); });
}

std::vector<fs::path> subfolders(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && !is_hidden(e.path().filename().string())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// <name> without .nii.gz / .nii.
std::string nifti_stem(const std::string& name) {
  return name.substr(0, name.size() - (ends_with(name, ".nii.gz") ? 7 : 4));
}

// BratsOptions::only: which of the candidate ids met are examined; every id
// met is kept for the message naming one that is not there.
class Only {
 public:
  explicit Only(const std::vector<std::string>& ids) : want_(ids.begin(), ids.end()), ids_(ids) {}
  bool wanted(const std::string& id) {
    met_.insert(id);
    return want_.empty() || want_.count(id) > 0;
  }
  // Throws MissingCaseError for the first wanted id not met.
  void check(const std::string& root) const {
    for (const std::string& id : ids_) {
      if (met_.count(id)) continue;
      std::string some;  // the first five, sorted
      int i = 0;
      for (auto m = met_.begin(); m != met_.end() && i < 5; ++m, ++i) some += (i ? ", " : ": ") + *m;
      throw MissingCaseError(root, "case " + id + " is not there (" + std::to_string(met_.size()) + " case(s)" +
                                       some + (met_.size() > 5 ? ", ..." : "") + ")");
    }
  }

 private:
  std::set<std::string> want_, met_;
  std::vector<std::string> ids_;
};

// dataset.json of an MSD task, when present, must list our channel order.
void check_msd_dataset_json(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    throw BratsError(file.string(), std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.contains("modality")) return;
  const std::array<const char*, kBratsChannels> want = {"flair", "t1w", "t1gd", "t2w"};
  for (int ch = 0; ch < kBratsChannels; ++ch) {
    const std::string key = std::to_string(ch);
    const std::string got = j["modality"].contains(key) && j["modality"][key].is_string()
                                ? j["modality"][key].get<std::string>() : std::string("(none)");
    if (lower(got) != want[static_cast<size_t>(ch)])
      throw BratsError(file.string(), "modality " + key + " is '" + got + "', expected " + want[static_cast<size_t>(ch)] +
                                          " (the channels must be FLAIR, T1w, T1gd, T2w)");
  }
}

// The MSD layout: imagesTr/ (+ labelsTr/) and imagesTs/, or one images folder.
void discover_msd(const fs::path& root, const BratsOptions& opt, Only& only, BratsDataset& ds) {
  std::vector<std::pair<fs::path, fs::path>> folders;  // images, labels ("" when none)
  const std::string name = root.filename().string();
  if (name == "imagesTr" || name == "imagesTs") {
    folders.push_back({root, name == "imagesTr" ? root.parent_path() / "labelsTr" : fs::path()});
    if (fs::is_regular_file(root.parent_path() / "dataset.json")) check_msd_dataset_json(root.parent_path() / "dataset.json");
  } else {
    if (fs::is_regular_file(root / "dataset.json")) check_msd_dataset_json(root / "dataset.json");
    if (fs::is_directory(root / "imagesTr")) folders.push_back({root / "imagesTr", root / "labelsTr"});
    if (fs::is_directory(root / "imagesTs") && !opt.require_seg) folders.push_back({root / "imagesTs", fs::path()});
  }
  for (const auto& [images, labels] : folders) {
    const std::vector<std::string> label_files = labels.empty() || !fs::is_directory(labels) ? std::vector<std::string>{}
                                                                                           : files_in(labels);
    for (const std::string& f : files_in(images)) {
      if (is_hidden(f) || !is_nifti_name(f)) continue;  // macOS "._BRATS_001.nii.gz" and the like
      if (!only.wanted(nifti_stem(f))) continue;
      BratsCase c;
      c.id = nifti_stem(f);
      c.dir = images.string();
      c.naming = BratsNaming::Msd;
      c.images.fill((images / f).string());
      for (const std::string& l : label_files)
        if (!is_hidden(l) && is_nifti_name(l) && nifti_stem(l) == c.id) c.seg = (labels / l).string();
      try {
        if (c.seg.empty() && opt.require_seg)
          throw BratsError((labels.empty() ? images / f : labels / f).string(),
                           "missing segmentation (MSD: labelsTr/" + f + " beside imagesTr/" + f + ")");
        ds.cases.push_back(c);
      } catch (const BratsError& e) {
        if (!opt.skip_bad) throw;
        skip(opt, ds, c.id, e.what());
      }
    }
  }
}

}  // namespace

BratsDataset discover_brats_cases(const std::string& root, const BratsOptions& opt) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw BratsError(root, "is not a folder");
  BratsDataset ds;
  ds.root = root;
  fs::path r = fs::path(root).lexically_normal();
  if (r.filename().empty()) r = r.parent_path();  // "data/" -> "data"
  const std::string rname = r.filename().string();
  Only only(opt.only);
  if (fs::is_directory(r / "imagesTr") || fs::is_directory(r / "imagesTs") || rname == "imagesTr" || rname == "imagesTs") {
    discover_msd(r, opt, only, ds);
    only.check(root);
    if (ds.cases.empty() && ds.skipped.empty())
      throw BratsError(root, "no MSD cases (imagesTr/<id>.nii.gz with labelsTr/<id>.nii.gz)");
  } else {
    std::vector<fs::path> dirs;
    for (const fs::path& d : subfolders(r)) {
      if (is_case_folder(d)) {
        dirs.push_back(d);
        continue;
      }
      for (const fs::path& inner : subfolders(d))  // grade folders: HGG/, LGG/
        if (is_case_folder(inner)) dirs.push_back(inner);
    }
    if (dirs.empty())
      throw BratsError(root, "no BraTS case folders (e.g. BraTS2021_00006/BraTS2021_00006_flair.nii.gz, "
                             "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz, HGG/Brats18_2013_0_1/..., or an "
                             "MSD task folder with imagesTr/)");
    for (const fs::path& d : dirs) {
      if (!only.wanted(d.filename().string())) continue;
      try {
        ds.cases.push_back(find_case_files(d, opt));
      } catch (const BratsError& e) {
        if (!opt.skip_bad) throw;
        skip(opt, ds, d.filename().string(), e.what());
      }
    }
    only.check(root);
  }
  std::sort(ds.cases.begin(), ds.cases.end(), [](const BratsCase& a, const BratsCase& b) { return a.id < b.id; });
  for (size_t i = 1; i < ds.cases.size(); ++i)
    if (ds.cases[i].id == ds.cases[i - 1].id)
      throw BratsError(root, "two cases named " + ds.cases[i].id + ": " + ds.cases[i - 1].dir + " and " + ds.cases[i].dir);
  return ds;
}

BratsCaseData load_brats_case(const BratsCase& c) {
  BratsCaseData out;
  out.source = c;
  if (c.naming == BratsNaming::Msd) {
    std::vector<Volume> v = read_nifti_channels(c.images[0]);
    if (v.size() != static_cast<size_t>(kBratsChannels))
      throw BratsError(c.images[0], std::to_string(v.size()) + " volume(s) in the 4th dimension, expected " +
                                        std::to_string(kBratsChannels) + " channels (FLAIR, T1w, T1gd, T2w)");
    out.geom = v[0].geom;
    for (int ch = 0; ch < kBratsChannels; ++ch) {
      check_finite(v[static_cast<size_t>(ch)]);
      out.images[ch] = std::move(v[static_cast<size_t>(ch)].data);
    }
  } else {
    for (int ch = 0; ch < kBratsChannels; ++ch) {
      Volume v = read_nifti(c.images[ch]);
      if (ch == 0) out.geom = v.geom;
      else check_grid(v, out.geom, c.images[0]);
      check_finite(v);
      out.images[ch] = std::move(v.data);
    }
  }
  if (!c.seg.empty()) {
    const Volume s = read_nifti(c.seg);
    check_grid(s, out.geom, c.images[0]);
    check_finite(s);
    out.labels = labels_to_brats2021(s.data, c.naming, s.path);
  }
  return out;
}

Volume load_brats_channel(const BratsCase& c, int channel) {
  if (channel < 0 || channel >= kBratsChannels)
    throw std::invalid_argument("load_brats_channel: channel " + std::to_string(channel));
  if (c.naming != BratsNaming::Msd) return read_nifti(c.images[static_cast<size_t>(channel)]);
  std::vector<Volume> v = read_nifti_channels(c.images[0]);
  if (v.size() != static_cast<size_t>(kBratsChannels))
    throw BratsError(c.images[0], std::to_string(v.size()) + " volume(s) in the 4th dimension, expected " +
                                      std::to_string(kBratsChannels));
  return std::move(v[static_cast<size_t>(channel)]);
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

// ---- label codings -----------------------------------------------------------

std::array<uint8_t, 4> label_values(BratsNaming n) {
  if (n == BratsNaming::Brats2021) return {0, 1, 2, 4};
  return {0, 1, 2, 3};
}

std::string label_coding_name(BratsNaming n) {
  const Scheme& s = scheme_of(n);
  return std::string(s.label_set) + " (" + s.label + ")";
}

int to_brats2021_label(BratsNaming n, float v) {
  if (v == 0.0f) return 0;
  switch (n) {
    case BratsNaming::Brats2021: return v == 1.0f || v == 2.0f || v == 4.0f ? static_cast<int>(v) : -1;
    case BratsNaming::Brats2023: return v == 1.0f || v == 2.0f ? static_cast<int>(v) : v == 3.0f ? 4 : -1;
    case BratsNaming::Msd: return v == 1.0f ? 2 : v == 2.0f ? 1 : v == 3.0f ? 4 : -1;  // edema, non-enhancing, enhancing
  }
  return -1;
}

uint8_t from_brats2021_label(BratsNaming n, uint8_t label) {
  switch (n) {
    case BratsNaming::Brats2021: return label;
    case BratsNaming::Brats2023: return label == 4 ? 3 : label;
    case BratsNaming::Msd: return label == 1 ? 2 : label == 2 ? 1 : label == 4 ? 3 : label;
  }
  return label;
}

std::vector<uint8_t> labels_to_brats2021(const std::vector<float>& voxels, BratsNaming n, const std::string& path) {
  std::vector<uint8_t> out(voxels.size());
  std::map<float, int64_t> bad;
  int64_t nan = 0;
  for (size_t i = 0; i < voxels.size(); ++i) {
    const int l = to_brats2021_label(n, voxels[i]);
    if (l >= 0) out[i] = static_cast<uint8_t>(l);
    else if (std::isnan(voxels[i])) ++nan;
    else bad[voxels[i]] += 1;
  }
  if (bad.empty() && nan == 0) return out;
  std::string list;
  if (nan > 0) list = "nan (" + std::to_string(nan) + " voxels)";
  int shown = 0;
  for (const auto& [value, count] : bad) {
    if (shown++ == 5) {
      list += ", ...";
      break;
    }
    char b[64];
    std::snprintf(b, sizeof b, "%s%.6g (%lld voxels)", list.empty() ? "" : ", ", static_cast<double>(value),
                  static_cast<long long>(count));
    list += b;
  }
  throw BratsError(path, "label values outside " + label_coding_name(n) + ": " + list);
}

}  // namespace lk::data
