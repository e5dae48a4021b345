// Data-parallel training over MPI ranks, end to end through the lkaseg binary
// started by mpirun (label mpi; runs in CI as root, hence --allow-run-as-root):
//   - two ranks at batch 4 with --sync-bn take the steps of one process at
//     batch 8: the same losses and weights within 1e-5 relative after 10 steps
//     (float32; and to 1e-9 in float64, where the equality is exact up to
//     rounding);
//   - without --sync-bn two ranks train and converge on the synthetic data,
//     resume exactly with the same rank count, and another count is refused;
//   - Ctrl-C to mpirun stops both ranks with a checkpoint that resumes;
//   - a rank killed mid-run (rank 1, then rank 0) ends the job: the other
//     rank names the dead one and exits with an error, and the checkpoint
//     left behind is whole (the job resumes from it).
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/safetensors.h"

#ifndef LKASEG_BIN
#error "LKASEG_BIN (the lkaseg binary) must be defined"
#endif
#ifndef LKASEG_MPIEXEC
#error "LKASEG_MPIEXEC (mpirun) must be defined"
#endif

using namespace lk;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kBin = LKASEG_BIN;
// Two ranks on a 2-core CI machine that runs other tests beside: allowed to
// share cores, as root, without the single-copy mechanism containers forbid.
const std::string kMpirun = std::string(LKASEG_MPIEXEC) +
                            " -np 2 --oversubscribe --allow-run-as-root --bind-to none"
                            " --mca btl_vader_single_copy_mechanism none";
// A tiny network on small slices: seconds per run.
const std::string kCommon =
    " --fraction 1 --folds 2 --fold 0 --size 32 --widths 4 8 16 32 --warmup-epochs 1 --device cpu --workers 1";

