// Preprocessed 2-D slices of a set of cases, in memory, and batches drawn
// from them: a small in-memory stand-in for the slice cache (tests compare
// the two); training reads the cache through data/loader.h.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/preprocess.h"
#include "data/slice_cache.h"

namespace lk::data {

class SliceDataset {
 public:
  void add(const PreprocessedCase& c);
  int64_t size() const { return static_cast<int64_t>(slice_case_.size()); }
  int64_t side() const { return side_; }
  // (B, 4, S, S) float32 images and (B, S, S) int32 training classes.
  Batch batch(const std::vector<int64_t>& slices) const;
  // Slices whose label map contains foreground.
  std::vector<int64_t> tumour_slices() const;

 private:
  int64_t side_ = 0;
  std::vector<float> images_;
  std::vector<int32_t> labels_;
  std::vector<int64_t> slice_case_;
};

// Adds every case of `cache` with labels (or only the named ones) to `ds`.
void fill_from_cache(SliceDataset& ds, const SliceCache& cache, const std::vector<std::string>& case_ids = {});

// Discovers, loads and preprocesses every case under `root` (BraTS layout),
// reporting progress through `log` (may be empty).
std::vector<PreprocessedCase> load_preprocessed(const std::string& root, const PreprocessOptions& o,
                                                const std::function<void(const std::string&)>& log = {});

}  // namespace lk::data
