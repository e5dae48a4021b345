// train/run_log: the one writer and reader of log.jsonl.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "tests/support/nifti_craft.h"
#include "train/run_log.h"

using Catch::Matchers::Contains;
using namespace lk::train;

namespace {

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string log_line(int epoch, double loss, const char* val = nullptr) {
  std::string s = "{\"epoch\": " + std::to_string(epoch) + ", \"steps\": 10, \"loss\": " + std::to_string(loss) +
                  ", \"lr\": 0.0001, \"seconds\": 1.5, \"wait_ms\": 0.1";
  if (val) s += std::string(", \"val\": ") + val;
  return s + "}\n";
}

}  // namespace

TEST_CASE("run log: what the trainer writes reads back the same", "[run_log]") {
  const lk::test::TempDir dir;
  std::vector<EpochLog> log(3);
  for (int i = 0; i < 3; ++i) {
    log[i].epoch = i + 1;
    log[i].steps = 40 + i;
    log[i].loss = 1.0 / (i + 1);
    log[i].lr = 1e-4 * (i + 1);
    log[i].seconds = 12.5 + i;
    log[i].wait_ms = 0.25 * i;
  }
  log[2].val = ValidationResult{{0.5, 0.625, 0.75}, 0.625, 7};
  const std::string path = dir.file("log.jsonl");
  write_run_log(path, log);
  const std::vector<EpochLog> back = read_run_log(path);
  REQUIRE(back.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(back[i].epoch == log[i].epoch);
    CHECK(back[i].steps == log[i].steps);
    CHECK(back[i].loss == log[i].loss);  // JSON numbers round-trip doubles
    CHECK(back[i].lr == log[i].lr);
    CHECK(back[i].seconds == log[i].seconds);
    CHECK(back[i].wait_ms == log[i].wait_ms);
    CHECK(back[i].val == log[i].val);
  }
  CHECK(run_log_line(log[0]).find('\n') == std::string::npos);
}

TEST_CASE("run log: a bad line names the file, the line and the problem", "[run_log]") {
  const lk::test::TempDir dir;
  const std::string bad = dir.file("bad.jsonl");
  const auto fails = [&](const std::string& text, const std::string& what) {
    write_text(bad, text);
    CHECK_THROWS_WITH(read_run_log(bad), Contains(bad) && Contains(what));
  };
  fails(log_line(1, 1) + "{not json\n", "line 2: not JSON");
  fails(log_line(1, 1) + log_line(2, 1) + "{\"epoch\": 3, \"lr\": 1}\n", "line 3: \"loss\" is missing");
  fails("{\"epoch\": 1, \"loss\": \"x\", \"lr\": 1}\n", "\"loss\" is not a finite number");
  fails("{\"epoch\": 0, \"loss\": 1, \"lr\": 1}\n", "\"epoch\" must be an integer >= 1");
  fails("{\"epoch\": 1, \"loss\": 1, \"lr\": 1, \"steps\": -2}\n", "\"steps\" must be an integer >= 0");
  fails("[1, 2]\n", "line 1: not a JSON object");
  fails(log_line(2, 1) + log_line(2, 1), "line 2: epoch 2 after epoch 2");
  fails(log_line(1, 1, "{\"dice_ncr\": 1.5, \"dice_et\": 0, \"dice_ed\": 0, \"mean\": 0}"), "outside [0, 1]");
  fails(log_line(1, 1, "{\"dice_ncr\": 0.5, \"dice_et\": 0, \"mean\": 0}"), "val.\"dice_ed\" is missing");
  CHECK_THROWS_WITH(read_run_log(dir.file("absent.jsonl")), Contains("absent.jsonl") && Contains("cannot open"));
  // Blank lines are fine; fields beyond epoch, loss and lr may be absent.
  write_text(bad, "\n{\"epoch\": 4, \"loss\": 0.5, \"lr\": 1e-3}\n\n");
  const std::vector<EpochLog> one = read_run_log(bad);
  REQUIRE(one.size() == 1);
  CHECK(one[0].epoch == 4);
  CHECK(one[0].steps == 0);
  CHECK(!one[0].val);
}