struct Dirs {
  fs::path root;
  explicit Dirs(const std::string& name)
      : root(fs::temp_directory_path() / ("lkaseg_mpi_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~Dirs() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  std::string operator()(const std::string& p) const { return (root / p).string(); }
};

// Runs a shell command; returns its exit code and (into out) its output.
int run(const std::string& cmd, std::string* out = nullptr) {
  const std::string log = (fs::temp_directory_path() / ("lkaseg_mpi_out_" + std::to_string(::getpid()))).string();
  const int rc = std::system((cmd + " >" + log + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  if (out) *out = ss.str();
  fs::remove(log);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
}

// The synthetic BraTS-like cases (6 small volumes) every test trains on.
void make_data(const Dirs& d) {
  std::string out;
  REQUIRE(run(kBin + " synth --out " + d("data") + " --cases 6 --seed 5 --size 48 48 16", &out) == 0);
}

std::vector<json> read_log(const std::string& path) {
  std::vector<json> v;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) v.push_back(json::parse(line));
  return v;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The newest checkpoint's weights file of a fold folder, as last.json names it.
std::string last_weights(const std::string& fold_dir) {
  return fold_dir + "/" + json::parse(slurp(fold_dir + "/last.json")).at("weights").get<std::string>();
}

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); }

// max over all elements of |a - b| / max(|b|, 1): numpy's allclose with
// rtol = atol = the result (weights are of order 1 or smaller; batch-norm
// biases start at 0, where only an absolute difference means anything).
// The state_dict: parameters and the batch-norm running statistics.
double max_rel_weights(const std::string& a, const std::string& b, std::string* worst) {
  const SafeTensors ta = load_safetensors(a), tb = load_safetensors(b);
  REQUIRE(ta.tensors.size() == tb.tensors.size());
  double m = 0;
  for (size_t i = 0; i < ta.tensors.size(); ++i) {
    const auto& [k, t] = ta.tensors[i];
    REQUIRE(tb.tensors[i].first == k);
    const std::vector<double> x = t.to_vector(), y = tb.tensors[i].second.to_vector();
    REQUIRE(x.size() == y.size());
    for (size_t j = 0; j < x.size(); ++j) {
      const double r = std::abs(x[j] - y[j]) / std::max(std::abs(y[j]), 1.0);
      if (r > m) m = r, *worst = k + "[" + std::to_string(j) + "]";
    }
  }
  return m;
}


}  // namespace

// In exact arithmetic two ranks at batch 4 with --sync-bn take the steps of
// one process at batch 8 (the ops reduce the whole batch's statistics, the
// ranks' gradient shares add up). In float64 (--dtype f64, CPU) the results
// agree to ~1e-12 after 10 steps at lr 3e-3 (measured 2026-11-26; asserted:
// 1e-9). In float32 the ranks add in another order than one process and
// Adam turns such last-bit noise into steps of up to lr where a gradient is
// itself noise (a conv bias right before a batch norm has a gradient of
// exactly 0 in exact arithmetic): at lr 3e-3 the tiny net's weights drift
// apart by ~1e-4 within 10 steps; at the paper's 1e-4 the losses agree to
// ~1e-7 and the weights to 4.5e-7 with direct convolutions (measured
// 2026-12-07; asserted, as issue 16 asks: losses 1e-5 relative, weights 1e-5
// of max(|w|, 1)). oneDNN's Winograd 3x3 convolutions (the CPU default,
// within 1e-4 of the direct ones per op) round differently at batch 4 and 8:
// with them the weights differ by 3.2e-4 after 10 steps, so the float32 case
// runs with LKASEG_ONEDNN_WINOGRAD=0. The direct convolutions' reduction
// order depends on the instruction set oneDNN picks: on an Intel Xeon with
// AMX/AVX-512 (2026-12-08) its AVX-512 kernels left one weight 2.3e-5 apart
// (enc.3.res.conv2.weight[6036]; losses still within 4.3e-7), its AVX2
// kernels 1.4e-6, so the float32 case also pins ONEDNN_MAX_CPU_ISA=AVX2: the
// same kernels on every x86-64 machine CI may get.
TEST_CASE("mpi: two ranks at batch 4 with --sync-bn take the steps of one process at batch 8", "[mpi]") {
  Dirs d("equiv");
  make_data(d);
  std::string out;
  struct Case {
    const char* dtype;
    const char* lr;
    double loss_tol, weight_tol;
    const char* env;  // before both commands (mpirun hands its environment to the ranks)
  };
  for (const Case& c : {Case{"f64", "3e-3", 1e-9, 1e-9, ""},
                        Case{"f32", "1e-4", 1e-5, 1e-5, "LKASEG_ONEDNN_WINOGRAD=0 ONEDNN_MAX_CPU_ISA=AVX2 "}}) {
    INFO(c.dtype);
    const std::string steps = std::string(" --dtype ") + c.dtype + " --lr " + c.lr +
                              " --epochs 10 --steps-per-epoch 1 --val-every 100 --data " + d("data");
    const std::string one = d(std::string("one_") + c.dtype), two = d(std::string("two_") + c.dtype);
    REQUIRE(run(c.env + kBin + " train" + kCommon + steps + " --out " + one + " --batch 8", &out) == 0);
    INFO(out);
    const std::string shared = " --split " + one + "/split.json --cache " + one + "/slices.lkcache";
    REQUIRE(run(c.env + kMpirun + " " + kBin + " train" + kCommon + steps + shared + " --out " + two +
                    " --batch 4 --sync-bn",
                &out) == 0);
    INFO(out);
    CHECK(out.find("2 ranks x batch 4, synchronised batch norm") != std::string::npos);
    CHECK(json::parse(slurp(two + "/fold_0/config.json")).at("ranks") == 2);

    const std::vector<json> a = read_log(one + "/fold_0/log.jsonl"), b = read_log(two + "/fold_0/log.jsonl");
    REQUIRE(a.size() == 10);
    REQUIRE(b.size() == 10);
    double worst_loss = 0;
    for (size_t i = 0; i < a.size(); ++i)
      worst_loss = std::max(worst_loss, rel(b[i].at("loss").get<double>(), a[i].at("loss").get<double>()));
    std::string where;
    const double worst_w = max_rel_weights(last_weights(two + "/fold_0"), last_weights(one + "/fold_0"), &where);
    std::printf("%s, lr %s: 2 ranks x 4 (sync BN) vs 1 x 8 after 10 steps: losses within %.1e, weights within %.1e "
                "(%s)\n", c.dtype, c.lr, worst_loss, worst_w, where.c_str());
    CAPTURE(where);
    CHECK(worst_loss <= c.loss_tol);
    CHECK(worst_w <= c.weight_tol);
    // The steps do something: the losses move.
    CHECK(a.back().at("loss").get<double>() != a.front().at("loss").get<double>());
  }
}

TEST_CASE("mpi: without --sync-bn two ranks converge, resume exactly with the same rank count, refuse another",
          "[mpi]") {
  Dirs d("resume");
  make_data(d);
  const std::string base = kCommon + " --lr 3e-3 --batch 4 --steps-per-epoch 4 --val-every 4 --data " + d("data");
  std::string out;
  // Straight through 8 epochs (one process at batch 8: loss 4.42 -> 3.45,
  // validation Dice of ED 0.57; two ranks: 4.43 -> 3.45, 0.49).
  REQUIRE(run(kMpirun + " " + kBin + " train" + base + " --epochs 8 --out " + d("straight"), &out) == 0);
  INFO(out);
  const std::vector<json> log = read_log(d("straight/fold_0/log.jsonl"));
  REQUIRE(log.size() == 8);
  const double first = log.front().at("loss").get<double>(), last = log.back().at("loss").get<double>();
  std::printf("2 ranks x 4, per-rank BN: loss %.4f after epoch 1, %.4f after epoch 8\n", first, last);
  CHECK(std::isfinite(last));
  CHECK(last < 0.85 * first);
  REQUIRE(log.back().contains("val"));
  CHECK(log.back().at("val").at("dice_ed").get<double>() > 0.25);

  // 4 epochs, then the same folder extended to 8: the same weights, bit for bit.
  const std::string shared = " --split " + d("straight/split.json") + " --cache " + d("straight/slices.lkcache");
  REQUIRE(run(kMpirun + " " + kBin + " train" + base + shared + " --epochs 4 --out " + d("parts"), &out) == 0);
  REQUIRE(run(kMpirun + " " + kBin + " train" + base + shared + " --epochs 8 --out " + d("parts"), &out) == 0);
  CHECK(out.find("resuming") != std::string::npos);
  const SafeTensors x = load_safetensors(last_weights(d("straight/fold_0"))),
                    y = load_safetensors(last_weights(d("parts/fold_0")));
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (size_t i = 0; i < x.tensors.size(); ++i) {
    INFO(x.tensors[i].first);
    const Tensor &t = x.tensors[i].second, &u = y.tensors[i].second;
    REQUIRE(t.nbytes() == u.nbytes());
    CHECK(std::memcmp(t.raw(), u.raw(), t.nbytes()) == 0);
  }

  // One process on a folder of two ranks: refused, naming both counts.
  CHECK(run(kBin + " train" + base + shared + " --epochs 9 --out " + d("parts"), &out) != 0);
  CHECK(out.find("trained on 2 rank(s)") != std::string::npos);
  CHECK(out.find("now 1") != std::string::npos);
}

namespace {
// The pid of mpirun's child process with OMPI_COMM_WORLD_RANK=`rank`, or -1.
pid_t rank_pid(pid_t mpirun, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string s;
    std::getline(stat, s);
    const size_t close = s.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(s.substr(close + 2));
    char state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid != mpirun) continue;
    const std::string env = slurp((e.path() / "environ").string());
    if (env.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos) return std::stoi(name);
  }
  return -1;
}
}  // namespace

