// PeerWatch (engine/dist.h): other ranks' processes on this node, polled.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/dist.h"

namespace lk::dist {

namespace {

// The state letter and start time of process `pid` from /proc/<pid>/stat;
// false when it cannot be read (no such process, or no /proc).
bool proc_stat(long pid, char* state, unsigned long long* start) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  rest >> *state;
  // Fields 4..21 lie between the state (3) and the start time (22).
  for (int i = 4; i <= 21 && rest >> field;) ++i;
  return static_cast<bool>(rest >> *start);
}

// The process is still the one first seen (same start time when known) and
// not a zombie.
bool alive(long pid, unsigned long long start) {
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  char state = '?';
  unsigned long long now = 0;
  if (!proc_stat(pid, &state, &now)) return true;  // no /proc: kill() said it exists
  return state != 'Z' && state != 'X' && (start == 0 || now == start);
}

}  // namespace

std::string process_space() {
  char host[HOST_NAME_MAX + 1] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) return "";
  char ns[128] = {0};
  const ssize_t n = ::readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
  if (n <= 0) return "";  // unknown: no peer is taken for a neighbour
  return std::string(host) + "/" + std::string(ns, static_cast<size_t>(n));
}

PeerWatch::PeerWatch(std::vector<Peer> peers, std::function<void(const Peer&)> on_death,
                     std::chrono::milliseconds period)
    : on_death_(std::move(on_death)), period_(period) {
  for (const Peer& p : peers) {
    if (p.pid <= 0 || p.pid == ::getpid()) continue;
    char state = '?';
    unsigned long long start = 0;
    if (!proc_stat(p.pid, &state, &start)) start = 0;
    if (alive(p.pid, start)) peers_.push_back({p, start});
  }
  if (!peers_.empty()) thread_ = std::thread([this] { run(); });
}

PeerWatch::~PeerWatch() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PeerWatch::run() {
  std::unique_lock lk(mu_);
  while (!cv_.wait_for(lk, period_, [this] { return stop_; })) {
    for (const Watched& w : peers_)
      if (!alive(w.peer.pid, w.start)) {
        lk.unlock();
        on_death_(w.peer);
        return;
      }
  }
}

}  // namespace lk::dist
