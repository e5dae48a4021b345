// A file written atomically: bytes go to a temporary file beside `path`;
// commit() fsyncs it, renames it over `path` and fsyncs the directory. Until
// commit() succeeds the previous file is untouched, and a destroyed
// uncommitted AtomicFile removes its temporary file. Failures (a full disk,
// a missing folder) throw std::runtime_error "<path>: <what failed and why>".
// Used by checkpoints (safetensors), splits and the slice cache.
#pragma once

#include <cstddef>
#include <string>

namespace lk {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// The whole of `bytes` to `path`, atomically.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace lk
