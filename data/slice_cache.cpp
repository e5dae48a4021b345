#include "data/slice_cache.h"

#include "util/atomic_file.h"

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
#include <limits>
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
  uint64_t images_offset, images_bytes;
  uint64_t labels_offset, labels_bytes;
  uint64_t records_offset, records_bytes;
  uint64_t skipped_count;
  uint64_t skipped_offset, skipped_bytes;
  uint64_t file_bytes;
  uint32_t clahe;        // 0 or 1
  int32_t clahe_tiles;   // when clahe
  double clahe_clip;     // when clahe
  uint64_t fingerprints_offset, fingerprints_bytes;
};
static_assert(sizeof(Header) == 184 && sizeof(Header) <= kHeaderBytes);
static_assert(offsetof(Header, checksum) == 16 && offsetof(Header, byte_order) == kChecksumEnd);
static_assert(offsetof(Header, images_offset) == 72 && offsetof(Header, skipped_count) == 120 &&
              offsetof(Header, file_bytes) == 144);
static_assert(sizeof(z_off_t) >= 8, "crc32_combine needs 64-bit lengths");

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

// u64 length, bytes, zero padding to 8.
void put_str(std::string& b, const std::string& v) {
  put<uint64_t>(b, v.size());
  b += v;
  b.append(align_up(v.size(), 8) - v.size(), '\0');
}

uint32_t crc_init() { return static_cast<uint32_t>(::crc32(0, nullptr, 0)); }

uint32_t crc_combine(uint32_t a, uint32_t b, uint64_t b_bytes) {
  return static_cast<uint32_t>(::crc32_combine(a, b, static_cast<z_off_t>(b_bytes)));
}

// Bounds-checked reads from the records or skipped section.
struct Reader {
  const std::string& path;
  const char* section;
  const unsigned char* p;
  size_t n, at = 0;
  template <typename T>
  T get(const char* what) {
    if (n - at < sizeof(T)) fail(path, std::string(section) + " section ends inside " + what);
    T v;
    std::memcpy(&v, p + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t len = get<uint64_t>(what);
    if (len > n - at || align_up(len, 8) > n - at) fail(path, std::string(section) + " section ends inside " + what);
    std::string v(reinterpret_cast<const char*>(p + at), len);
    at += align_up(len, 8);
    return v;
  }
};

bool same_options(const PreprocessOptions& a, const PreprocessOptions& b) {
  return a.size == b.size && a.clip_lo == b.clip_lo && a.clip_hi == b.clip_hi && a.clahe == b.clahe &&
         (!a.clahe || (a.clahe_clip == b.clahe_clip && a.clahe_tiles == b.clahe_tiles));
}

std::string options_str(const PreprocessOptions& o) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "size %lld, clip [%g, %g], %s", static_cast<long long>(o.size), o.clip_lo,
                o.clip_hi, o.clahe ? "CLAHE" : "no CLAHE");
  std::string s = buf;
  if (o.clahe) {
    std::snprintf(buf, sizeof buf, " (clip %g, %dx%d tiles)", o.clahe_clip, o.clahe_tiles, o.clahe_tiles);
    s += buf;
  }
  return s;
}

// The slices whose label map holds a value `holds` accepts.
template <class Pred>
std::vector<int64_t> slices_where(const uint8_t* labels, int64_t slices, int64_t px, Pred holds) {
  std::vector<int64_t> out;
  for (int64_t s = 0; s < slices; ++s) {
    const uint8_t* l = labels + s * px;
    if (std::any_of(l, l + px, holds)) out.push_back(s);
  }
  return out;
}

}  // namespace

struct SliceCacheWriter::Impl {
  std::string path;
  PreprocessOptions o;
  size_t px = 0;
  lk::AtomicFile file;      // header placeholder, then the images
  int labels_fd = -1;       // the labels, in an unlinked temporary file
  uint64_t labels_bytes = 0;
  uint32_t crc_images = crc_init(), crc_labels = crc_init();
  std::string records, skipped;
  uint64_t skipped_count = 0;
  std::vector<CaseFingerprint> fingerprints;
  int64_t cases = 0;
  uint64_t slices = 0;
  bool closed = false;      // finished, or broken by a failed write
  std::vector<uint8_t> lab;

