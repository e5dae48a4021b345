// RLIMIT_FSIZE for a scope, SIGXFSZ ignored, so a write past the limit fails
// with EFBIG the way a write to a full disk fails with ENOSPC: the tests'
// stand-in for a full disk.
#pragma once

#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>

namespace lk::test {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_) == 0);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit r = old_;
    r.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &r) == 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    ::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit old_{};
  sighandler_t old_handler_{};
};

}  // namespace lk::test
