#include "data/slice_cache.h"

#include "engine/atomic_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "engine/tensor.h"

namespace lk::data {

namespace {

constexpr char kMagic[8] = {'L', 'K', 'A', 'S', 'L', 'C', '0', '1'};
constexpr size_t kHeaderBytes = 256;
constexpr size_t kChecksumEnd = 24;  // the checksum covers [24, file end)
constexpr uint32_t kByteOrderTag = 0x01020304u;
constexpr uint64_t kFlagLabels = 1;

[[noreturn]] void fail(const std::string& path, const std::string& reason) {
  throw SliceCacheError(path + ": " + reason);
}

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t checksum;
  uint32_t byte_order;
  uint32_t reserved;
  int64_t size;
  double clip_lo, clip_hi;
  uint64_t cases, slices;
  uint64_t records_offset, records_bytes;
  uint64_t images_offset, images_bytes;
  uint64_t labels_offset, labels_bytes;
  uint64_t file_bytes;
};
static_assert(sizeof(Header) == 128);
static_assert(offsetof(Header, checksum) == 16 && offsetof(Header, byte_order) == kChecksumEnd);

uint32_t crc_update(uint32_t crc, const void* p, size_t n) {
  const auto* c = static_cast<const Bytef*>(p);
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, size_t{1} << 30));
    crc = static_cast<uint32_t>(::crc32(crc, c, chunk));
    c += chunk;
    n -= chunk;
  }
  return crc;
}

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

template <typename T>
void put(std::string& b, const T& v) {
  b.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Bounds-checked reads from the records section.
struct Reader {
  const std::string& path;
  const unsigned char* p;
  size_t n, at = 0;
  template <typename T>
  T get(const char* what) {
    if (n - at < sizeof(T)) fail(path, std::string("records section ends inside ") + what);
    T v;
    std::memcpy(&v, p + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
};

bool same_options(const PreprocessOptions& a, const PreprocessOptions& b) {
  return a.size == b.size && a.clip_lo == b.clip_lo && a.clip_hi == b.clip_hi;
}

std::string options_str(int64_t size, double lo, double hi) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "size %lld, clip [%g, %g]", static_cast<long long>(size), lo, hi);
  return buf;
}


}  // namespace

void write_slice_cache(const std::string& path, const std::vector<PreprocessedCase>& cases,
                       const PreprocessOptions& o) {
  const int64_t S = o.size;
  if (S <= 0) fail(path, "slice size must be positive");
  const size_t px = static_cast<size_t>(S * S);
  std::string records;
  uint64_t slices = 0;
  for (const PreprocessedCase& c : cases) {
    if (c.size != S)
      fail(path, "case " + c.id + " has " + std::to_string(c.size) + " px slices, the options say " + std::to_string(S));
    const size_t n = static_cast<size_t>(c.slices());
    if (c.images.size() != n * 4 * px) fail(path, "case " + c.id + ": images do not match its slice count");
    if (!c.labels.empty() && c.labels.size() != n * px) fail(path, "case " + c.id + ": labels do not match its slice count");
    for (int32_t l : c.labels)
      if (l < 0 || l > 3) fail(path, "case " + c.id + ": label class " + std::to_string(l) + " outside 0..3");
    put<uint64_t>(records, c.id.size());
    records += c.id;
    records.append(align_up(c.id.size(), 8) - c.id.size(), '\0');
    for (int a = 0; a < 3; ++a) put<int64_t>(records, c.geom.dims[a]);
    for (int a = 0; a < 3; ++a) put<double>(records, c.geom.spacing[a]);
    for (const auto& row : c.geom.affine)
      for (double v : row) put<double>(records, v);
    for (int a = 0; a < 3; ++a) put<int64_t>(records, c.box.lo[a]);
    for (int a = 0; a < 3; ++a) put<int64_t>(records, c.box.hi[a]);
    put<int64_t>(records, static_cast<int64_t>(slices));
    put<int64_t>(records, c.slices());
    put<uint64_t>(records, c.labels.empty() ? 0 : kFlagLabels);
    for (int64_t z : c.z) put<int64_t>(records, z);
    slices += n;
  }

  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kSliceCacheVersion;
  h.header_bytes = kHeaderBytes;
  h.byte_order = kByteOrderTag;
  h.size = S;
  h.clip_lo = o.clip_lo;
  h.clip_hi = o.clip_hi;
  h.cases = cases.size();
  h.slices = slices;
  h.records_offset = kHeaderBytes;
  h.records_bytes = records.size();
  h.images_offset = align_up(kHeaderBytes + records.size(), 64);
  h.images_bytes = slices * 4 * px * sizeof(float);
  h.labels_offset = h.images_offset + h.images_bytes;
  h.labels_bytes = slices * px;
  h.file_bytes = h.labels_offset + h.labels_bytes;

  unsigned char header[kHeaderBytes] = {};
  const std::string pad(h.images_offset - kHeaderBytes - records.size(), '\0');
  std::vector<uint8_t> lab;
  auto labels_of = [&](const PreprocessedCase& c) {
    lab.assign(static_cast<size_t>(c.slices()) * px, 0);
    for (size_t i = 0; i < c.labels.size(); ++i) lab[i] = static_cast<uint8_t>(c.labels[i]);
  };
  // Pass 1: the checksum; pass 2: the file.
  std::memcpy(header, &h, sizeof h);
  uint32_t crc = crc_update(static_cast<uint32_t>(::crc32(0, nullptr, 0)), header + kChecksumEnd, kHeaderBytes - kChecksumEnd);
  crc = crc_update(crc, records.data(), records.size());
  crc = crc_update(crc, pad.data(), pad.size());
  for (const PreprocessedCase& c : cases) crc = crc_update(crc, c.images.data(), c.images.size() * sizeof(float));
  for (const PreprocessedCase& c : cases) {
    labels_of(c);
    crc = crc_update(crc, lab.data(), lab.size());
  }
  h.checksum = crc;
  std::memcpy(header, &h, sizeof h);

  lk::AtomicFile f(path);
  f.write(header, kHeaderBytes);
  f.write(records.data(), records.size());
  f.write(pad.data(), pad.size());
  for (const PreprocessedCase& c : cases) f.write(c.images.data(), c.images.size() * sizeof(float));
  for (const PreprocessedCase& c : cases) {
    labels_of(c);
    f.write(lab.data(), lab.size());
  }
  f.commit();
}

