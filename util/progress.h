// A progress line for long loops (building the slice cache, training
// epochs): "<what>: 12/204 cases (5.9%), 3.1 cases/s, ETA 1m03s".
//
// On a terminal the line is redrawn in place with '\r' (at most every
// 100 ms), with a bar when asked for (set_bar); elsewhere (a log file, a
// pipe, ctest) one line is printed each time another tenth of the total is
// done, or when 30 s passed since the last line, so about ten lines for a
// quick loop and one per item when there are ten items or fewer. finish()
// prints the closing "<what>: 204/204 cases in 1m05s (3.1 cases/s)". note()
// prints a message (a warning) without breaking the progress line.
// set_detail() appends text to the line (the training loss, the run's ETA).
// advance(), note() and set_detail() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace lk {

class Progress {
 public:
  enum class Style : uint8_t {
    Auto,      // Terminal when `out` is a terminal, else Lines
    Terminal,  // one line redrawn with '\r'
    Lines,     // a line per tenth of the total
  };

  // `out` nullptr: prints nothing (the counters still work).
  Progress(std::string what, int64_t total, std::string unit = "cases", std::FILE* out = stderr,
           Style style = Style::Auto);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t n = 1);
  void note(const std::string& line);
  // Appended to the progress line as "  <detail>" (not to the closing line).
  void set_detail(std::string detail);
  // Units already done before this process (a resumed epoch): counted in
  // done() and the ETA, not in the rate. Call before the first advance().
  void start_at(int64_t done);
  // A 20-character bar on a terminal: "<what> [#####.....] ...".
  void set_bar(bool on);
  // The closing line (once; the destructor calls it when nobody did);
  // closing_line false only clears the progress line.
  void finish(bool closing_line = true);

  int64_t done() const;
  int64_t total() const { return total_; }
  double seconds() const;
  bool terminal() const { return style_ == Style::Terminal; }

  // "0.4 s", "12 s", "3m05s", "1h02m".
  static std::string duration(double seconds);

 private:
  std::string line_locked(bool final_line) const;
  void draw_locked(bool force);
  void clear_locked();

  const std::string what_, unit_;
  const int64_t total_;
  std::FILE* const out_;
  Style style_;
  const std::chrono::steady_clock::time_point t0_;
  mutable std::mutex m_;
  int64_t done_ = 0, base_ = 0;
  bool finished_ = false, bar_ = false;
  std::string detail_;
  size_t drawn_ = 0;  // characters of the line on screen (Terminal)
  std::chrono::steady_clock::time_point last_draw_{}, last_line_{};
};

}  // namespace lk