  Impl(const std::string& p, const PreprocessOptions& opt) : path(p), o(opt), file(p) {}
  ~Impl() {
    if (labels_fd >= 0) ::close(labels_fd);
  }

  void write_labels(const void* data, size_t n) {
    const char* c = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(labels_fd, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        fail(path, std::string("write failed (") + std::strerror(errno) +
                       ") on the temporary labels file; the previous file is untouched");
      c += w;
      n -= static_cast<size_t>(w);
      labels_bytes += static_cast<uint64_t>(w);
    }
  }

  // The labels file appended to the cache file, in fixed chunks.
  void append_labels() {
    if (::lseek(labels_fd, 0, SEEK_SET) != 0) fail(path, std::string("cannot rewind the labels: ") + std::strerror(errno));
    std::vector<char> buf(size_t{4} << 20);
    uint64_t left = labels_bytes;
    while (left > 0) {
      const ssize_t r = ::read(labels_fd, buf.data(), std::min<uint64_t>(left, buf.size()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail(path, std::string("cannot read the temporary labels file back: ") + (r < 0 ? std::strerror(errno) : "it is short"));
      file.write(buf.data(), static_cast<size_t>(r));
      left -= static_cast<uint64_t>(r);
    }
  }
};

SliceCacheWriter::SliceCacheWriter(const std::string& path, const PreprocessOptions& o) {
  if (o.size <= 0) fail(path, "slice size must be positive");
  impl_ = std::make_unique<Impl>(path, o);
  Impl& w = *impl_;
  w.px = static_cast<size_t>(o.size * o.size);
  // The labels' scratch file, unlinked at once (gone with the descriptor,
  // whatever happens); until then a temporary like any other (a Ctrl-C
  // removes it, a kill leaves a name the next run removes as stale).
  const TempFile labels = make_temp_file(path, path + ".labels");
  w.labels_fd = labels.fd;
  ::unlink(labels.name.c_str());
  const unsigned char zeros[kHeaderBytes] = {};
  w.file.write(zeros, kHeaderBytes);  // the header, patched by finish()
}

SliceCacheWriter::~SliceCacheWriter() = default;

int64_t SliceCacheWriter::cases() const { return impl_->cases; }
int64_t SliceCacheWriter::slices() const { return static_cast<int64_t>(impl_->slices); }

void SliceCacheWriter::add(const PreprocessedCase& c) {
  Impl& w = *impl_;
  const std::string& path = w.path;
  if (w.closed) fail(path, "add after finish() or a failed write");
  const int64_t S = w.o.size;
  const size_t px = w.px;
  if (c.size != S)
    fail(path, "case " + c.id + " has " + std::to_string(c.size) + " px slices, the options say " + std::to_string(S));
  const size_t n = static_cast<size_t>(c.slices());
  if (c.images.size() != n * 4 * px) fail(path, "case " + c.id + ": images do not match its slice count");
  if (!c.labels.empty() && c.labels.size() != n * px) fail(path, "case " + c.id + ": labels do not match its slice count");
  w.lab.assign(n * px, 0);
  for (size_t i = 0; i < c.labels.size(); ++i) {
    const int32_t l = c.labels[i];
    if (l < 0 || l > 3) fail(path, "case " + c.id + ": label class " + std::to_string(l) + " outside 0..3");
    w.lab[i] = static_cast<uint8_t>(l);
  }
  std::string rec;
  put_str(rec, c.id);
  for (int a = 0; a < 3; ++a) put<int64_t>(rec, c.geom.dims[a]);
  for (int a = 0; a < 3; ++a) put<double>(rec, c.geom.spacing[a]);
  for (const auto& row : c.geom.affine)
    for (double v : row) put<double>(rec, v);
  for (int a = 0; a < 3; ++a) put<int64_t>(rec, c.box.lo[a]);
  for (int a = 0; a < 3; ++a) put<int64_t>(rec, c.box.hi[a]);
  put<int64_t>(rec, static_cast<int64_t>(w.slices));
  put<int64_t>(rec, c.slices());
  put<uint64_t>(rec, c.labels.empty() ? 0 : kFlagLabels);
  for (int64_t z : c.z) put<int64_t>(rec, z);

  w.closed = true;  // until the case is fully written
  const size_t image_bytes = c.images.size() * sizeof(float);
  w.file.write(c.images.data(), image_bytes);
  w.crc_images = crc_update(w.crc_images, c.images.data(), image_bytes);
  w.write_labels(w.lab.data(), w.lab.size());
  w.crc_labels = crc_update(w.crc_labels, w.lab.data(), w.lab.size());
  w.records += rec;
  w.slices += n;
  ++w.cases;
  w.closed = false;
}

void SliceCacheWriter::add_fingerprint(const CaseFingerprint& fp) {
  Impl& w = *impl_;
  if (w.closed) fail(w.path, "add_fingerprint after finish() or a failed write");
  w.fingerprints.push_back(fp);
}

void SliceCacheWriter::add_skipped(const SkippedCase& sk) {
  Impl& w = *impl_;
  if (w.closed) fail(w.path, "add_skipped after finish() or a failed write");
  put_str(w.skipped, sk.id);
  put_str(w.skipped, sk.reason);
  ++w.skipped_count;
}

uint64_t SliceCacheWriter::finish() {
  Impl& w = *impl_;
  if (w.closed) fail(w.path, "finish() after finish() or a failed write");
  w.closed = true;
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kSliceCacheVersion;
  h.header_bytes = kHeaderBytes;
  h.byte_order = kByteOrderTag;
  h.size = w.o.size;
  h.clip_lo = w.o.clip_lo;
  h.clip_hi = w.o.clip_hi;
  h.clahe = w.o.clahe ? 1u : 0u;
  h.clahe_tiles = w.o.clahe ? w.o.clahe_tiles : 0;
  h.clahe_clip = w.o.clahe ? w.o.clahe_clip : 0.0;
  h.cases = static_cast<uint64_t>(w.cases);
  h.slices = w.slices;
  h.images_offset = kHeaderBytes;
  h.images_bytes = w.slices * 4 * w.px * sizeof(float);
  h.labels_offset = h.images_offset + h.images_bytes;
  h.labels_bytes = w.slices * w.px;
  h.records_offset = align_up(h.labels_offset + h.labels_bytes, 8);
  h.records_bytes = w.records.size();
  h.skipped_count = w.skipped_count;
  h.skipped_offset = h.records_offset + h.records_bytes;
  h.skipped_bytes = w.skipped.size();
  const std::string fps = fingerprints_to_json(w.fingerprints);
  h.fingerprints_offset = h.skipped_offset + h.skipped_bytes;
  h.fingerprints_bytes = fps.size();
  h.file_bytes = h.fingerprints_offset + h.fingerprints_bytes;
  if (w.file.size() != h.labels_offset || w.labels_bytes != h.labels_bytes)
    fail(w.path, "internal error: written sections do not match the header");

  w.append_labels();
  const std::string pad(h.records_offset - h.labels_offset - h.labels_bytes, '\0');
  w.file.write(pad.data(), pad.size());
  w.file.write(w.records.data(), w.records.size());
  w.file.write(w.skipped.data(), w.skipped.size());
  w.file.write(fps.data(), fps.size());
  if (w.file.size() != h.file_bytes) fail(w.path, "internal error: file size does not match the header");

  // The checksum of [24, end): the header's part, then the streamed body.
  uint32_t body = crc_combine(w.crc_images, w.crc_labels, h.labels_bytes);
  body = crc_update(body, pad.data(), pad.size());
  body = crc_update(body, w.records.data(), w.records.size());
  body = crc_update(body, w.skipped.data(), w.skipped.size());
  body = crc_update(body, fps.data(), fps.size());
  unsigned char header[kHeaderBytes] = {};
  std::memcpy(header, &h, sizeof h);
  const uint32_t head = crc_update(crc_init(), header + kChecksumEnd, kHeaderBytes - kChecksumEnd);
  h.checksum = crc_combine(head, body, h.file_bytes - kHeaderBytes);
  std::memcpy(header, &h, sizeof h);
  w.file.write_at(0, header, kHeaderBytes);
  w.file.commit();
  ::close(w.labels_fd);
  w.labels_fd = -1;
  return h.file_bytes;
}

void write_slice_cache(const std::string& path, const std::vector<PreprocessedCase>& cases,
                       const PreprocessOptions& o) {
  SliceCacheWriter w(path, o);
  for (const PreprocessedCase& c : cases) w.add(c);
  w.finish();
}

bool is_slice_cache_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  char magic[sizeof kMagic] = {};
  ssize_t got = 0;
  while (got < static_cast<ssize_t>(sizeof magic)) {
    const ssize_t r = ::read(fd, magic + got, sizeof magic - static_cast<size_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += r;
  }
  ::close(fd);
  return got == 0 || (got == static_cast<ssize_t>(sizeof magic) && std::memcmp(magic, kMagic, sizeof magic) == 0);
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
  if (h.cases > bytes) fail(path, "case count " + std::to_string(h.cases) + " does not fit the file");
  // Every section in file order, each size checked before it is added.
  const uint64_t max_slices = bytes / px / (4 * sizeof(float));  // images alone must fit
  if (h.slices > max_slices) fail(path, "slice count " + std::to_string(h.slices) + " does not fit the file");
  if (h.skipped_count > bytes) fail(path, "skipped-case count " + std::to_string(h.skipped_count) + " does not fit the file");
  const bool layout_ok =
      h.images_offset == kHeaderBytes && h.images_bytes == h.slices * 4 * px * sizeof(float) &&
      h.images_bytes <= bytes - h.images_offset && h.labels_offset == h.images_offset + h.images_bytes &&
      h.labels_bytes == h.slices * px && h.labels_bytes <= bytes - h.labels_offset &&
      h.records_offset == align_up(h.labels_offset + h.labels_bytes, 8) && h.records_offset <= bytes &&
      h.records_bytes <= bytes - h.records_offset && h.skipped_offset == h.records_offset + h.records_bytes &&
      h.skipped_bytes <= bytes - h.skipped_offset && h.fingerprints_offset == h.skipped_offset + h.skipped_bytes &&
      h.fingerprints_bytes == bytes - h.fingerprints_offset;
  if (!layout_ok) fail(path, "inconsistent section offsets/sizes in the header");
  PreprocessOptions found;
  found.size = h.size;
  found.clip_lo = h.clip_lo;
  found.clip_hi = h.clip_hi;
  if (h.clahe > 1) fail(path, "bad CLAHE flag " + std::to_string(h.clahe));
  found.clahe = h.clahe == 1;
  found.clahe_tiles = h.clahe_tiles;
  found.clahe_clip = h.clahe_clip;
  if (!same_options(found, expected))
    fail(path, "stale: built with " + options_str(found) + ", wanted " + options_str(expected));
  const uint32_t crc =
      crc_update(static_cast<uint32_t>(::crc32(0, nullptr, 0)), sc.map_ + kChecksumEnd, bytes - kChecksumEnd);
  if (crc != h.checksum) fail(path, "checksum mismatch (the file is corrupt)");

  Reader r{path, "records", sc.map_ + h.records_offset, h.records_bytes};
  int64_t next = 0;
  for (uint64_t i = 0; i < h.cases; ++i) {
    CachedCase c;
    c.id = r.str("a case id");
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
  if (r.at != r.n) fail(path, "records section holds more than " + std::to_string(h.cases) + " cases");
  Reader sk{path, "skipped", sc.map_ + h.skipped_offset, h.skipped_bytes};
  for (uint64_t i = 0; i < h.skipped_count; ++i) {
    SkippedCase k;
    k.id = sk.str("a skipped case id");
    k.reason = sk.str("a skipped case's reason");
    sc.skipped_.push_back(std::move(k));
  }
  if (sk.at != sk.n) fail(path, "skipped section holds more than " + std::to_string(h.skipped_count) + " cases");
  try {
    sc.fingerprints_ = fingerprints_from_json(
        std::string(reinterpret_cast<const char*>(sc.map_ + h.fingerprints_offset), h.fingerprints_bytes));
  } catch (const std::exception& e) {
    fail(path, e.what());
  }
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
    skipped_ = std::move(o.skipped_);
    fingerprints_ = std::move(o.fingerprints_);
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

Batch SliceCache::batch(const std::vector<int64_t>& slices) const {
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
  Batch out;
  out.images = images_t;
  out.labels = labels_t;
  out.slices = slices;
  return out;
}

std::vector<int64_t> SliceCache::tumour_slices() const {
  return slices_where(labels_, slices_, side() * side(), [](uint8_t v) { return v != 0; });
}

std::vector<int64_t> SliceCache::slices_with_class(uint8_t cls) const {
  return slices_where(labels_, slices_, side() * side(), [cls](uint8_t v) { return v == cls; });
}

}  // namespace lk::data
