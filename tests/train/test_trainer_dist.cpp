// train_fold on data-parallel ranks without MPI: two threads as ranks
// (tests/support/thread_comm.h). The contract of the mpi tests
// (tests/train/test_mpi.cpp), here where every build runs it, in float64
// (exact up to rounding: asserted to 1e-9, measured ~1e-13): two ranks at
// batch 4 with sync BN take the steps of one process at batch 8, rank 0
// alone logs and validates, and one rank through the data-parallel path is
// the plain trainer.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/dist.h"
#include "engine/safetensors.h"
#include "tests/support/loader_fixture.h"
#include "tests/support/thread_comm.h"
#include "tests/support/tiny_run.h"
#include "train/trainer.h"

using namespace lk;
using lk::test::ThreadComm;
namespace fs = std::filesystem;

namespace {

using test::on_thread_ranks;

// The newest checkpoint's weights file of a run folder, as last.json names it.
std::string last_weights(const fs::path& dir) {
  return (dir / nlohmann::json::parse(std::ifstream(dir / "last.json")).at("weights").get<std::string>()).string();
}

// Per tensor ||a - b|| / ||b|| (2-norms), the largest over the state_dict.
double weights_diff(const std::string& a, const std::string& b) {
  const SafeTensors x = load_safetensors(a), y = load_safetensors(b);
  REQUIRE(x.tensors.size() == y.tensors.size());
  double m = 0;
  for (size_t i = 0; i < x.tensors.size(); ++i) {
    const std::vector<double> u = x.tensors[i].second.to_vector(), v = y.tensors[i].second.to_vector();
    REQUIRE(u.size() == v.size());
    double d = 0, n = 0;
    for (size_t j = 0; j < u.size(); ++j) d += (u[j] - v[j]) * (u[j] - v[j]), n += v[j] * v[j];
    if (n > 0) m = std::max(m, std::sqrt(d / n));
  }
  return m;
}

train::TrainConfig tiny() {
  train::TrainConfig c = test::tiny_run(10, 8, 1, 100);
  c.net.seed = 5;
  c.dtype = DType::F64;
  c.workers = 1;
  c.eval_batch = 5;
  return c;
}

}  // namespace

TEST_CASE("dist training: two ranks at batch 4 with sync BN take the steps of one process at batch 8", "[dist]") {
  test::LoaderFixture f("trainer_dist", 5, 8, 32);
  const fs::path root = fs::temp_directory_path() / ("lkaseg_trainer_dist_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const std::vector<std::string> tr{"case_0", "case_1", "case_2", "case_3"}, va{"case_4"};
  train::TrainConfig c = tiny();
  const train::TrainResult one = train::train_fold(c, f.cache, tr, va, (root / "one").string());

  SECTION("one rank through the data-parallel path is the plain trainer") {
    c.sync_bn = true;
    on_thread_ranks(1, [&](int, ThreadComm& comm) {
      train::TrainHooks h;
      h.comm = &comm;
      const train::TrainResult r = train::train_fold(c, f.cache, tr, va, (root / "onec").string(), h);
      for (size_t e = 0; e < r.log.size(); ++e) CHECK(r.log[e].loss == Approx(one.log[e].loss).epsilon(1e-12));
    });
    CHECK(weights_diff(last_weights(root / "onec"), last_weights(root / "one")) <= 1e-9);
  }
  SECTION("two ranks") {
    c.batch = 4;
    c.sync_bn = true;
    std::vector<train::TrainResult> r(2);
    on_thread_ranks(2, [&](int rank, ThreadComm& comm) {
      train::TrainHooks h;
      h.comm = &comm;
      std::vector<std::string> lines;
      h.log = [&](const std::string& m) { lines.push_back(m); };
      r[static_cast<size_t>(rank)] = train::train_fold(c, f.cache, tr, va, (root / "two").string(), h);
      CHECK(lines.empty() == (rank != 0));  // rank 0 alone logs
    });
    REQUIRE(r[0].log.size() == 10);
    double worst = 0;
    for (size_t e = 0; e < 10; ++e) {
      CHECK(r[1].log[e].loss == r[0].log[e].loss);  // both ranks see the whole batch's loss
      worst = std::max(worst, std::abs(r[0].log[e].loss - one.log[e].loss) / std::abs(one.log[e].loss));
    }
    CHECK(worst <= 1e-9);
    CHECK(r[0].log.back().val.has_value());
    CHECK_FALSE(r[1].log.back().val.has_value());  // rank 0 alone validates
    const double w = weights_diff(last_weights(root / "two"), last_weights(root / "one"));
    std::printf("threads: 2 ranks x 4 vs 1 x 8 after 10 steps: losses within %.1e, weights within %.1e\n", worst, w);
    CHECK(w <= 1e-9);
    CHECK(nlohmann::json::parse(std::ifstream(root / "two/config.json")).at("ranks") == 2);
  }
  fs::remove_all(root);
}
