// The resume soak (issue 11): a tiny training run through the lkaseg binary
// is interrupted at random points - 20 times by SIGKILL, 5 times by a double
// SIGINT (the second 0-60 ms after the first) - each time in a fresh run
// folder, then run again to the end. Every resumed run must end with exactly
// the weights (last checkpoint and best.safetensors, bit for bit) and the
// per-epoch losses of an uninterrupted run, with no temporary file left.
// The random points cover the whole run: start-up, the cache build, steps,
// validation and checkpoint saves.
//
// Usage: soak_resume <lkaseg> [kills 20] [double_sigints 5] [seed]
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/safetensors.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string g_bin;
fs::path g_root;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "soak: FAIL: %s (files kept in %s)\n", why.c_str(), g_root.c_str());
  std::exit(1);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Starts lkaseg with `args`, its output appended to `log`.
pid_t start(const std::vector<std::string>& args, const fs::path& log) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<char*> argv{const_cast<char*>(g_bin.c_str())};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(g_bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

// "exit N" or "signal N".
std::string wait_for(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) die("waitpid failed");
  return WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status)) : "exit " + std::to_string(WEXITSTATUS(status));
}

std::vector<std::string> train_args(const fs::path& data, const fs::path& run) {
  return {"train",       "--data", data.string(), "--out", run.string(), "--fraction", "1",  "--folds",
          "2",           "--fold", "1",           "--size", "32",         "--widths",   "4",  "8",
          "16",          "32",     "--batch",     "4",      "--epochs",   "8",          "--steps-per-epoch",
          "3",           "--val-every", "2",      "--warmup-epochs", "1", "--lr",       "3e-3", "--oversample",
          "0.5",         "--device", "cpu",      "--workers", "2"};
}

// What must come out of every run the same: the tensors of the newest
// checkpoint's weights and of best.safetensors, and each epoch's loss and
// validation line of log.jsonl (times removed).
std::string outcome(const fs::path& fold) {
  std::string s;
  const std::string manifest = slurp(fold / "last.json");
  const size_t at = manifest.find("\"weights\": \"");
  if (at == std::string::npos) die(fold.string() + "/last.json: no weights named");
  const std::string weights = manifest.substr(at + 12, manifest.find('"', at + 12) - at - 12);
  for (const fs::path& f : {fold / weights, fold / "best.safetensors"}) {
    const lk::SafeTensors st = lk::load_safetensors(f.string());
    for (const auto& [key, t] : st.tensors)
      s += key + ":" + std::string(static_cast<const char*>(t.raw()), t.nbytes()) + ";";
  }
  std::istringstream log(slurp(fold / "log.jsonl"));
  static const std::regex times(R"re("(seconds|wait_ms)":[-+0-9.eE]+)re");
  for (std::string line; std::getline(log, line);) s += std::regex_replace(line, times, "") + "\n";
  return s;
}

int temps(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: soak_resume <lkaseg> [kills] [double_sigints] [seed]\n");
    return 2;
  }
  g_bin = argv[1];
  const int kills = argc > 2 ? std::atoi(argv[2]) : 20;
  const int doubles = argc > 3 ? std::atoi(argv[3]) : 5;
  const uint64_t seed = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : std::random_device{}();
  std::mt19937_64 rng(seed);
  g_root = fs::temp_directory_path() / ("lkaseg_soak_" + std::to_string(::getpid()));
  fs::remove_all(g_root);
  fs::create_directories(g_root / "logs");
  const fs::path data = g_root / "data";
  const auto t_start = Clock::now();
  if (wait_for(start({"synth", "--out", data.string(), "--cases", "4", "--seed", "5", "--size", "48", "48", "16"},
                     g_root / "logs" / "synth.log")) != "exit 0")
    die("synth failed");

  // The uninterrupted run, and how long it takes (start-up included).
  const auto t0 = Clock::now();
  if (wait_for(start(train_args(data, g_root / "ref"), g_root / "logs" / "ref.log")) != "exit 0")
    die("the uninterrupted run failed: " + slurp(g_root / "logs" / "ref.log"));
  const double t_ref = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::string want = outcome(g_root / "ref" / "fold_1");

  int ended_killed = 0, ended_130 = 0, ended_done = 0;
  for (int i = 0; i < kills + doubles; ++i) {
    const bool kill9 = i < kills;
    const fs::path run = g_root / ("run_" + std::to_string(i)), log = g_root / "logs" / ("run_" + std::to_string(i) + ".log");
    const double at = std::uniform_real_distribution<double>(0.0, 0.9 * t_ref)(rng);
    const pid_t pid = start(train_args(data, run), log);
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    if (kill9) {
      ::kill(pid, SIGKILL);
    } else {
      ::kill(pid, SIGINT);
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 60)(rng)));
      ::kill(pid, SIGINT);
    }
    const std::string how = wait_for(pid);
    ended_killed += how.rfind("signal", 0) == 0;
    ended_130 += how == "exit 130";
    ended_done += how == "exit 0";
    if (how != "exit 0" && how != "exit 130" && how != "signal 9" && how != "signal 2")
      die("run " + std::to_string(i) + " ended with " + how + ": " + slurp(log));
    // Again, to the end: it must resume (or start over when nothing was
    // saved yet) and end exactly where the uninterrupted run ended.
    const std::string again = wait_for(start(train_args(data, run), log));
    if (again != "exit 0") die("run " + std::to_string(i) + " did not resume (" + again + "): " + slurp(log));
    if (outcome(run / "fold_1") != want)
      die("run " + std::to_string(i) + " (" + (kill9 ? "SIGKILL" : "double SIGINT") + " at " + std::to_string(at) +
          " s, " + how + ") ended with other weights or losses than the uninterrupted run: " + slurp(log));
    if (const int n = temps(run); n != 0) die("run " + std::to_string(i) + ": " + std::to_string(n) + " temporary file(s) left");
    std::printf("soak: run %2d: %-13s at %.3f s (%s), resumed: identical\n", i, kill9 ? "SIGKILL" : "double SIGINT",
                at, how.c_str());
    std::fflush(stdout);
  }
  const double total = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::printf("soak: %d/%d interrupted runs (%d SIGKILL, %d double SIGINT; %d killed, %d exited 130, %d had "
              "finished) resumed to the uninterrupted run's weights; seed %llu; run %.2f s, soak %.1f s\n",
              kills + doubles, kills + doubles, kills, doubles, ended_killed, ended_130, ended_done,
              static_cast<unsigned long long>(seed), t_ref, total);
  fs::remove_all(g_root);
  return 0;
}
