#include "tests/support/layouts.h"

#include <cmath>
#include <fstream>
#include <stdexcept>

#include "data/nifti_write.h"

namespace lk::test {

namespace fs = std::filesystem;

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Brats2021: return "BraTS 2021";
    case Layout::Brats2020: return "BraTS 2020 (.nii)";
    case Layout::Brats2018: return "BraTS 2018 (HGG/LGG)";
    case Layout::Brats2023: return "BraTS 2023";
    case Layout::Msd: return "MSD Task01_BrainTumour";
  }
  return "?";
}

data::BratsNaming layout_naming(Layout l) {
  return l == Layout::Brats2023 ? data::BratsNaming::Brats2023
         : l == Layout::Msd     ? data::BratsNaming::Msd
                                : data::BratsNaming::Brats2021;
}

std::string layout_case_id(Layout l, int i) {
  char b[64];
  switch (l) {
    case Layout::Brats2021: std::snprintf(b, sizeof b, "BraTS2021_%05d", i); break;
    case Layout::Brats2020: std::snprintf(b, sizeof b, "BraTS20_Training_%03d", i); break;
    case Layout::Brats2018: std::snprintf(b, sizeof b, "Brats18_2013_%d_1", i); break;
    case Layout::Brats2023: std::snprintf(b, sizeof b, "BraTS-GLI-%05d-000", i); break;
    case Layout::Msd: std::snprintf(b, sizeof b, "BRATS_%03d", i); break;
  }
  return b;
}

void write_layout_case(const fs::path& root, Layout l, const LayoutCase& c, bool with_seg) {
  const data::BratsNaming naming = layout_naming(l);
  std::vector<uint8_t> seg(c.labels.size());
  for (size_t i = 0; i < seg.size(); ++i) seg[i] = data::from_brats2021_label(naming, c.labels[i]);
  if (l == Layout::Msd) {
    const fs::path images = root / (with_seg ? "imagesTr" : "imagesTs"), labels = root / "labelsTr";
    fs::create_directories(images);
    std::vector<float> all;
    for (const auto& im : c.images) all.insert(all.end(), im.begin(), im.end());
    data::NiftiWriteOptions o;
    o.frames = 4;
    data::write_nifti((images / (c.id + ".nii.gz")).string(), c.geom, all, o);
    if (with_seg) {
      fs::create_directories(labels);
      data::write_nifti((labels / (c.id + ".nii.gz")).string(), c.geom, seg);
    }
    if (!fs::exists(root / "dataset.json")) {
      std::ofstream(root / "dataset.json")
          << R"({"name": "BRATS", "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},)"
          << R"( "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}})";
    }
    // The archive's macOS companions: hidden, never cases.
    std::ofstream(images / ("._" + c.id + ".nii.gz")) << "junk";
    return;
  }
  fs::path dir = root / c.id;
  // Brats18_2013_<i>_1: odd i in HGG/, even in LGG/.
  if (l == Layout::Brats2018) dir = root / ((c.id[c.id.size() - 3] - '0') % 2 ? "HGG" : "LGG") / c.id;
  fs::create_directories(dir);
  const bool y2023 = l == Layout::Brats2023;
  const std::array<const char*, 4> keys = y2023 ? std::array<const char*, 4>{"t2f", "t1n", "t1c", "t2w"}
                                                : std::array<const char*, 4>{"flair", "t1", "t1ce", "t2"};
  const std::string sep = y2023 ? "-" : "_", ext = l == Layout::Brats2020 ? ".nii" : ".nii.gz";
  for (int ch = 0; ch < 4; ++ch) {
    std::vector<int16_t> v(c.images[ch].size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int16_t>(std::lround(c.images[ch][i]));
    data::write_nifti((dir / (c.id + sep + keys[ch] + ext)).string(), c.geom, v);
  }
  if (with_seg) data::write_nifti((dir / (c.id + sep + "seg" + ext)).string(), c.geom, seg);
}

LayoutCase make_layout_case(const std::string& id, const std::array<int64_t, 3>& dims, int seed) {
  LayoutCase c;
  c.id = id;
  c.geom.dims = dims;
  c.geom.affine = {{{-1, 0, 0, 10}, {0, -1, 0, 20}, {0, 0, 1, -5}, {0, 0, 0, 1}}};
  const int64_t n = c.geom.numel();
  for (auto& im : c.images) im.assign(static_cast<size_t>(n), 0.0f);
  c.labels.assign(static_cast<size_t>(n), 0);
  const double cx = dims[0] * 0.5, cy = dims[1] * 0.5, cz = dims[2] * 0.5;
  const double tx = cx + (seed % 3 - 1) * dims[0] * 0.12, ty = cy + (seed % 2) * dims[1] * 0.1, tz = cz;
  const double r = std::min(dims[0], dims[1]) * 0.22;
  for (int64_t z = 0; z < dims[2]; ++z)
    for (int64_t y = 0; y < dims[1]; ++y)
      for (int64_t x = 0; x < dims[0]; ++x) {
        const double bx = (x - cx) / (dims[0] * 0.42), by = (y - cy) / (dims[1] * 0.42), bz = (z - cz) / (dims[2] * 0.45);
        if (bx * bx + by * by + bz * bz > 1) continue;
        const size_t i = static_cast<size_t>(c.geom.index(x, y, z));
        const double d = std::sqrt((x - tx) * (x - tx) + (y - ty) * (y - ty) + (z - tz) * (z - tz)) / r;
        const uint8_t l = d < 0.35 ? 1 : d < 0.6 ? 4 : d < 1.0 ? 2 : 0;
        c.labels[i] = l;
        for (int ch = 0; ch < 4; ++ch)
          c.images[ch][i] = static_cast<float>(300 + 40 * ch + (l == 0 ? 0 : 150 + 60 * l * (ch + 1) % 7) + (x + 2 * y + 3 * z) % 11);
      }
  return c;
}

}  // namespace lk::test