// Ctrl-C to mpirun stops both ranks after the same step with a checkpoint;
// resumed, rank 1 killed (rank 0 waits in a collective for it); resumed,
// rank 0 killed (the rank that writes the checkpoints): each time the other
// rank names the dead one and ends with an error, the job ends non-zero
// within seconds, and the checkpoint left is whole and resumes.
TEST_CASE("mpi: Ctrl-C stops every rank, a rank that dies ends the job naming it, each leaving a whole checkpoint",
          "[mpi]") {
  Dirs d("kill");
  make_data(d);
  const std::string args = kCommon + " --lr 3e-3 --batch 4 --steps-per-epoch 2 --val-every 1000 --data " + d("data") +
                           " --out " + d("run");
  const fs::path epochs = d("run/fold_0/log.jsonl");
  for (const int victim : {-1, 1, 0}) {  // -1: Ctrl-C to mpirun
    INFO((victim < 0 ? std::string("SIGINT to mpirun") : "rank " + std::to_string(victim) + " killed"));
    const size_t before = read_log(epochs.string()).size();
    // mpirun in the background, its output in a file.
    const std::string log = d("mpirun" + std::to_string(victim) + ".out");
    pid_t mpirun = -1;
    {
      const std::string cmd = "exec " + kMpirun + " " + kBin + " train" + args + " --epochs 100000 >" + log + " 2>&1";
      const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
      REQUIRE(posix_spawn(&mpirun, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) == 0);
    }
    int status = 0;
    bool ended = false;
    const auto alive = [&] {
      if (!ended && ::waitpid(mpirun, &status, WNOHANG) == mpirun) ended = true;
      return !ended;
    };
    // Two more epochs (so a checkpoint of this run exists), then the victim dies.
    const auto t0 = std::chrono::steady_clock::now();
    while (read_log(epochs.string()).size() < before + 2 && alive() &&
           std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    INFO(slurp(log));
    REQUIRE(read_log(epochs.string()).size() >= before + 2);
    REQUIRE(alive());
    const pid_t pid = victim < 0 ? mpirun : rank_pid(mpirun, victim);
    REQUIRE(pid > 0);
    REQUIRE(::kill(pid, victim < 0 ? SIGINT : SIGKILL) == 0);
    const auto t1 = std::chrono::steady_clock::now();
    while (alive() && std::chrono::steady_clock::now() - t1 < std::chrono::seconds(60))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (alive()) {
      ::kill(mpirun, SIGKILL);
      ::waitpid(mpirun, &status, 0);
      FAIL("the job did not end within 60 s of a rank's death");
    }
    const std::string out = slurp(log);
    INFO(out);
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    if (before > 0) CHECK(out.find("resuming") != std::string::npos);
    if (victim < 0) {
      // Both ranks stop after the same step, rank 0 writing its checkpoint.
      CHECK(out.find("lkaseg: rank 0 of 2: stopping after the current step on every rank") != std::string::npos);
      CHECK(out.find("lkaseg: rank 1 of 2: stopping after the current step on every rank") != std::string::npos);
      CHECK(out.find("stopped: run the same command again to resume") != std::string::npos);
      const json last = json::parse(slurp(d("run/fold_0/last.json")));
      CHECK(last.at("step").get<int64_t>() >= 2 * static_cast<int64_t>(read_log(epochs.string()).size()));
      continue;
    }
    // The survivor names the dead rank (its PeerWatch, before mpirun ends it).
    const int survivor = 1 - victim;
    CHECK(out.find("lkaseg: rank " + std::to_string(survivor) + " of 2: error: rank " + std::to_string(victim) +
                   " (pid " + std::to_string(pid) + ", this node) has died") != std::string::npos);
    // The checkpoint is whole: both files load, from the same step.
    const std::string last = last_weights(d("run/fold_0"));
    const SafeTensors w = load_safetensors(last), st = load_safetensors(last + ".state");
    CHECK(w.metadata.at("step") == st.metadata.at("step"));
  }
  // The job resumes from it.
  const size_t done = read_log(epochs.string()).size();
  std::string again;
  CHECK(run(kMpirun + " " + kBin + " train" + args + " --epochs " + std::to_string(done + 1), &again) == 0);
  INFO(again);
  CHECK(again.find("resuming") != std::string::npos);
}
