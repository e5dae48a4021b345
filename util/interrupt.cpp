#include "util/interrupt.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace lk {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signals{0}, g_scopes{0}, g_critical{0};
std::atomic<bool> g_exit_pending{false}, g_installed{false};
std::atomic<int> g_exit_code{130};  // 130 after a signal; exit_process sets another
std::atomic<const char*> g_what{"the current step"};

constexpr int kSlots = 64;
constexpr size_t kPathBytes = 4096;
struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being filled or emptied, 2 registered
  char path[kPathBytes];
};
Slot g_slots[kSlots];
char g_name[64];                 // set_interrupt_name, then read by the handler
std::atomic<bool> g_named{false};

static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free &&
                  std::atomic<const char*>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

// Async-signal-safe output.
void say(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void remove_registered() {
  for (Slot& s : g_slots)
    if (s.state.load() == 2) ::unlink(s.path);
}

// "lkaseg: " or "lkaseg: <name>: ".
void say_who() {
  say("lkaseg: ");
  if (g_named.load()) {
    say(g_name);
    say(": ");
  }
}

[[noreturn]] void exit_now() {
  remove_registered();
  const int code = g_exit_code.load();
  if (code == 130) {
    say_who();
    say("interrupted\n");
  }
  ::_exit(code);
}

extern "C" void on_interrupt(int) {
  const int saved = errno;
  const int n = g_signals.fetch_add(1) + 1;
  if (n == 1 && g_scopes.load() > 0) {
    g_stop.store(true);
    say("\n");
    say_who();
    say("stopping after ");
    say(g_what.load());
    say(" (Ctrl-C again to quit now)\n");
  } else if (g_critical.load() > 0) {
    if (!g_exit_pending.exchange(true)) {
      say("\n");
      say_who();
      say("finishing the checkpoint being written, then quitting\n");
    }
  } else {
    exit_now();
  }
  errno = saved;
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

void install_interrupt_handlers() {
  if (g_installed.exchange(true)) return;
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

void set_interrupt_name(const std::string& name) {
  g_named.store(false);
  const size_t n = std::min(name.size(), sizeof g_name - 1);
  std::memcpy(g_name, name.data(), n);
  g_name[n] = '\0';
  g_named.store(!name.empty());
}

const std::atomic<bool>& stop_flag() { return g_stop; }
void request_stop() { g_stop.store(true); }
void clear_stop() {
  g_stop.store(false);
  g_signals.store(0);
}

StopScope::StopScope(const char* what) {
  g_what.store(what);
  g_scopes.fetch_add(1);
}
StopScope::~StopScope() { g_scopes.fetch_sub(1); }

void exit_process(int code) {
  g_exit_code.store(code);
  g_exit_pending.store(true);  // first: a section closing from now on exits
  // Polled rather than waited for: the section's owner exits when it closes
  // it, and this thread never returns either way.
  while (g_critical.load() > 0) ::usleep(10000);
  std::fflush(nullptr);
  exit_now();
}

CriticalSection::CriticalSection() { g_critical.fetch_add(1); }
CriticalSection::~CriticalSection() {
  if (g_critical.fetch_sub(1) == 1 && g_exit_pending.load()) {
    std::fflush(nullptr);
    exit_now();
  }
}

TempRegistration::TempRegistration(const std::string& path) {
  if (path.size() >= kPathBytes) return;
  for (int i = 0; i < kSlots; ++i) {
    int free = 0;
    if (!g_slots[i].state.compare_exchange_strong(free, 1)) continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].state.store(2);
    slot_ = i;
    return;
  }
}

TempRegistration::~TempRegistration() {
  if (slot_ >= 0) g_slots[slot_].state.store(0);
}

std::string temp_template(const std::string& path) {
  return path + ".tmp.lkaseg-" + std::to_string(::getpid()) + ".XXXXXX";
}

long temp_owner(const std::string& name) {
  // <file>.tmp.lkaseg-<pid>.<6 characters>
  static const std::string tag = ".tmp.lkaseg-";
  const size_t at = name.rfind(tag);
  if (at == std::string::npos || at == 0) return -1;
  const std::string rest = name.substr(at + tag.size());
  const size_t dot = rest.find('.');
  if (dot == std::string::npos || rest.size() - dot - 1 != 6 || !all_digits(rest.substr(0, dot)) || dot > 9) return -1;
  const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
  return pid > 0 ? pid : -1;
}

std::vector<std::string> remove_stale_temps(const std::string& dir, std::vector<std::string>* busy) {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const long pid = temp_owner(it->path().filename().string());
    if (pid < 0) continue;
    const bool alive = pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
    if (alive) {
      if (busy) busy->push_back(it->path().string());
      continue;
    }
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    if (!rm) removed.push_back(it->path().string());
  }
  return removed;
}

}  // namespace lk
