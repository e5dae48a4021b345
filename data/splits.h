// Case selection and cross-validation folds (SPEC.md, "case selection"):
// a fraction (default 10%) of the available cases drawn with a seed
// (default 42), then `folds` folds over them; fold k's validation set is
// the k-th of `folds` disjoint parts of the selection, its training set the
// rest.
//
// Deterministic across standard libraries: the draw uses std::mt19937_64
// (whose output the standard fixes) with our own Fisher-Yates shuffle and
// rejection sampling, never std::shuffle or a <random> distribution.
//
// Stored as JSON (write_split_json / read_split_json):
//   {"version": 1, "seed": 42, "fraction": 0.1, "selected": [ids...],
//    "folds": [{"train": [ids...], "val": [ids...]}, ...]}
// A user may edit the file; reading validates it against the available
// cases and throws SplitError naming the file and the problem.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lk::data {

// what() is "<file>: <problem>" (or just the problem for make_split).
class SplitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Fold {
  std::vector<std::string> train, val;  // each sorted
};

struct Split {
  uint64_t seed = 42;
  double fraction = 0.1;
  std::vector<std::string> selected;  // sorted
  std::vector<Fold> folds;
};

// Selects round(fraction * N) cases, but at least `folds` (all of them when
// N is smaller than that), from the N distinct `case_ids` (their order does
// not matter: they are sorted first), and deals the shuffled selection into
// `folds` validation sets of sizes differing by at most one. Throws
// SplitError for duplicate ids, folds < 2, a fraction outside (0, 1], or
// fewer cases than folds.
Split make_split(const std::vector<std::string>& case_ids, double fraction = 0.1, uint64_t seed = 42,
                 int folds = 5);

// Atomic: a temporary file beside `path`, fsync, rename.
void write_split_json(const std::string& path, const Split& split);

// Reads and validates a split: bad JSON or layout, an unknown version, a
// case id not in `available_ids`, a duplicate, an empty fold or validation
// set, a fold case not among the selected ones, a case in both the training
// and validation set of a fold, or in two validation sets, all throw
// SplitError naming `path`.
Split read_split_json(const std::string& path, const std::vector<std::string>& available_ids);

}  // namespace lk::data