SliceCache open_slice_cache(const std::string& path, const PreprocessOptions& expected) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    fail(path, "cannot stat: " + why);
  }
  const size_t bytes = static_cast<size_t>(st.st_size);
  if (bytes < kHeaderBytes) {
    ::close(fd);
    fail(path, "truncated: " + std::to_string(bytes) + " bytes, shorter than the " + std::to_string(kHeaderBytes) +
                   "-byte header");
  }
  void* m = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (m == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(map_errno));

  SliceCache sc;
  sc.path_ = path;
  sc.map_ = static_cast<const unsigned char*>(m);
  sc.map_bytes_ = bytes;  // unmapped by ~SliceCache if a check below throws

  Header h;
  std::memcpy(&h, sc.map_, sizeof h);
  if (std::memcmp(h.magic, kMagic, 8) != 0) fail(path, "not a slice cache (bad magic)");
  if (h.version != kSliceCacheVersion)
    fail(path, "stale: format version " + std::to_string(h.version) + ", this build reads version " +
                   std::to_string(kSliceCacheVersion));
  if (h.header_bytes != kHeaderBytes) fail(path, "bad header size " + std::to_string(h.header_bytes));
  if (h.byte_order != kByteOrderTag) fail(path, "written on a machine of the other byte order");
  if (h.file_bytes != bytes)
    fail(path, (bytes < h.file_bytes ? "truncated: " : "trailing data: ") + std::to_string(bytes) +
                   " bytes on disk, the header says " + std::to_string(h.file_bytes));
  // Section sizes, with every product checked against the file size first.
  if (h.size <= 0 || h.size > 65536) fail(path, "bad slice size " + std::to_string(h.size));
  const uint64_t px = static_cast<uint64_t>(h.size) * static_cast<uint64_t>(h.size);
  if (h.slices > bytes / px) fail(path, "slice count " + std::to_string(h.slices) + " does not fit the file");
  if (h.cases > bytes) fail(path, "case count " + std::to_string(h.cases) + " does not fit the file");
  const bool layout_ok =
      h.records_offset == kHeaderBytes && h.records_bytes <= bytes - kHeaderBytes &&
      h.images_offset % 64 == 0 && h.images_offset >= h.records_offset + h.records_bytes &&
      h.images_offset <= bytes && h.images_bytes == h.slices * 4 * px * sizeof(float) &&
      h.images_bytes <= bytes - h.images_offset && h.labels_offset == h.images_offset + h.images_bytes &&
      h.labels_bytes == h.slices * px && h.labels_bytes == bytes - h.labels_offset;
  if (!layout_ok) fail(path, "inconsistent section offsets/sizes in the header");
  PreprocessOptions found;
  found.size = h.size;
  found.clip_lo = h.clip_lo;
  found.clip_hi = h.clip_hi;
  if (!same_options(found, expected))
    fail(path, "stale: built with " + options_str(h.size, h.clip_lo, h.clip_hi) + ", wanted " +
                   options_str(expected.size, expected.clip_lo, expected.clip_hi));
  const uint32_t crc =
      crc_update(static_cast<uint32_t>(::crc32(0, nullptr, 0)), sc.map_ + kChecksumEnd, bytes - kChecksumEnd);
  if (crc != h.checksum) fail(path, "checksum mismatch (the file is corrupt)");

  Reader r{path, sc.map_ + h.records_offset, h.records_bytes};
  int64_t next = 0;
  for (uint64_t i = 0; i < h.cases; ++i) {
    CachedCase c;
    const uint64_t len = r.get<uint64_t>("an id length");
    if (len > r.n - r.at) fail(path, "records section ends inside a case id");
    c.id.assign(reinterpret_cast<const char*>(r.p + r.at), len);
    r.at += align_up(len, 8);
    if (r.at > r.n) fail(path, "records section ends inside a case id");
    for (int a = 0; a < 3; ++a) c.geom.dims[a] = r.get<int64_t>("dims");
    for (int a = 0; a < 3; ++a) c.geom.spacing[a] = r.get<double>("spacing");
    for (auto& row : c.geom.affine)
      for (double& v : row) v = r.get<double>("the affine");
    for (int a = 0; a < 3; ++a) c.box.lo[a] = r.get<int64_t>("the crop box");
    for (int a = 0; a < 3; ++a) c.box.hi[a] = r.get<int64_t>("the crop box");
    c.first_slice = r.get<int64_t>("the first slice");
    const int64_t n = r.get<int64_t>("the slice count");
    c.has_labels = (r.get<uint64_t>("the flags") & kFlagLabels) != 0;
    if (c.first_slice != next || n < 0 || static_cast<uint64_t>(n) > h.slices - static_cast<uint64_t>(next))
      fail(path, "case " + c.id + ": slice range does not follow the previous case");
    for (int64_t k = 0; k < n; ++k) c.z.push_back(r.get<int64_t>("the kept z"));
    next += n;
    sc.cases_.push_back(std::move(c));
  }
  if (static_cast<uint64_t>(next) != h.slices) fail(path, "case slice counts do not add up to the slice count");
  sc.options_ = found;
  sc.slices_ = next;
  sc.images_ = reinterpret_cast<const float*>(sc.map_ + h.images_offset);
  sc.labels_ = sc.map_ + h.labels_offset;
  return sc;
}

