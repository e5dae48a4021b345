// Connected components of a binary 3-D mask, 26-connectivity (two voxels are
// neighbours when they differ by at most 1 along every axis): what the
// post-processing of predictions (train/postprocess.h) removes or keeps.
//
// Components are numbered 1..count in the order of their first voxel in
// index order (x fastest, then y, then z), so the labelling of a mask is
// deterministic. The work is one pass over the mask's bounding box plus a
// fill of each component (an explicit stack, no recursion); the labels take
// one int32 per voxel of the grid.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace lk::data {

struct Components {
  std::vector<int32_t> label;  // per voxel of the grid: 0 background, else the component (1-based)
  std::vector<int64_t> size;   // size[i]: voxels of component i + 1
  int64_t count() const { return static_cast<int64_t>(size.size()); }
};

// mask: dims[0] * dims[1] * dims[2] values, non-zero = foreground, x fastest.
// Throws std::invalid_argument when the sizes disagree.
Components connected_components(const std::vector<uint8_t>& mask, const std::array<int64_t, 3>& dims);

}  // namespace lk::data
