// The progress line (util/progress.h): one line per tenth (or per item)
// off a terminal, '\r' redraws on one, the closing line, notes, durations.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "util/progress.h"

using lk::Progress;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// What was printed to a temporary FILE.
struct Capture {
  std::FILE* f = std::tmpfile();
  ~Capture() { std::fclose(f); }
  std::string text() const {
    std::fflush(f);
    std::rewind(f);
    std::string s;
    for (int c; (c = std::fgetc(f)) != EOF;) s += static_cast<char>(c);
    return s;
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::string cur;
    for (char c : text()) {
      if (c == '\n') {
        out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    return out;
  }
};

}  // namespace

TEST_CASE("progress: a line per item for few items, then the closing line", "[progress]") {
  Capture cap;
  {
    Progress p("preprocess", 3, "cases", cap.f, Progress::Style::Lines);
    CHECK(!p.terminal());
    p.advance();
    p.advance();
    p.note("warning: skipping case X");
    p.advance();
    CHECK(p.done() == 3);
  }  // the destructor finishes
  const auto lines = cap.lines();
  REQUIRE(lines.size() == 4);
  CHECK_THAT(lines[0], StartsWith("preprocess: 1/3 cases (33%), ") && Contains("cases/s, ETA "));
  CHECK_THAT(lines[1], StartsWith("preprocess: 2/3 cases (67%)"));
  CHECK(lines[2] == "warning: skipping case X");
  CHECK_THAT(lines[3], StartsWith("preprocess: 3/3 cases in ") && Contains("cases/s)"));
  CHECK(cap.text().find('\r') == std::string::npos);
}

TEST_CASE("progress: about ten lines for many items, from several threads", "[progress]") {
  Capture cap;
  Progress p("epoch 1", 1000, "batches", cap.f, Progress::Style::Lines);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 250; ++i) p.advance();
    });
  for (auto& t : ts) t.join();
  p.finish();
  p.finish();  // once only
  const auto lines = cap.lines();
  REQUIRE(lines.size() == 10);  // 10%, ..., 90%, then the closing line
  CHECK_THAT(lines[0], StartsWith("epoch 1: 100/1000 batches (10%)"));
  CHECK_THAT(lines[8], StartsWith("epoch 1: 900/1000 batches (90%)"));
  CHECK_THAT(lines[9], StartsWith("epoch 1: 1000/1000 batches in "));
}

TEST_CASE("progress: on a terminal the line is redrawn with a carriage return", "[progress]") {
  Capture cap;
  {
    Progress p("build", 2, "cases", cap.f, Progress::Style::Terminal);
    CHECK(p.terminal());
    p.advance();
    p.note("a note");
    p.advance(5);  // clamped to the total
    CHECK(p.done() == 2);
  }
  const std::string t = cap.text();
  CHECK_THAT(t, StartsWith("\rbuild: 0/2 cases (0%), ETA ?"));
  CHECK_THAT(t, Contains("a note\n"));
  CHECK_THAT(t, Contains("\rbuild: 2/2 cases (100%)"));
  CHECK_THAT(t, Contains("build: 2/2 cases in "));
  CHECK(t.back() == '\n');
  // Auto off a terminal (a temporary file): lines; no output at all without a stream.
  CHECK(!Progress("x", 1, "cases", cap.f).terminal());
  Progress silent("x", 1, "cases", nullptr);
  silent.advance();
  CHECK(silent.done() == 1);
}

TEST_CASE("progress: durations", "[progress]") {
  CHECK(Progress::duration(0.42) == "0.4 s");
  CHECK(Progress::duration(12.3) == "12 s");
  CHECK(Progress::duration(185) == "3m05s");
  CHECK(Progress::duration(3720) == "1h02m");
  CHECK(Progress::duration(-1) == "?");
}

TEST_CASE("progress: a bar and details on a terminal, a resumed start, a quiet finish", "[progress]") {
  Capture cap;
  {
    Progress p("epoch 2/5", 10, "steps", cap.f, Progress::Style::Terminal);
    p.set_bar(true);
    p.start_at(4);  // 4 steps were done before this process
    CHECK(p.done() == 4);
    p.set_detail("loss 0.5000, run ETA 1m00s");
    std::this_thread::sleep_for(std::chrono::milliseconds(120));  // redraws are at most every 100 ms
    p.advance();
    p.finish(false);
  }
  const std::string t = cap.text();
  // start_at redraws: 40%, no rate yet (the resumed steps do not count in it).
  CHECK_THAT(t, Contains("\repoch 2/5 [########............] 4/10 steps (40%), ETA ?"));
  CHECK_THAT(t, Contains("[##########..........] 5/10 steps (50%), ") && Contains("steps/s, ETA ") &&
                    Contains("  loss 0.5000, run ETA 1m00s"));
  CHECK(t.find(" in ") == std::string::npos);  // no closing line
  CHECK(t.find('\n') == std::string::npos);
  // Off a terminal the details follow the line; no bar.
  Capture lines;
  Progress q("epoch 1/1", 2, "steps", lines.f, Progress::Style::Lines);
  q.set_bar(true);
  q.set_detail("loss 1.0");
  q.advance();
  CHECK_THAT(lines.text(), StartsWith("epoch 1/1: 1/2 steps (50%), ") && Contains("  loss 1.0\n"));
}
