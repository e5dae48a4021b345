#include "data/slice_cache_fingerprint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace lk::data {

namespace {

constexpr uint64_t kHead = 64 * 1024, kBlock = 4096, kSamples = 16;

uint32_t crc_of(uint32_t crc, const unsigned char* p, size_t n) {
  return static_cast<uint32_t>(::crc32(crc, p, static_cast<uInt>(n)));
}

// Reads up to n bytes at `at`; returns how many.
size_t read_at(int fd, unsigned char* buf, size_t n, uint64_t at) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(at + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

FileFingerprint fingerprint_file(const std::string& path) {
  FileFingerprint f;
  f.name = std::filesystem::path(path).filename().string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error(path + ": cannot stat: " + why);
  }
  f.size = static_cast<uint64_t>(st.st_size);
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  std::vector<unsigned char> buf(kHead);
  const uint32_t head = crc_of(crc_of(0, nullptr, 0), buf.data(), read_at(fd, buf.data(), kHead, 0));
  uint32_t tail = crc_of(0, nullptr, 0);
  if (f.size > kHead) {
    const uint64_t rest = f.size - kHead;
    for (uint64_t i = 0; i <= kSamples; ++i) {
      // 16 blocks spread over the rest, then the last block.
      const uint64_t at = i < kSamples ? kHead + rest * i / kSamples : f.size - std::min(rest, kBlock);
      tail = crc_of(tail, buf.data(), read_at(fd, buf.data(), kBlock, at));
    }
  }
  ::close(fd);
  f.hash = (static_cast<uint64_t>(head) << 32) | tail;
  return f;
}

CaseFingerprint fingerprint_case(const BratsCase& c) {
  CaseFingerprint fp;
  fp.id = c.id;
  for (const std::string& p : c.images) fp.files.push_back(fingerprint_file(p));
  if (!c.seg.empty()) fp.files.push_back(fingerprint_file(c.seg));
  return fp;
}

std::string fingerprint_change(const CaseFingerprint& then, const CaseFingerprint& now) {
  for (const FileFingerprint& n : now.files) {
    const auto t = std::find_if(then.files.begin(), then.files.end(),
                                [&](const FileFingerprint& f) { return f.name == n.name; });
    if (t == then.files.end()) return n.name + ": a new file";
    if (t->size != n.size)
      return n.name + ": size " + std::to_string(t->size) + " -> " + std::to_string(n.size) + " bytes";
    if (t->hash != n.hash) return n.name + ": content changed";
    if (t->mtime_ns != n.mtime_ns) return n.name + ": modified since (its modification time changed)";
  }
  for (const FileFingerprint& t : then.files)
    if (std::none_of(now.files.begin(), now.files.end(), [&](const FileFingerprint& f) { return f.name == t.name; }))
      return t.name + ": gone";
  return "";
}

std::string fingerprints_to_json(const std::vector<CaseFingerprint>& fps) {
  nlohmann::json a = nlohmann::json::array();
  for (const CaseFingerprint& c : fps) {
    nlohmann::json files = nlohmann::json::array();
    for (const FileFingerprint& f : c.files)
      files.push_back({{"name", f.name}, {"size", f.size}, {"mtime_ns", f.mtime_ns}, {"hash", f.hash}});
    a.push_back({{"id", c.id}, {"files", files}});
  }
  return a.dump();
}

std::vector<CaseFingerprint> fingerprints_from_json(const std::string& text) {
  std::vector<CaseFingerprint> out;
  try {
    for (const auto& c : nlohmann::json::parse(text)) {
      CaseFingerprint fp;
      fp.id = c.at("id").get<std::string>();
      for (const auto& f : c.at("files"))
        fp.files.push_back({f.at("name").get<std::string>(), f.at("size").get<uint64_t>(),
                            f.at("mtime_ns").get<int64_t>(), f.at("hash").get<uint64_t>()});
      out.push_back(std::move(fp));
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("malformed fingerprints: ") + e.what());
  }
  return out;
}

}  // namespace lk::data
