// Runs a test body in a forked child (signal handlers and process exits are
// per process) and tells how it ended.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <thread>

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

// Forks a child that runs `start` (e.g. installs the interrupt handlers),
// tells it is ready, then runs `body` over and over; SIGINT lands 0 to
// `max_us` microseconds (drawn from `rng`) after it is ready. Returns the
// child's exit status; the child must exit, not die of the signal.
inline int interrupt_at_random(std::mt19937& rng, int max_us, const std::function<void()>& start,
                               const std::function<void()>& body) {
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(ready[0]);
    start();
    (void)!::write(ready[1], "r", 1);
    for (;;) body();
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, max_us)(rng)));
  REQUIRE(::kill(pid, SIGINT) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

}  // namespace lk::test
