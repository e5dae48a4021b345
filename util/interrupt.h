// Ctrl-C (SIGINT) and SIGTERM, the same way in every command
// (tools/cli/lkaseg.cpp installs the handlers before anything runs).
//
//   * By default a signal ends the process at once: the temporary files of
//     unfinished atomic writes (util/atomic_file.h registers them here) are
//     removed and the process exits with 130.
//   * Code that checks stop_requested() between units of work (training
//     steps, cases) opens a StopScope: while one is open, the first signal
//     only asks for a stop (the work finishes its current unit, saves and
//     returns) and a second one ends the process as above.
//   * While a CriticalSection is open (a checkpoint generation being
//     written) no signal ends the process: an exit asked for meanwhile
//     happens when the outermost section closes, with the files complete.
//
// SIGKILL cannot be caught: temporary files are named
// "<file>.tmp.lkaseg-<pid>.<6 characters>", so the next run can tell the ones
// of a process that is gone (remove_stale_temps) from those of a running one.
// Everything here is safe to use without install_interrupt_handlers (tests):
// the scopes are then plain counters.
#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace lk {

// Idempotent; SIGINT and SIGTERM.
void install_interrupt_handlers();
// Who this process is in the messages ("lkaseg: <name>: stopping after ..."),
// e.g. "rank 1 of 4" in data-parallel training; at most 63 bytes are kept.
void set_interrupt_name(const std::string& name);

// Ends the process with exit code `code` from any thread (e.g. a watchdog
// that saw another rank die): the registered temporaries are removed, and an
// open CriticalSection is finished first (the exit then happens when the
// outermost one closes). Prints nothing; does not return.
[[noreturn]] void exit_process(int code);

// The stop asked for by a signal inside a StopScope (or by request_stop()).
const std::atomic<bool>& stop_flag();
inline bool stop_requested() { return stop_flag().load(); }
void request_stop();
void clear_stop();  // tests

// While alive, the first signal only sets stop_flag(); `what` completes the
// message printed then: "lkaseg: stopping after <what> (Ctrl-C again to quit now)".
class StopScope {
 public:
  explicit StopScope(const char* what = "the current step");
  ~StopScope();
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;
};

// While alive, signals never end the process; a pending exit happens when
// the outermost section closes.
class CriticalSection {
 public:
  CriticalSection();
  ~CriticalSection();
  CriticalSection(const CriticalSection&) = delete;
  CriticalSection& operator=(const CriticalSection&) = delete;
};

// A temporary file removed if a signal ends the process while registered.
// Paths longer than 4095 bytes, or more than 64 at once, go unregistered
// (remove_stale_temps still finds them on the next run).
class TempRegistration {
 public:
  explicit TempRegistration(const std::string& path);
  ~TempRegistration();
  TempRegistration(const TempRegistration&) = delete;
  TempRegistration& operator=(const TempRegistration&) = delete;

 private:
  int slot_ = -1;
};

// "<path>.tmp.lkaseg-<pid>.XXXXXX": a mkstemp/mkdtemp template for a
// temporary beside `path`.
std::string temp_template(const std::string& path);
// The process id in a temporary's name of that form, or -1 for any other name.
long temp_owner(const std::string& name);

// The temporaries (files or folders, see temp_template) directly in `dir`
// whose process is gone, removed; returns their paths. Those of a living
// process are left alone (and listed in `busy` when given).
std::vector<std::string> remove_stale_temps(const std::string& dir, std::vector<std::string>* busy = nullptr);

}  // namespace lk