SliceCache::SliceCache(SliceCache&& o) noexcept { *this = std::move(o); }

SliceCache& SliceCache::operator=(SliceCache&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    options_ = o.options_;
    slices_ = std::exchange(o.slices_, 0);
    cases_ = std::move(o.cases_);
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    images_ = std::exchange(o.images_, nullptr);
    labels_ = std::exchange(o.labels_, nullptr);
  }
  return *this;
}

SliceCache::~SliceCache() { release(); }

void SliceCache::release() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

const CachedCase& SliceCache::case_info(int64_t c) const {
  if (c < 0 || c >= num_cases()) throw std::out_of_range("case " + std::to_string(c) + " of " + std::to_string(num_cases()));
  return cases_[static_cast<size_t>(c)];
}

int64_t SliceCache::case_of_slice(int64_t slice) const {
  if (slice < 0 || slice >= slices_) throw std::out_of_range("slice " + std::to_string(slice) + " of " + std::to_string(slices_));
  const auto it = std::upper_bound(cases_.begin(), cases_.end(), slice,
                                   [](int64_t s, const CachedCase& c) { return s < c.first_slice + c.slices(); });
  return static_cast<int64_t>(it - cases_.begin());
}

const float* SliceCache::images(int64_t slice) const {
  if (slice < 0 || slice >= slices_) throw std::out_of_range("slice " + std::to_string(slice) + " of " + std::to_string(slices_));
  return images_ + slice * 4 * side() * side();
}

