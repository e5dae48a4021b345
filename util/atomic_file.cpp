#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "util/interrupt.h"

namespace lk {

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& what) { throw std::runtime_error(path + ": " + what); }

// The temporary's six X's, filled: letters and digits, as mkstemp uses.
void fill_xs(std::string& name) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof kChars - 2);
  for (size_t i = name.size() - 6; i < name.size(); ++i) name[i] = kChars[pick(rng)];
}

// A name from temp_template(base) with its X's filled, then `suffix`,
// registered before `create(name)` makes it (false with errno EEXIST: another
// name). Throws naming `path` with `what` and the errno text.
template <typename Create>
std::string make_registered(const std::string& path, const std::string& base, const std::string& suffix,
                            std::unique_ptr<TempRegistration>& registration, const char* what, Create create) {
  const std::string tmpl = temp_template(base.empty() ? path : base);
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = tmpl;
    fill_xs(name);
    name += suffix;
    registration = std::make_unique<TempRegistration>(name);  // before it exists
    if (create(name)) return name;
    const int err = errno;
    registration.reset();
    if (err != EEXIST) fail(path, std::string("cannot create ") + what + ": " + std::strerror(err));
  }
  fail(path, std::string("cannot create ") + what + ": 100 names taken");
}
}  // namespace

TempFile make_temp_file(const std::string& path, const std::string& base) {
  TempFile t;
  t.name = make_registered(path, base, "", t.registration, "a temporary file", [&t](const std::string& n) {
    t.fd = ::open(n.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    return t.fd >= 0;
  });
  return t;
}

TempLink::~TempLink() {
  if (!name.empty()) ::unlink(name.c_str());
}

TempLink::TempLink(const std::string& target, const std::string& base, const std::string& suffix) {
  name = make_registered(target, base, suffix, registration_, "a temporary link to it",
                         [&target](const std::string& n) { return ::symlink(target.c_str(), n.c_str()) == 0; });
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  TempFile t = make_temp_file(path_);
  fd_ = t.fd;
  tmp_ = std::move(t.name);
  reg_ = std::move(t.registration);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  if (fd_ < 0) fail(path_, "write after commit");
  const char* c = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(path_, std::string("write failed (") + std::strerror(errno) + "); the previous file is untouched");
    c += w;
    n -= static_cast<size_t>(w);
    size_ += static_cast<uint64_t>(w);
  }
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t n) {
  if (fd_ < 0) fail(path_, "write after commit");
  if (offset > size_ || n > size_ - offset) fail(path_, "write_at beyond the bytes written so far");
  const char* c = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, c, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(path_, std::string("write failed (") + std::strerror(errno) + "); the previous file is untouched");
    c += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void AtomicFile::commit() {
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp_.c_str());
    fail(path_, "fsync/close failed (" + why + "); the previous file is untouched");
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp_.c_str());
    fail(path_, "rename failed: " + why);
  }
  const size_t slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash == 0 ? 1 : slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

void check_replaceable(const std::string& path, bool ours, const std::string& why) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) || ours) return;
  throw std::invalid_argument(path + ": exists and was not written by lkaseg (" + why +
                              "); not overwriting it: choose another path, or move it away");
}

bool file_starts_with(const std::string& path, const std::string& prefix) {
  std::ifstream f(path, std::ios::binary);
  std::string head(prefix.size(), '\0');
  return f.read(head.data(), static_cast<std::streamsize>(head.size())) && head == prefix;
}

}  // namespace lk
