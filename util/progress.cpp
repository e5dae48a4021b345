#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace lk {

namespace {

std::string rate_str(double per_s) {
  char b[32];
  std::snprintf(b, sizeof b, per_s < 10 ? "%.2f" : "%.1f", per_s);
  return b;
}

}  // namespace

Progress::Progress(std::string what, int64_t total, std::string unit, std::FILE* out, Style style)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 0)),
      out_(out),
      style_(style),
      t0_(std::chrono::steady_clock::now()),
      last_line_(t0_) {
  if (style_ == Style::Auto) style_ = out_ && ::isatty(::fileno(out_)) ? Style::Terminal : Style::Lines;
  if (out_ && style_ == Style::Terminal) {
    std::lock_guard<std::mutex> l(m_);
    draw_locked(true);
  }
}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {  // printing failed: nothing to do in a destructor
  }
}

int64_t Progress::done() const {
  std::lock_guard<std::mutex> l(m_);
  return done_;
}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

std::string Progress::duration(double s) {
  char b[48];
  if (!(s >= 0) || !std::isfinite(s)) return "?";
  if (s < 9.95) {
    std::snprintf(b, sizeof b, "%.1f s", s);
  } else if (s < 59.5) {
    std::snprintf(b, sizeof b, "%.0f s", s);
  } else if (s < 3599.5) {
    const long r = std::lround(s);
    std::snprintf(b, sizeof b, "%ldm%02lds", r / 60, r % 60);
  } else {
    const long r = std::lround(s / 60);
    std::snprintf(b, sizeof b, "%ldh%02ldm", r / 60, r % 60);
  }
  return b;
}

std::string Progress::line_locked(bool final_line) const {
  const double secs = seconds();
  const double rate = secs > 0 ? static_cast<double>(done_ - base_) / secs : 0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  std::string s = what_ + ": ";
  if (bar_ && style_ == Style::Terminal && !final_line) {
    const int full = static_cast<int>(frac * 20);
    s = what_ + " [" + std::string(static_cast<size_t>(full), '#') + std::string(static_cast<size_t>(20 - full), '.') + "] ";
  }
  s += std::to_string(done_) + "/" + std::to_string(total_) + " " + unit_;
  if (final_line) return s + " in " + duration(secs) + " (" + rate_str(rate) + " " + unit_ + "/s)";
  char pct[32];
  std::snprintf(pct, sizeof pct, " (%.0f%%)", 100.0 * frac);
  s += pct;
  if (done_ == base_) s += ", ETA ?";
  else s += ", " + rate_str(rate) + " " + unit_ + "/s, ETA " + duration(static_cast<double>(total_ - done_) / rate);
  return detail_.empty() ? s : s + "  " + detail_;
}

void Progress::clear_locked() {
  if (style_ != Style::Terminal || drawn_ == 0) return;
  std::fprintf(out_, "\r%s\r", std::string(drawn_, ' ').c_str());
  drawn_ = 0;
}

void Progress::draw_locked(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const std::string s = line_locked(false);
  std::fprintf(out_, "\r%s", s.c_str());
  if (s.size() < drawn_) std::fprintf(out_, "%s", std::string(drawn_ - s.size(), ' ').c_str());
  drawn_ = s.size();
  std::fflush(out_);
}

void Progress::advance(int64_t n) {
  std::lock_guard<std::mutex> l(m_);
  const int64_t before = done_;
  done_ = std::min(total_, done_ + std::max<int64_t>(n, 0));
  if (!out_ || finished_ || done_ == before) return;
  if (style_ == Style::Terminal) {
    draw_locked(done_ == total_);
    return;
  }
  // Lines: when another tenth is done, or 30 s after the last line; the
  // last one is finish()'s line.
  const auto now = std::chrono::steady_clock::now();
  if (done_ < total_ && (done_ * 10 / total_ > before * 10 / total_ || now - last_line_ >= std::chrono::seconds(30))) {
    last_line_ = now;
    std::fprintf(out_, "%s\n", line_locked(false).c_str());
    std::fflush(out_);
  }
}

void Progress::set_detail(std::string detail) {
  std::lock_guard<std::mutex> l(m_);
  detail_ = std::move(detail);
}

void Progress::start_at(int64_t done) {
  std::lock_guard<std::mutex> l(m_);
  done_ = base_ = std::clamp<int64_t>(done, 0, total_);
  if (out_ && style_ == Style::Terminal && !finished_) draw_locked(true);
}

void Progress::set_bar(bool on) {
  std::lock_guard<std::mutex> l(m_);
  bar_ = on;
}

void Progress::note(const std::string& line) {
  std::lock_guard<std::mutex> l(m_);
  if (!out_) return;
  clear_locked();
  std::fprintf(out_, "%s\n", line.c_str());
  if (style_ == Style::Terminal && !finished_) draw_locked(true);
  std::fflush(out_);
}

void Progress::finish(bool closing_line) {
  std::lock_guard<std::mutex> l(m_);
  if (finished_) return;
  finished_ = true;
  if (!out_) return;
  clear_locked();
  if (closing_line) std::fprintf(out_, "%s\n", line_locked(true).c_str());
  std::fflush(out_);
}

}  // namespace lk
