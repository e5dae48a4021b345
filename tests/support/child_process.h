// Runs a test body in a forked child (signal handlers and process exits are
// per process) and tells how it ended.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>

#include <catch2/catch.hpp>

namespace lk::test {

// The signal that killed the child, or 1000 + its exit status (0 when the
// body returns, 99 when it throws).
inline int run_child(const std::function<void()>& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      body();
    } catch (...) {
      ::_exit(99);
    }
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 1000 + WEXITSTATUS(status);
}

}  // namespace lk::test
