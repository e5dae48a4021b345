// A file written atomically: bytes go to a temporary file beside `path`
// ("<path>.tmp.lkaseg-<pid>.XXXXXX", util/interrupt.h); commit() fsyncs it, renames
// it over `path` and fsyncs the directory. Until commit() succeeds the
// previous file is untouched; a destroyed uncommitted AtomicFile removes its
// temporary file, and so does a signal that ends the process (the temporary
// is registered with util/interrupt.h). Failures (a full disk, a missing
// folder) throw std::runtime_error "<path>: <what failed and why>".
// Used by checkpoints (safetensors), splits and the slice cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "util/interrupt.h"

namespace lk {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends; every failure (a full disk: ENOSPC, a file size limit: EFBIG)
  // throws, naming `path` and the errno text.
  void write(const void* data, size_t bytes);
  // Overwrites bytes already written (e.g. a header patched at the end).
  void write_at(uint64_t offset, const void* data, size_t bytes);
  // Bytes appended so far.
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::unique_ptr<TempRegistration> reg_;
};

// A new temporary file named temp_template(`base`) (util/interrupt.h; `base`
// is `path` unless given) with its X's filled. The name is registered before
// the file is created (O_EXCL, another name on a clash), so a signal at any
// moment removes it; the mode is what any new file gets (0666 less the
// umask). Throws naming `path`.
struct TempFile {
  int fd = -1;
  std::string name;
  std::unique_ptr<TempRegistration> registration;
};
TempFile make_temp_file(const std::string& path, const std::string& base = "");

// A symbolic link to `target` named temp_template(`base`) with its X's
// filled and `suffix` appended, registered before it is made, so a signal
// at any moment removes it; removed when destroyed. Throws naming `target`.
// (The suffix puts the name outside remove_stale_temps' pattern: a link left
// by SIGKILL is not cleaned by the next run.)
class TempLink {
 public:
  TempLink(const std::string& target, const std::string& base, const std::string& suffix);
  ~TempLink();
  TempLink(const TempLink&) = delete;
  TempLink& operator=(const TempLink&) = delete;
  std::string name;

 private:
  std::unique_ptr<TempRegistration> registration_;
};

// The whole of `bytes` to `path`, atomically.
void write_file_atomically(const std::string& path, const std::string& bytes);

// lkaseg writes only over its own files. Throws std::invalid_argument unless
// `path` is absent or `ours` ("<path>: exists and was not written by lkaseg
// (<why>); not overwriting it: ..."). `ours` is decided by the caller, who
// knows the format (file_starts_with for text formats).
void check_replaceable(const std::string& path, bool ours, const std::string& why);
// The first bytes of `path` are `prefix` (false when unreadable or shorter).
bool file_starts_with(const std::string& path, const std::string& prefix);

}  // namespace lk