const uint8_t* SliceCache::labels(int64_t slice) const {
  if (slice < 0 || slice >= slices_) throw std::out_of_range("slice " + std::to_string(slice) + " of " + std::to_string(slices_));
  return labels_ + slice * side() * side();
}

PreprocessedCase SliceCache::geometry_view(int64_t c) const {
  const CachedCase& cc = case_info(c);
  PreprocessedCase p;
  p.id = cc.id;
  p.geom = cc.geom;
  p.box = cc.box;
  p.z = cc.z;
  p.size = side();
  return p;
}

PreprocessedCase SliceCache::load_case(int64_t c) const {
  PreprocessedCase p = geometry_view(c);
  const CachedCase& cc = cases_[static_cast<size_t>(c)];
  const size_t px = static_cast<size_t>(side() * side()), n = static_cast<size_t>(cc.slices());
  if (n == 0) return p;
  const float* im = images(cc.first_slice);
  p.images.assign(im, im + n * 4 * px);
  if (cc.has_labels) {
    const uint8_t* lb = labels(cc.first_slice);
    p.labels.assign(lb, lb + n * px);
  }
  return p;
}

std::vector<int64_t> SliceCache::slices_of(const std::vector<std::string>& case_ids) const {
  std::vector<int64_t> out;
  for (const std::string& id : case_ids) {
    const auto it = std::find_if(cases_.begin(), cases_.end(), [&](const CachedCase& c) { return c.id == id; });
    if (it == cases_.end()) throw SliceCacheError(path_ + ": no case '" + id + "' in the cache");
    for (int64_t s = 0; s < it->slices(); ++s) out.push_back(it->first_slice + s);
  }
  return out;
}

ToyBatch SliceCache::batch(const std::vector<int64_t>& slices) const {
  const int64_t b = static_cast<int64_t>(slices.size()), S = side(), px = S * S;
  Tensor images_t = Tensor::empty({b, 4, S, S});
  Tensor labels_t = Tensor::empty({b, S, S}, DType::I32);
  float* im = images_t.data<float>();
  int32_t* lb = labels_t.data<int32_t>();
  for (int64_t i = 0; i < b; ++i) {
    const int64_t s = slices[static_cast<size_t>(i)];
    std::copy_n(images(s), 4 * px, im + i * 4 * px);
    std::copy_n(labels(s), px, lb + i * px);
  }
  return {images_t, labels_t};
}

std::vector<int64_t> SliceCache::tumour_slices() const {
  std::vector<int64_t> out;
  const int64_t px = side() * side();
  for (int64_t s = 0; s < slices_; ++s) {
    const uint8_t* l = labels_ + s * px;
    if (std::any_of(l, l + px, [](uint8_t v) { return v != 0; })) out.push_back(s);
  }
  return out;
}

void SliceCache::fill(SliceDataset& ds, const std::vector<std::string>& case_ids) const {
  if (case_ids.empty()) {
    for (int64_t c = 0; c < num_cases(); ++c)
      if (cases_[static_cast<size_t>(c)].has_labels) ds.add(load_case(c));
    return;
  }
  for (const std::string& id : case_ids) {
    const auto it = std::find_if(cases_.begin(), cases_.end(), [&](const CachedCase& c) { return c.id == id; });
    if (it == cases_.end()) throw SliceCacheError(path_ + ": no case '" + id + "' in the cache");
    ds.add(load_case(it - cases_.begin()));
  }
}

SliceCache ensure_slice_cache(const std::string& path, const std::string& cases_root, const PreprocessOptions& o,
                              const std::function<void(const std::string&)>& log) {
  std::string reason = "no cache yet";
  if (std::filesystem::exists(path)) {
    try {
      SliceCache sc = open_slice_cache(path, o);
      std::set<std::string> cached, found;
      for (const CachedCase& c : sc.cases()) cached.insert(c.id);
      for (const BratsCase& c : discover_brats_cases(cases_root).cases) found.insert(c.id);
      if (cached == found) return sc;
      reason = path + ": holds other cases than " + cases_root;
    } catch (const SliceCacheError& e) {
      reason = e.what();
    }
  }
  if (log) log("building the slice cache " + path + " (" + reason + ")");
  write_slice_cache(path, load_preprocessed(cases_root, o, log), o);
  return open_slice_cache(path, o);
}

}  // namespace lk::data
