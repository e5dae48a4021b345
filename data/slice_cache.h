// The slice cache: one file per dataset holding every preprocessed slice,
// written once (atomically) and memory-mapped read-only afterwards, so
// training starts without re-reading and re-preprocessing the NIfTI files.
//
// File layout (version 3, written in one streaming pass: the sections are
// appended as the cases arrive, the header is patched in at the end;
// little-endian host byte order, checked by a tag):
//   header, 256 bytes:
//     0   char[8]  magic "LKASLC01"
//     8   u32      version (2)
//     12  u32      header bytes (256)
//     16  u64      checksum: zlib CRC-32 of bytes [24, file end)
//     24  u32      byte-order tag 0x01020304, u32 reserved (0)
//     32  i64      slice size S
//     40  f64, f64 clip_lo, clip_hi (PreprocessOptions)
//     56  u64, u64 case count, slice count
//     72  u64 x 2  images offset (256), bytes
//     88  u64 x 2  labels offset (right after the images), bytes
//     104 u64 x 2  records offset (8-byte aligned after the labels), bytes
//     120 u64      skipped-case count
//     128 u64 x 2  skipped offset (right after the records), bytes
//     144 u64      file bytes (the skipped section ends the file)
//     152 u32      CLAHE (0 or 1), i32 CLAHE tiles per side (0 without)
//     160 f64      CLAHE clip limit (0 without)
//     168 u64 x 2  fingerprints offset (right after the skipped cases), bytes
//     184..255     zero
//   images: float32 (slices, 4, S, S), case after case
//   labels: uint8 (slices, S, S), training classes 0..3 (0 where a case has
//           no labels); gathered in an unlinked side file while the images
//           stream, appended after the last case
//   zero padding to 8 bytes
//   per-case records, each 8-byte aligned:
//     u64 id length, id bytes (zero-padded to 8), i64 dims[3], f64 spacing[3],
//     f64 affine[16] (row-major), i64 crop lo[3], hi[3], i64 first slice,
//     i64 slice count n, u64 flags (bit 0: has labels), i64 z[n]
//   skipped cases (a build with skip_bad), each: u64 id length, id bytes
//     (zero-padded to 8), u64 reason length, reason bytes (zero-padded to 8)
//   fingerprints: JSON text, the case files as they were when read
//     (data/slice_cache_fingerprint.h), for the cases and the skipped ones
//     that were found; it ends the file
// The checksum is computed while writing (the header's part combined with
// the streamed part by crc32_combine), never by reading the file back.
// Versions 1 (records before the images; needed the slice count up front)
// and 2 (no fingerprints) are refused as stale and rebuilt.
//
// Building (SliceCacheWriter, ensure_slice_cache): the cases are loaded and
// preprocessed on a pool of threads (data/preprocess_pool.h) and written in
// case order as they arrive, so at most a few cases are in memory whatever
// the dataset size, and the file does not depend on the thread count.
//
// open_slice_cache checks magic, version, header and section sizes against
// the file size before reading any offset, then the options, then the
// checksum, then every record; a failure throws SliceCacheError naming the
// file and the reason, and the caller rebuilds (ensure_slice_cache does) -
// unless the file is not a slice cache at all (another file named by
// mistake): that is never overwritten.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/preprocess.h"
#include "data/slice_cache_fingerprint.h"

namespace lk::data {

// what() is "<file>: <reason>".
class SliceCacheError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr uint32_t kSliceCacheVersion = 3;

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
  // Cases left out of a skip_bad build, with the reason.
  const std::vector<SkippedCase>& skipped() const { return skipped_; }
  // The case files as they were read (cases, then skipped cases that were
  // found); empty for a cache written from memory (write_slice_cache).
  const std::vector<CaseFingerprint>& fingerprints() const { return fingerprints_; }
  uint64_t file_bytes() const { return map_bytes_; }
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
  // (B, 4, S, S) float32 images and (B, S, S) int32 classes on the CPU.
  Batch batch(const std::vector<int64_t>& slices) const;
  // Slices whose label map holds foreground.
  std::vector<int64_t> tumour_slices() const;
  // Slices whose label map holds training class `cls` (data/preprocess.h: 1 ET, 2 ED, 3 NCR).
  std::vector<int64_t> slices_with_class(uint8_t cls) const;

 private:
  friend SliceCache open_slice_cache(const std::string& path, const PreprocessOptions& expected);
  void release();
  std::string path_;
  PreprocessOptions options_;
  int64_t slices_ = 0;
  std::vector<CachedCase> cases_;
  std::vector<SkippedCase> skipped_;
  std::vector<CaseFingerprint> fingerprints_;
  const unsigned char* map_ = nullptr;
  size_t map_bytes_ = 0;
  const float* images_ = nullptr;
  const uint8_t* labels_ = nullptr;
};

