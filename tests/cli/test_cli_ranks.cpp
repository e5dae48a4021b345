// The CLI's data-parallel parts that need no MPI: the ranks other than 0
// prepare a run by reading only (prepare(o, false)): no folder cleaned, no
// file written - on a cluster's shared folder rank 0's temporaries carry
// another node's pid and would look stale to them.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "data/synth.h"
#include "tests/support/nifti_craft.h"
#include "tools/cli/run.h"

using namespace lk;
namespace fs = std::filesystem;

TEST_CASE("cli ranks: the ranks but 0 prepare a run without cleaning or writing anything", "[cli]") {
  const test::TempDir dir;
  data::SynthOptions so;
  so.dims = {40, 36, 12};
  data::generate_synthetic_dataset(dir.file("data"), 4, 3, so);
  cli::RunOptions o;
  o.data = dir.file("data");
  o.out = dir.file("run");
  o.size = 32;
  o.widths = {4, 8, 16, 32};
  o.fraction = 1;
  o.folds = 2;
  o.batch = 2;
  const cli::Prepared first = cli::prepare(o);  // rank 0

  // A temporary of a process this one cannot see (here: one that is gone).
  const pid_t gone = ::fork();
  REQUIRE(gone >= 0);
  if (gone == 0) ::_exit(0);
  REQUIRE(::waitpid(gone, nullptr, 0) == gone);
  fs::create_directories(dir.file("run/fold_0"));
  const std::string temp = dir.file("run/fold_0/config.json.tmp.lkaseg-" + std::to_string(gone) + ".abcdef");
  std::ofstream(temp) << "{";
  // Dated back, so that a rewrite shows.
  const auto old = fs::last_write_time(dir.file("run/run.json")) - std::chrono::hours(1);
  fs::last_write_time(dir.file("run/run.json"), old);

  const cli::Prepared other = cli::prepare(o, false);  // another rank
  CHECK(other.split.selected == first.split.selected);
  CHECK(other.cache.slices() == first.cache.slices());
  CHECK(fs::exists(temp));
  CHECK(fs::last_write_time(dir.file("run/run.json")) == old);

  // Rank 0 (the writer) cleans and records, as a single process does.
  cli::prepare(o);
  CHECK_FALSE(fs::exists(temp));
  CHECK(fs::last_write_time(dir.file("run/run.json")) != old);
}
