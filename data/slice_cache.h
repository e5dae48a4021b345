// The slice cache: one file per dataset holding every preprocessed slice,
// written once (atomically) and memory-mapped read-only afterwards, so
// training starts without re-reading and re-preprocessing the NIfTI files.
//
// File layout (version 1; little-endian host byte order, checked by a tag):
//   header, 256 bytes:
//     0   char[8]  magic "LKASLC01"
//     8   u32      version (1)
//     12  u32      header bytes (256)
//     16  u64      checksum: zlib CRC-32 of bytes [24, file end)
//     24  u32      byte-order tag 0x01020304, u32 reserved (0)
//     32  i64      slice size S
//     40  f64, f64 clip_lo, clip_hi (PreprocessOptions)
//     56  u64, u64 case count, slice count
//     72  u64 x 2  records offset, bytes
//     88  u64 x 2  images offset (64-byte aligned), bytes
//     104 u64 x 2  labels offset, bytes
//     120 u64      file bytes
//     128..255     zero
//   per-case records, each 8-byte aligned:
//     u64 id length, id bytes (zero-padded to 8), i64 dims[3], f64 spacing[3],
//     f64 affine[16] (row-major), i64 crop lo[3], hi[3], i64 first slice,
//     i64 slice count n, u64 flags (bit 0: has labels), i64 z[n]
//   images: float32 (slices, 4, S, S)
//   labels: uint8 (slices, S, S), training classes 0..3 (0 where a case has
//           no labels)
//
// open_slice_cache checks magic, version, header and section sizes against
// the file size before reading any offset, then the options, then the
// checksum, then every record; a failure throws SliceCacheError naming the
// file and the reason, and the caller rebuilds (ensure_slice_cache does).
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/preprocess.h"
#include "data/slice_dataset.h"
#include "data/toy_blobs.h"

namespace lk::data {

// what() is "<file>: <reason>".
class SliceCacheError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr uint32_t kSliceCacheVersion = 1;

// One case of the cache: what maps its predictions back to the original grid.
struct CachedCase {
  std::string id;
  Geometry geom;
  CropBox box;
  std::vector<int64_t> z;   // original z of each slice
  int64_t first_slice = 0;  // its slices are [first_slice, first_slice + slices())
  bool has_labels = true;
  int64_t slices() const { return static_cast<int64_t>(z.size()); }
};

class SliceCache {
 public:
  SliceCache() = default;
  SliceCache(SliceCache&& o) noexcept;
  SliceCache& operator=(SliceCache&& o) noexcept;
  SliceCache(const SliceCache&) = delete;
  SliceCache& operator=(const SliceCache&) = delete;
  ~SliceCache();

  const std::string& path() const { return path_; }
  const PreprocessOptions& options() const { return options_; }
  int64_t side() const { return options_.size; }
  int64_t slices() const { return slices_; }
  int64_t num_cases() const { return static_cast<int64_t>(cases_.size()); }
  const std::vector<CachedCase>& cases() const { return cases_; }
  const CachedCase& case_info(int64_t c) const;
  int64_t case_of_slice(int64_t slice) const;
  // Slice i's (4, S, S) images and (S, S) labels, inside the mapping.
  const float* images(int64_t slice) const;
  const uint8_t* labels(int64_t slice) const;

  // The case without pixels (images and labels empty): all map_back_labels needs.
  PreprocessedCase geometry_view(int64_t c) const;
  // The case with its slices copied out (labels empty when it has none).
  PreprocessedCase load_case(int64_t c) const;
  // The slices of the named cases, in the given order; throws for an id not in the cache.
  std::vector<int64_t> slices_of(const std::vector<std::string>& case_ids) const;
  // (B, 4, S, S) float32 images and (B, S, S) int32 classes, as SliceDataset::batch.
  ToyBatch batch(const std::vector<int64_t>& slices) const;
  // Slices whose label map holds foreground.
  std::vector<int64_t> tumour_slices() const;
  // Adds every case with labels (or only the named ones) to `ds`.
  void fill(SliceDataset& ds, const std::vector<std::string>& case_ids = {}) const;

 private:
  friend SliceCache open_slice_cache(const std::string& path, const PreprocessOptions& expected);
  void release();
  std::string path_;
  PreprocessOptions options_;
  int64_t slices_ = 0;
  std::vector<CachedCase> cases_;
  const unsigned char* map_ = nullptr;
  size_t map_bytes_ = 0;
  const float* images_ = nullptr;
  const uint8_t* labels_ = nullptr;
};

// Writes the cases (all of size o.size; labels, when present, in 0..3)
// atomically: a temporary file beside `path`, fsync, rename.
void write_slice_cache(const std::string& path, const std::vector<PreprocessedCase>& cases,
                       const PreprocessOptions& o);

// Maps and validates a cache; throws SliceCacheError for a missing,
// truncated, corrupt (checksum) or stale (options differ, other version) file.
SliceCache open_slice_cache(const std::string& path, const PreprocessOptions& expected);

// Opens `path` when it is valid and holds exactly the cases found under
// `cases_root`; otherwise (re)builds it from the BraTS folder
// (load_preprocessed), writes it and opens it. `log` (may be empty) hears
// why a rebuild happens and the progress of it.
SliceCache ensure_slice_cache(const std::string& path, const std::string& cases_root, const PreprocessOptions& o,
                              const std::function<void(const std::string&)>& log = {});

}  // namespace lk::data
