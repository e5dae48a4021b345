// Small BraTS-like cases written in each input layout lkaseg reads
// (data/brats_cases.h): BraTS 2021, BraTS 2017-2020 (uncompressed .nii,
// grade folders), BraTS 2023 and the MSD's Task01_BrainTumour (4-D images,
// its own label coding), so every layout is read and written back in tests.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/brats_cases.h"
#include "data/volume.h"

namespace lk::test {

enum class Layout : uint8_t {
  Brats2021,  // BraTS2021_00001/BraTS2021_00001_flair.nii.gz ...
  Brats2020,  // BraTS20_Training_001/BraTS20_Training_001_flair.nii ... (uncompressed)
  Brats2018,  // HGG|LGG/Brats18_2013_1_1/Brats18_2013_1_1_flair.nii.gz ...
  Brats2023,  // BraTS-GLI-00001-000/BraTS-GLI-00001-000-t2f.nii.gz ...
  Msd,        // imagesTr/BRATS_001.nii.gz (4-D), labelsTr/BRATS_001.nii.gz, dataset.json
};
constexpr std::array<Layout, 5> kLayouts = {Layout::Brats2021, Layout::Brats2020, Layout::Brats2018, Layout::Brats2023,
                                            Layout::Msd};
const char* layout_name(Layout l);
data::BratsNaming layout_naming(Layout l);
// The id of the layout's i-th case (i >= 1): BraTS2021_0000i, BraTS20_Training_00i, ...
std::string layout_case_id(Layout l, int i);

// A case: four channels and BraTS 2021 labels (0, 1, 2, 4) on `g`; written
// under `root` in the layout, labels in its own coding. `with_seg` false:
// no segmentation (MSD: into imagesTs/).
struct LayoutCase {
  std::string id;
  data::Geometry geom;
  std::array<std::vector<float>, 4> images;  // FLAIR, T1, T1ce, T2
  std::vector<uint8_t> labels;               // BraTS 2021 values
};
void write_layout_case(const std::filesystem::path& root, Layout l, const LayoutCase& c, bool with_seg = true);

// A deterministic case of id `id` on a dims grid: a bright ellipsoid "brain"
// holding a tumour with NCR, ED and ET (the seed moves it).
LayoutCase make_layout_case(const std::string& id, const std::array<int64_t, 3>& dims, int seed);

}  // namespace lk::test
