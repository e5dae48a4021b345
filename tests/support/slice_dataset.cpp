#include "tests/support/slice_dataset.h"

#include <stdexcept>

namespace lk::data {

void SliceDataset::add(const PreprocessedCase& c) {
  if (c.labels.empty()) throw std::invalid_argument(c.id + ": a training case needs labels");
  if (side_ && c.size != side_)
    throw std::invalid_argument(c.id + ": slices of " + std::to_string(c.size) + " px in a dataset of " +
                                std::to_string(side_) + " px");
  side_ = c.size;
  images_.insert(images_.end(), c.images.begin(), c.images.end());
  labels_.insert(labels_.end(), c.labels.begin(), c.labels.end());
  slice_case_.insert(slice_case_.end(), static_cast<size_t>(c.slices()), static_cast<int64_t>(slice_case_.size()));
}

Batch SliceDataset::batch(const std::vector<int64_t>& slices) const {
  const int64_t b = static_cast<int64_t>(slices.size()), px = side_ * side_;
  Tensor images = Tensor::empty({b, 4, side_, side_});
  Tensor labels = Tensor::empty({b, side_, side_}, DType::I32);
  float* im = images.data<float>();
  int32_t* lb = labels.data<int32_t>();
  for (int64_t i = 0; i < b; ++i) {
    const int64_t s = slices[static_cast<size_t>(i)];
    if (s < 0 || s >= size()) throw std::out_of_range("slice " + std::to_string(s) + " of " + std::to_string(size()));
    std::copy_n(images_.begin() + s * 4 * px, 4 * px, im + i * 4 * px);
    std::copy_n(labels_.begin() + s * px, px, lb + i * px);
  }
  Batch out;
  out.images = images;
  out.labels = labels;
  out.slices = slices;
  return out;
}

std::vector<int64_t> SliceDataset::tumour_slices() const {
  std::vector<int64_t> out;
  const int64_t px = side_ * side_;
  for (int64_t s = 0; s < size(); ++s)
    for (int64_t i = 0; i < px; ++i)
      if (labels_[static_cast<size_t>(s * px + i)] != 0) {
        out.push_back(s);
        break;
      }
  return out;
}

std::vector<PreprocessedCase> load_preprocessed(const std::string& root, const PreprocessOptions& o,
                                                const std::function<void(const std::string&)>& log) {
  const BratsDataset ds = discover_brats_cases(root);
  if (ds.cases.empty()) throw std::invalid_argument(root + ": no BraTS case folders found");
  std::vector<PreprocessedCase> out;
  for (const BratsCase& c : ds.cases) {
    out.push_back(preprocess_case(load_brats_case(c), o));
    if (log)
      log(c.id + ": " + std::to_string(out.back().slices()) + " slices, crop " +
          std::to_string(out.back().box.extent(0)) + "x" + std::to_string(out.back().box.extent(1)) + "x" +
          std::to_string(out.back().box.extent(2)));
  }
  return out;
}

void fill_from_cache(SliceDataset& ds, const SliceCache& cache, const std::vector<std::string>& case_ids) {
  if (case_ids.empty()) {
    for (int64_t c = 0; c < cache.num_cases(); ++c)
      if (cache.case_info(c).has_labels) ds.add(cache.load_case(c));
    return;
  }
  for (const std::string& id : case_ids) {
    int64_t found = -1;
    for (int64_t c = 0; c < cache.num_cases() && found < 0; ++c)
      if (cache.case_info(c).id == id) found = c;
    if (found < 0) throw SliceCacheError(cache.path() + ": no case '" + id + "' in the cache");
    ds.add(cache.load_case(found));
  }
}

}  // namespace lk::data
