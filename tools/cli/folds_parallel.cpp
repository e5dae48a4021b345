// cv --parallel-folds N / --devices LIST: several folds trained at once, one
// child `lkaseg train --fold k` each (tools/cli/run.h).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli/run.h"
#include "util/interrupt.h"

extern char** environ;

namespace lk::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// --devices entries: "cpu", "N" (cuda:N) or "cuda:N".
std::string device_arg(const std::string& d) {
  if (d == "cpu" || d.rfind("cuda", 0) == 0) return d;
  if (!d.empty() && std::all_of(d.begin(), d.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) return "cuda:" + d;
  throw std::invalid_argument("--devices: '" + d + "' is not cpu, a GPU index or cuda:N");
}

// The child's command line: ours with `cv` -> `train`, the options that only
// cv or the parent has dropped, then --fold k --device D.
std::vector<std::string> child_args(int fold, const std::string& device) {
  if (g_argv.empty()) throw std::logic_error("train_folds_in_parallel: the command line was not recorded");
  std::vector<std::string> out{g_argv[0]};
  bool sub = false;
  for (size_t i = 1; i < g_argv.size(); ++i) {
    const std::string& a = g_argv[i];
    if (!sub && a == "cv") {
      out.push_back("train");
      sub = true;
      continue;
    }
    const auto named = [&](const char* opt) { return a == opt || a.rfind(std::string(opt) + "=", 0) == 0; };
    if (named("--no-eval")) continue;
    if (named("--parallel-folds") || named("--device") || named("--devices")) {
      if (a.find('=') == std::string::npos)  // its values follow: up to the next option
        while (i + 1 < g_argv.size() && g_argv[i + 1].rfind("-", 0) != 0) ++i;
      continue;
    }
    out.push_back(a);
  }
  out.insert(out.end(), {"--fold", std::to_string(fold), "--device", device});
  return out;
}

struct Child {
  pid_t pid = -1;
  int fold = -1;
  size_t slot = 0;
  Clock::time_point t0;
  std::string log;
};

pid_t spawn(const std::vector<std::string>& args, const std::string& log, const std::string& omp_threads) {
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0) throw std::runtime_error("posix_spawn_file_actions_init failed");
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0666);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (omp_threads.empty() || std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0) env.emplace_back(*e);
  if (!omp_threads.empty()) env.push_back("OMP_NUM_THREADS=" + omp_threads);
  std::vector<char*> argv, envp;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start a fold's process: " + std::string(std::strerror(rc)));
  return pid;
}

std::string last_lines(const std::string& path, size_t n) {
  std::ifstream in(path);
  std::deque<std::string> q;
  for (std::string line; std::getline(in, line);) {
    q.push_back(line);
    if (q.size() > n) q.pop_front();
  }
  std::string s;
  for (const std::string& l : q) s += "    " + l + "\n";
  return s;
}

}  // namespace

int train_folds_in_parallel(const RunOptions& o, const Prepared& p) {
  std::vector<std::string> slots;
  for (const std::string& d : o.devices) slots.push_back(device_arg(d));
  if (slots.empty()) slots.assign(static_cast<size_t>(o.parallel_folds), o.device);
  const int folds = static_cast<int>(p.split.folds.size());
  // CPU children share the cores (unless OMP_NUM_THREADS says).
  const auto cpu_slots = std::count_if(slots.begin(), slots.end(), [](const std::string& d) { return d == "cpu"; });
  std::string threads;
  if (cpu_slots > 0 && !std::getenv("OMP_NUM_THREADS")) {
    const long cores = std::max(1u, std::thread::hardware_concurrency());
    threads = std::to_string(std::max(1L, cores / std::min<long>(cpu_slots, folds)));
  }
  std::printf("training %d folds, %zu at a time (%s)%s\n", folds, std::min<size_t>(slots.size(), folds),
              o.devices.empty() ? ("--device " + o.device).c_str() : "one per device",
              threads.empty() ? "" : (", " + threads + " thread(s) each").c_str());
  std::fflush(stdout);

  // The first Ctrl-C only asks for a stop: the children stop after their
  // step with a checkpoint, and this process waits for them.
  const StopScope stoppable("the folds' current steps (each writes a checkpoint)");
  std::vector<Child> running;
  std::vector<char> slot_busy(slots.size(), 0);
  int next = 0, failed = 0, stopped = 0;
  bool forwarded = false;
  while (next < folds || !running.empty()) {
    while (!stop_requested() && next < folds) {
      const auto free = std::find(slot_busy.begin(), slot_busy.end(), 0);
      if (free == slot_busy.end()) break;
      Child c;
      c.fold = next++;
      c.slot = static_cast<size_t>(free - slot_busy.begin());
      const fs::path dir = fs::path(o.out) / ("fold_" + std::to_string(c.fold));
      fs::create_directories(dir);
      c.log = (dir / "train.out").string();
      c.pid = spawn(child_args(c.fold, slots[c.slot]), c.log, slots[c.slot] == "cpu" ? threads : "");
      c.t0 = Clock::now();
      *free = 1;
      std::printf("fold %d: started on %s (pid %d), output in %s\n", c.fold, slots[c.slot].c_str(),
                  static_cast<int>(c.pid), c.log.c_str());
      std::fflush(stdout);
      running.push_back(c);
    }
    if (stop_requested() && !forwarded) {  // Ctrl-C reached them too; a SIGTERM to us alone did not
      for (const Child& c : running) kill(c.pid, SIGTERM);
      forwarded = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (size_t i = 0; i < running.size();) {
      int status = 0;
      const pid_t w = waitpid(running[i].pid, &status, WNOHANG);
      if (w == 0 || (w < 0 && errno == EINTR)) {
        ++i;
        continue;
      }
      const Child c = running[i];
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
      slot_busy[c.slot] = 0;
      const double secs = std::chrono::duration<double>(Clock::now() - c.t0).count();
      const int code = w < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (code == 0) {
        std::printf("fold %d: done in %.0f s\n", c.fold, secs);
      } else if (code == 130) {
        ++stopped;
        std::printf("fold %d: stopped after %.0f s (checkpoint written; run again to resume)\n", c.fold, secs);
      } else {
        ++failed;
        std::printf("fold %d: failed (exit %d) after %.0f s; the end of %s:\n%s", c.fold, code, secs, c.log.c_str(),
                    last_lines(c.log, 8).c_str());
      }
      std::fflush(stdout);
    }
  }
  if (failed) {
    std::printf("%d fold(s) failed; the others are kept (run again to resume)\n", failed);
    return 1;
  }
  if (stopped || stop_requested()) {
    std::printf("stopped: run the same command again to resume\n");
    return 130;
  }
  return 0;
}

}  // namespace lk::cli
