// The run log, <run>/log.jsonl: one JSON object per finished epoch. This
// module is the only one that writes or parses it: the trainer writes it
// (train/trainer) and reads it back to resume; the training curves
// (eval/curves) read it.
//   {"epoch":3,"loss":0.81,"lr":9.5e-05,"seconds":41.2,"steps":120,
//    "val":{"cases":12,"dice_ed":0.74,"dice_et":0.7,"dice_ncr":0.61,"mean":0.68},
//    "wait_ms":0.3}
// "val" only after an epoch with a validation. The whole file is rewritten
// atomically at each epoch end, so a line is never torn.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lk::train {

// Validation Dice per class: index 0 NCR, 1 ET, 2 ED (the paper's column order).
struct ValidationResult {
  std::array<double, 3> dice{0, 0, 0};
  double mean = 0;  // over the three classes
  int64_t cases = 0;
  friend bool operator==(const ValidationResult&, const ValidationResult&) = default;
};

struct EpochLog {
  int64_t epoch = 0;        // 1-based: the epoch just finished
  int64_t steps = 0;        // steps of the epoch (a resumed one: before and after the stop)
  double loss = 0;          // mean total loss over those steps
  double lr = 0;            // at the epoch's last step
  double seconds = 0;
  double wait_ms = 0;       // mean time the loader kept a step waiting
  std::optional<ValidationResult> val;
};

// what(): "<file>: <problem>" (with "line N: " for a bad line).
class RunLogError : public std::runtime_error {
 public:
  RunLogError(const std::string& file, const std::string& problem) : std::runtime_error(file + ": " + problem) {}
};

// One line of the log (no newline).
std::string run_log_line(const EpochLog& e);
// The whole log, written atomically.
void write_run_log(const std::string& path, const std::vector<EpochLog>& log);

// Reads and checks a log: "epoch" an integer >= 1, increasing from line to
// line; "loss" and "lr" finite numbers; "steps", "seconds", "wait_ms"
// optional (0 when absent); "val", when present, with "dice_ncr", "dice_et",
// "dice_ed" and "mean" in [0, 1] and optional "cases"; blank lines ignored.
// Throws RunLogError naming the file, the line and the problem.
std::vector<EpochLog> read_run_log(const std::string& path);

}  // namespace lk::train
