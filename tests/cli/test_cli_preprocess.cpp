// `lkaseg preprocess` (tools/cli/preprocess.h) through its CLI11 subcommand,
// as tools/cli/lkaseg.cpp wires it: synth 3 tiny cases, preprocess them, open the
// cache; reuse and --force; bad flags and missing folders.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <CLI/CLI.hpp>

#include <filesystem>

#include "data/brats_cases.h"
#include "tools/cli/preprocess.h"
#include "tools/cli/synth.h"
#include "data/slice_cache.h"
#include "tests/support/nifti_craft.h"

using namespace lk::data;
using namespace lk::cli;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

ino_t inode(const std::string& p) {
  struct stat st{};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_ino;
}

// Parses `args` as the preprocess subcommand into a fresh command (progress
// off); throws CLI::ParseError.
void parse(PreprocessCommand& cmd, const std::string& args) {
  cmd = PreprocessCommand{};
  cmd.progress = nullptr;
  CLI::App app;
  CLI::App* sub = add_preprocess_subcommand(app, cmd);
  app.parse("preprocess " + args, false);
  REQUIRE(sub->parsed());
}

}  // namespace

TEST_CASE("cli: lkaseg synth then lkaseg preprocess", "[cli]") {
  const lk::test::TempDir dir;
  const std::string data = dir.file("set"), cache = dir.file("slices.lkslc");
  {
    CLI::App app;
    SynthCommand synth;
    CLI::App* sub = add_synth_subcommand(app, synth);
    app.parse("synth --out " + data + " --cases 3 --seed 4 --size 40 36 16", false);
    REQUIRE(sub->parsed());
    REQUIRE(run_synth(synth) == 0);
  }
  PreprocessCommand cmd;
  parse(cmd, "--data " + data + " --cache " + cache + " --size 32 --clip-lo 1 --clip-hi 99 --threads 2");
  CHECK(cmd.size == 32);
  CHECK(cmd.threads == 2);
  CHECK(!cmd.force);
  REQUIRE(run_preprocess(cmd) == 0);

  PreprocessOptions o;
  o.size = 32;
  o.clip_lo = 1;
  o.clip_hi = 99;
  const SliceCache sc = open_slice_cache(cache, o);
  REQUIRE(sc.num_cases() == 3);
  CHECK(sc.case_info(0).id == "BraTS2021_00000");
  CHECK(sc.case_info(2).id == "BraTS2021_00002");
  int64_t slices = 0;
  for (const CachedCase& c : sc.cases()) slices += c.slices();
  CHECK(sc.slices() == slices);
  CHECK(slices >= 3);
  CHECK(sc.skipped().empty());
  CHECK_THROWS_WITH(open_slice_cache(cache, PreprocessOptions{}), Contains("stale"));

  // Valid: reused (the same file); --force: rebuilt (a new file renamed over it).
  const ino_t first = inode(cache);
  REQUIRE(run_preprocess(cmd) == 0);
  CHECK(inode(cache) == first);
  parse(cmd, "--data " + data + " --cache " + cache + " --size 32 --clip-lo 1 --clip-hi 99 --force --skip-bad");
  CHECK(cmd.force);
  CHECK(cmd.skip_bad);
  REQUIRE(run_preprocess(cmd) == 0);
  CHECK(inode(cache) != first);
  CHECK(open_slice_cache(cache, o).num_cases() == 3);
}

TEST_CASE("cli: lkaseg preprocess rejects bad flags and missing folders", "[cli]") {
  const lk::test::TempDir dir;
  const std::string data = dir.path().string(), cache = dir.file("c.lkslc");
  const std::string ok = "--data " + data + " --cache " + cache;
  PreprocessCommand cmd;
  CHECK_THROWS_WITH(parse(cmd, ok + " --size 0"), Contains("--size"));
  CHECK_THROWS_WITH(parse(cmd, ok + " --size abc"), Contains("--size"));
  CHECK_THROWS_WITH(parse(cmd, ok + " --threads -1"), Contains("--threads"));
  CHECK_THROWS_WITH(parse(cmd, ok + " --clip-lo 120"), Contains("--clip-lo"));
  CHECK_THROWS_WITH(parse(cmd, ok + " --clip-hi -3"), Contains("--clip-hi"));
  CHECK_THROWS_AS(parse(cmd, ok + " --bogus"), CLI::ExtrasError);
  CHECK_THROWS_AS(parse(cmd, "--data " + data), CLI::RequiredError);
  const std::string missing = dir.file("no_such_folder");
  CHECK_THROWS_WITH(parse(cmd, "--data " + missing + " --cache " + cache), Contains(missing));

  parse(cmd, ok + " --clip-lo 60 --clip-hi 40");
  CHECK_THROWS_WITH(run_preprocess(cmd), Contains("--clip-lo") && Contains("--clip-hi"));
  const std::string nowhere = dir.file("no/folder/c.lkslc");
  parse(cmd, "--data " + data + " --cache " + nowhere);
  CHECK_THROWS_WITH(run_preprocess(cmd), Contains(nowhere) && Contains("does not exist"));
  // A folder without cases: the error names it; no cache is written.
  parse(cmd, ok);
  CHECK_THROWS_AS(run_preprocess(cmd), BratsError);
  CHECK_THROWS_WITH(run_preprocess(cmd), Contains(data));
  CHECK(!fs::exists(cache));
}
