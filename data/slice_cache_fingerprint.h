// What the slice cache remembers of each case's files, to notice a change
// (data/slice_cache.h: ensure_slice_cache rebuilds, naming the case, file
// and what changed).
//
// Per file: its size, its modification time (ns), and a 64-bit content hash:
// CRC-32 of the first 64 KiB (the NIfTI header and the start of the data)
// in the high half, CRC-32 of 16 blocks of 4 KiB spread evenly over the rest
// plus the last 4 KiB in the low half. The last bytes of a .nii.gz are the
// gzip trailer, the CRC-32 and length of all its uncompressed bytes, so for
// the usual compressed files the hash covers every voxel; for a .nii it is a
// sample. At most about 132 KiB is read per file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/brats_cases.h"

namespace lk::data {

struct FileFingerprint {
  std::string name;  // the file's name (in its case folder)
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t hash = 0;
  bool operator==(const FileFingerprint&) const = default;
};

struct CaseFingerprint {
  std::string id;
  std::vector<FileFingerprint> files;  // FLAIR, T1, T1ce, T2, then seg when present
};

FileFingerprint fingerprint_file(const std::string& path);  // throws naming the file
CaseFingerprint fingerprint_case(const BratsCase& c);

// "" when the same, else what changed first, e.g.
// "BraTS2021_00006_seg.nii.gz: size 1234 -> 5678 bytes".
std::string fingerprint_change(const CaseFingerprint& then, const CaseFingerprint& now);

// As JSON text (the cache's fingerprint section), and back; from_json throws
// std::runtime_error for malformed text.
std::string fingerprints_to_json(const std::vector<CaseFingerprint>& fps);
std::vector<CaseFingerprint> fingerprints_from_json(const std::string& text);

}  // namespace lk::data