// Writes a cache one case at a time: add() appends the case's images to a
// temporary file beside `path` (its labels to an unlinked side file) and
// keeps only its record; finish() appends the labels, records and skipped
// list, patches the header, fsyncs and renames over `path`. A writer
// destroyed before finish() (an exception) leaves no file behind and
// `path` untouched. Every failure throws, naming `path` (write errors with
// the errno text, e.g. "No space left on device").
class SliceCacheWriter {
 public:
  SliceCacheWriter(const std::string& path, const PreprocessOptions& o);
  ~SliceCacheWriter();
  SliceCacheWriter(const SliceCacheWriter&) = delete;
  SliceCacheWriter& operator=(const SliceCacheWriter&) = delete;

  // A case of size o.size, labels (when present) in 0..3; checked before
  // anything of it is written (SliceCacheError naming the case).
  void add(const PreprocessedCase& c);
  void add_skipped(const SkippedCase& s);
  void add_fingerprint(const CaseFingerprint& fp);
  // Returns the file's size in bytes.
  uint64_t finish();

  int64_t cases() const;
  int64_t slices() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes the cases (all of size o.size; labels, when present, in 0..3)
// atomically through a SliceCacheWriter.
void write_slice_cache(const std::string& path, const std::vector<PreprocessedCase>& cases,
                       const PreprocessOptions& o);

// True when `path` is absent, empty, or starts with the slice cache's magic
// (any version): a file ensure_slice_cache may replace.
bool is_slice_cache_file(const std::string& path);

// Maps and validates a cache; throws SliceCacheError for a missing,
// truncated, corrupt (checksum) or stale (options differ, other version) file.
SliceCache open_slice_cache(const std::string& path, const PreprocessOptions& expected);

struct CacheBuildOptions {
  int threads = 0;          // workers loading + preprocessing cases; 0: all cores
  int window = 0;           // cases held in memory at once; 0: threads + 2
  bool skip_bad = false;    // skip bad cases (listed in the cache and the summary) instead of failing
  bool force = false;       // ensure_slice_cache: rebuild even a valid cache
  std::vector<std::string> only{};  // when not empty: only these cases of the folder (each must exist)
  std::FILE* progress = stderr;  // progress lines while building (util/progress.h); nullptr: none
  // Why a rebuild happens, and a warning per skipped case; may be empty.
  std::function<void(const std::string&)> log{};
};

struct CacheBuildSummary {
  std::string path;
  bool built = false;  // false: a valid cache was reused
  std::string reason;  // why it was (re)built
  int64_t cases = 0, slices = 0;
  std::vector<SkippedCase> skipped;
  double seconds = 0;  // of the build (or of the check, when reused)
  uint64_t bytes = 0;  // the file's size
  int threads = 0, window = 0, max_held = 0;  // the pool (data/preprocess_pool.h), when built
};

// Discovers the BraTS cases under `cases_root` (with skip_bad: bad folders
// skipped and listed), fingerprints their files, loads and preprocesses them
// on b.threads workers and streams them into a new cache at `path`
// (atomically), in case order. Before reading any voxel the cache's size is
// bounded from the headers: refused when it cannot fit the free space, a
// warning when --size upsamples the volumes. A case that fails to load does
// not stop the others: without skip_bad the cache is still written (the bad
// cases listed as skipped, so the work is kept) and then BratsError is thrown
// naming the bad cases, the first one's file and --skip-bad. Throws for a
// write failure, naming `path`; when no case is usable; and, without writing
// anything, when `path` exists and is not a slice cache (is_slice_cache_file).
CacheBuildSummary build_slice_cache(const std::string& path, const std::string& cases_root,
                                    const PreprocessOptions& o, const CacheBuildOptions& b = {});

// Opens `path` when it is valid and holds exactly the cases found under
// `cases_root` (cases plus skipped ones; skipped ones only with skip_bad),
// every case file still matches its fingerprint (size, modification time,
// content hash) and b.force is off; otherwise (re)builds it, saying why
// (e.g. "case BraTS2021_00006 (BraTS2021_00006_seg.nii.gz: size 1234 -> 5678
// bytes) changed since ..."), copying the unchanged cases from the old cache
// when its options match, and opens it. Never overwrites a file that is not
// a slice cache. `summary`, when given, receives what happened.
SliceCache ensure_slice_cache(const std::string& path, const std::string& cases_root, const PreprocessOptions& o,
                              const CacheBuildOptions& b, CacheBuildSummary* summary = nullptr);

// The same with the defaults (all cores, progress on stderr); `log` (may be
// empty) hears why a rebuild happens, skipped cases and the summary.
SliceCache ensure_slice_cache(const std::string& path, const std::string& cases_root, const PreprocessOptions& o,
                              const std::function<void(const std::string&)>& log = {});

// Lines for the user: cases, slices, skipped cases with their reason,
// seconds, bytes.
std::vector<std::string> format_cache_summary(const CacheBuildSummary& s);

}  // namespace lk::data
