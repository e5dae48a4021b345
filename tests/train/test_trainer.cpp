// One fold of the training protocol (train/trainer.h) on a tiny network and
// a small slice cache: the run folder's files, validation and the best
// checkpoint, exact resume after a stop (mid-epoch and at an epoch end),
// refusal of a changed configuration, extension of the epoch count.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "train/checkpoint.h"
#include "engine/safetensors.h"
#include "tests/support/tiny_run.h"
#include "train/trainer.h"
#include "tests/support/loader_fixture.h"
#include "tests/support/file_size_limit.h"

using namespace lk;
using namespace lk::model;
using namespace lk::train;
namespace fs = std::filesystem;

namespace {

TrainConfig tiny_config() {
  TrainConfig c = test::tiny_run(3, 4, 3, 2);
  c.net.seed = 5;
  c.tumour_fraction = 0.5;
  c.workers = 2;
  c.eval_batch = 5;
  return c;
}

std::vector<std::string> ids(int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back("case_" + std::to_string(i));
  return v;
}

int count_lines(const fs::path& p) {
  std::ifstream in(p);
  std::string l;
  int n = 0;
  while (std::getline(in, l)) n += !l.empty();
  return n;
}

// Every tensor of two state_dict files is bit-identical.
void same_weights(const std::string& a, const std::string& b) {
  const auto ta = load_safetensors(a), tb = load_safetensors(b);
  REQUIRE(ta.tensors.size() == tb.tensors.size());
  for (size_t i = 0; i < ta.tensors.size(); ++i) {
    const auto& [k, t] = ta.tensors[i];
    INFO(k);
    REQUIRE(tb.tensors[i].first == k);
    const Tensor& u = tb.tensors[i].second;
    REQUIRE(t.shape() == u.shape());
    CHECK(std::memcmp(t.raw(), u.raw(), t.nbytes()) == 0);
  }
}

// The weights file of the newest checkpoint generation (last.json names it).
std::string last_weights(const fs::path& run) {
  std::ifstream in(run / "last.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const size_t at = text.find("\"weights\": \"");
  REQUIRE(at != std::string::npos);
  const size_t from = at + 12;
  return (run / text.substr(from, text.find('"', from) - from)).string();
}

struct Dirs {
  fs::path root = fs::temp_directory_path() / ("lkaseg_trainer_" + std::to_string(::getpid()));
  Dirs() { fs::remove_all(root); }
  ~Dirs() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  std::string operator()(const std::string& name) const { return (root / name).string(); }
};

}  // namespace

TEST_CASE("trainer: a run writes its folder, validates and keeps the best checkpoint", "[train]") {
  test::LoaderFixture f("trainer_run", 5, 8, 32);
  const Dirs d;
  std::vector<std::string> lines;
  TrainHooks h;
  h.log = [&](const std::string& m) { lines.push_back(m); };
  const TrainResult r = train_fold(tiny_config(), f.cache, ids(0, 4), ids(4, 5), d("run"), h);
  REQUIRE(r.log.size() == 3);
  CHECK_FALSE(r.stopped);
  CHECK(r.resumed_from_step == -1);
  CHECK_FALSE(r.log[0].val.has_value());  // val_every 2, and after the last epoch
  REQUIRE(r.log[1].val.has_value());
  REQUIRE(r.log[2].val.has_value());
  for (const EpochLog& e : r.log) {
    CHECK(e.steps == 3);
    CHECK(std::isfinite(e.loss));
    CHECK(e.wait_ms >= 0);
  }
  CHECK(r.log[1].val->cases == 1);
  for (double v : r.log[2].val->dice) CHECK((v >= 0 && v <= 1));
  CHECK(r.best_epoch >= 2);
  CHECK(r.best_dice == std::max(r.log[1].val->mean, r.log[2].val->mean));
  // lr: warmup over epoch 1 (3 steps) from lr/10, then lr * 0.95^(epoch - 1).
  CHECK(r.log[0].lr == Approx(3e-3 * (0.1 + 0.9 * 2.0 / 3.0)));
  CHECK(r.log[2].lr == Approx(3e-3 * 0.95));

  for (const char* name : {"config.json", "last.json", "last-00000009.safetensors", "last-00000009.safetensors.state",
                           "best.safetensors", "log.jsonl"})
    CHECK(fs::exists(d.root / "run" / name));
  // Only the newest generation is kept.
  CHECK_FALSE(fs::exists(d.root / "run" / "last-00000006.safetensors"));
  CHECK(Checkpoints(d("run")).generations() == std::vector<int64_t>{9});
  CHECK(count_lines(d.root / "run" / "log.jsonl") == 3);
  // best.safetensors is a strict state_dict of the configured net, with what predict needs.
  SegNet net(tiny_config().net);
  const auto meta = load_state_dict(d("run/best.safetensors"), net);
  CHECK(meta.at("lkaseg.epoch") == std::to_string(r.best_epoch));
  CHECK(TrainConfig::from_json(meta.at("lkaseg.train_config")).to_json() == tiny_config().to_json());
  CHECK(preprocess_from_json(meta.at("lkaseg.preprocess")).size == 32);
  CHECK(lines.size() >= 4);

  SECTION("the same folder with another configuration is refused, naming the field") {
    TrainConfig c = tiny_config();
    c.adamw.lr = 1e-3;
    CHECK_THROWS_WITH(train_fold(c, f.cache, ids(0, 4), ids(4, 5), d("run")), Catch::Contains("'adamw.lr' differs"));
  }
  SECTION("more epochs continue the run") {
    TrainConfig c = tiny_config();
    c.epochs = 4;
    const TrainResult more = train_fold(c, f.cache, ids(0, 4), ids(4, 5), d("run"));
    CHECK(more.resumed_from_step == 9);
    REQUIRE(more.log.size() == 4);
    CHECK(more.log[3].steps == 3);
    CHECK(more.log[3].val.has_value());
    CHECK(more.log[1].loss == r.log[1].loss);  // the earlier epochs come from log.jsonl
    // And a finished run does nothing.
    const TrainResult again = train_fold(c, f.cache, ids(0, 4), ids(4, 5), d("run"));
    CHECK(again.resumed_from_step == 12);
    CHECK(again.log.size() == 4);
  }
}

TEST_CASE("trainer: a stopped and resumed run takes exactly the uninterrupted run's steps", "[train]") {
  test::LoaderFixture f("trainer_resume", 4, 8, 32);
  const Dirs d;
  TrainConfig c = tiny_config();
  c.val_every = 1;
  const TrainResult whole = train_fold(c, f.cache, ids(0, 3), ids(3, 4), d("whole"));
  REQUIRE(whole.log.size() == 3);

  // Stop requested from the start: the run stops after its first step (mid-epoch).
  std::atomic<bool> stop{true};
  TrainHooks h;
  h.stop = &stop;
  const TrainResult first = train_fold(c, f.cache, ids(0, 3), ids(3, 4), d("parts"), h);
  CHECK(first.stopped);
  CHECK(first.log.empty());
  // Resumed with the stop still set: one more step (still mid-epoch), then
  // the step that ends epoch 1; the stop is seen before the validation,
  // which is left for the resume (a stop does not wait for it).
  const TrainResult second = train_fold(c, f.cache, ids(0, 3), ids(3, 4), d("parts"), h);
  CHECK(second.resumed_from_step == 1);
  CHECK(second.stopped);
  CHECK(second.log.empty());
  const TrainResult third = train_fold(c, f.cache, ids(0, 3), ids(3, 4), d("parts"), h);
  CHECK(third.resumed_from_step == 2);
  CHECK(third.stopped);
  CHECK(third.log.empty());
  CHECK_FALSE(fs::exists(d.root / "parts" / "best.safetensors"));
  stop = false;
  std::vector<std::string> said;
  h.log = [&](const std::string& l) { said.push_back(l); };
  const TrainResult fourth = train_fold(c, f.cache, ids(0, 3), ids(3, 4), d("parts"), h);
  CHECK(fourth.resumed_from_step == 3);
  CHECK_FALSE(fourth.stopped);
  CHECK(std::any_of(said.begin(), said.end(), [](const std::string& l) {
    return l.find("the validation of epoch 1 was stopped, running it first") != std::string::npos;
  }));
  REQUIRE(fourth.log.size() == 3);
  CHECK(fourth.log[0].steps == 3);  // the whole epoch, across the stops
  CHECK(fourth.log[0].loss == whole.log[0].loss);
  for (size_t e = 0; e < 3; ++e) {
    if (e > 0) CHECK(fourth.log[e].loss == whole.log[e].loss);
    REQUIRE(fourth.log[e].val.has_value());
    CHECK(fourth.log[e].val->mean == whole.log[e].val->mean);
  }
  same_weights(last_weights(d.root / "whole"), last_weights(d.root / "parts"));
  same_weights(d("whole/best.safetensors"), d("parts/best.safetensors"));
}

TEST_CASE("trainer: the loss is read every log_every steps, and a diverged run stops at the next read", "[train]") {
  test::LoaderFixture f("trainer_log", 4, 8, 32);
  const Dirs d;
  TrainConfig c = tiny_config();
  c.epochs = 2;
  c.val_every = 10;
  c.log_every = 2;
  std::vector<std::string> lines;
  TrainHooks h;
  h.log = [&](const std::string& m) { lines.push_back(m); };
  const TrainResult r = train_fold(c, f.cache, ids(0, 3), ids(3, 4), d("log"), h);
  REQUIRE(r.log.size() == 2);
  // Steps 2 and 4 print the mean loss since the last read (6 ends epoch 2).
  std::vector<std::string> steps;
  for (const std::string& l : lines)
    if (l.rfind("step ", 0) == 0) steps.push_back(l.substr(0, l.find("  loss")));
  CHECK(steps == std::vector<std::string>{"step 2/6 (epoch 1)", "step 4/6 (epoch 2)"});
  for (const EpochLog& e : r.log) CHECK(std::isfinite(e.loss));

  // An absurd learning rate: the loss is not finite after the first update;
  // only the epoch-end read sees it, and nothing is saved.
  c.adamw.lr = 1e30;
  c.warmup_epochs = 0;
  c.log_every = 0;
  CHECK_THROWS_WITH(train_fold(c, f.cache, ids(0, 3), ids(3, 4), d("nan")),
                    Catch::Contains("training diverged") && Catch::Contains("steps 1 to 3 (epoch 1)"));
  CHECK_FALSE(fs::exists(d.root / "nan" / "last.safetensors"));
  c.log_every = -1;
  CHECK_THROWS_WITH(train_fold(c, f.cache, ids(0, 3), ids(3, 4), d("bad")), Catch::Contains("log_every"));
}

TEST_CASE("trainer: configuration JSON round trip and bad values", "[train]") {
  TrainConfig c = tiny_config();
  c.net.arch = Arch::AttentionUNet;
  c.loss.lambdas = {1.0, 0.5};
  c.decay = 0.9;
  c.seed = 1234567890123ull;
  CHECK(TrainConfig::from_json(c.to_json()).to_json() == c.to_json());
  c.precision = DType::F16;  // fp16 keeps its loss scaler's first scale
  c.loss_scale = 1024;
  CHECK(TrainConfig::from_json(c.to_json()).loss_scale == 1024);
  CHECK(TrainConfig::from_json(c.to_json()).to_json() == c.to_json());
  // Oversampling by class is written only when chosen: a configuration without it reads as by tumour.
  CHECK(c.to_json().find("oversample_by") == std::string::npos);
  CHECK_FALSE(TrainConfig::from_json(c.to_json()).oversample_by_class);
  c.oversample_by_class = true;
  CHECK(TrainConfig::from_json(c.to_json()).oversample_by_class);
  std::string by = c.to_json();
  by.replace(by.find("\"class\""), 7, "\"voxel\"");
  CHECK_THROWS_WITH(TrainConfig::from_json(by), Catch::Contains("oversample_by 'voxel'"));
  CHECK_THROWS_WITH(TrainConfig::from_json("{\"format\": \"other\"}"), Catch::Contains("format"));
  CHECK_THROWS_WITH(TrainConfig::from_json("not json"), Catch::Contains("training configuration"));

  test::LoaderFixture f("trainer_bad", 2, 4, 32);
  const Dirs d;
  TrainConfig bad = tiny_config();
  bad.epochs = 0;
  CHECK_THROWS_WITH(train_fold(bad, f.cache, ids(0, 1), ids(1, 2), d("x")), Catch::Contains("epochs"));
  bad = tiny_config();
  bad.batch = 64;
  CHECK_THROWS_WITH(train_fold(bad, f.cache, ids(0, 1), ids(1, 2), d("y")), Catch::Contains("no batch of 64"));
  bad = tiny_config();
  bad.tumour_fraction = 0, bad.oversample_by_class = true;
  CHECK_THROWS_WITH(train_fold(bad, f.cache, ids(0, 1), ids(1, 2), d("w")), Catch::Contains("oversampling by class"));
  CHECK_THROWS(train_fold(tiny_config(), f.cache, {"nope"}, ids(1, 2), d("z")));
}

TEST_CASE("trainer: a checkpoint that cannot be written (full disk) stops the run and loses nothing", "[train]") {
  test::LoaderFixture f("trainer_full_disk", 3, 8, 32);
  const Dirs d;
  TrainConfig c = tiny_config();
  c.epochs = 2;
  c.val_every = 1;
  const TrainResult whole = train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("whole"));
  // One good epoch, then the disk "fills": the next checkpoint write fails.
  c.epochs = 1;
  REQUIRE(train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run")).log.size() == 1);
  const std::string good_weights = last_weights(d.root / "run");
  const auto good = fs::file_size(good_weights);
  c.epochs = 2;
  {
    const test::FileSizeLimit full(8 * 1024);  // config.json and log.jsonl fit, a checkpoint does not
    CHECK_THROWS_WITH(train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run")),
                      Catch::Contains((d.root / "run").string()) && Catch::Contains(std::strerror(EFBIG)));
  }
  // The last good checkpoint is intact and no temporary file is left.
  CHECK(last_weights(d.root / "run") == good_weights);
  CHECK(fs::file_size(good_weights) == good);
  for (const auto& e : fs::directory_iterator(d.root / "run"))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  // With space again the run resumes from it and ends where an uninterrupted run ends.
  const TrainResult resumed = train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run"));
  CHECK(resumed.resumed_from_step == 3);
  REQUIRE(resumed.log.size() == 2);
  CHECK(resumed.log[1].loss == whole.log[1].loss);
  same_weights(last_weights(d.root / "whole"), last_weights(d.root / "run"));
}

TEST_CASE("trainer: a run that cannot start writes nothing, so the corrected run is not refused", "[train]") {
  test::LoaderFixture f("trainer_nostart", 3, 8, 16);
  const Dirs d;
  TrainConfig one_level = tiny_config();
  one_level.net.widths = {8};
  one_level.net.deep_supervision = false;
  CHECK_THROWS_WITH(train_fold(one_level, f.cache, ids(0, 2), ids(2, 3), d("run")), Catch::Contains("2 levels"));
  CHECK_FALSE(fs::exists(d.root / "run"));
  // Batch norm in training needs more than one value per channel: batch 1 at
  // a 1x1 coarsest level (16 px, 5 levels) cannot train.
  TrainConfig batch_one = tiny_config();
  batch_one.net.widths = {4, 8, 16, 32, 64};
  batch_one.batch = 1;
  CHECK_THROWS_WITH(train_fold(batch_one, f.cache, ids(0, 2), ids(2, 3), d("run")),
                    Catch::Contains("batch 1") && Catch::Contains("batch norm"));
  CHECK_FALSE(fs::exists(d.root / "run" / "config.json"));
  TrainConfig fixed = batch_one;
  fixed.batch = 2;
  fixed.epochs = 1;
  CHECK_NOTHROW(train_fold(fixed, f.cache, ids(0, 2), ids(2, 3), d("run")));
}

TEST_CASE("trainer: the slices' preprocessing is part of the run's configuration", "[train]") {
  test::LoaderFixture at32("trainer_pp32", 3, 8, 32), at16("trainer_pp16", 3, 8, 16);
  const Dirs d;
  TrainConfig c = tiny_config();
  c.epochs = 1;
  train_fold(c, at32.cache, ids(0, 2), ids(2, 3), d("run"));
  // The same run folder on 16 px slices would mix two preprocessings.
  CHECK_THROWS_WITH(train_fold(c, at16.cache, ids(0, 2), ids(2, 3), d("run")),
                    Catch::Contains("'preprocess.size' differs: 32 then, 16 now"));
}

TEST_CASE("trainer: a full disk in the middle of a save resumes from the previous checkpoint, not step 0", "[train]") {
  test::LoaderFixture f("trainer_half_save", 3, 8, 32);
  const Dirs d;
  TrainConfig c = tiny_config();
  c.epochs = 2;
  c.val_every = 10;
  const TrainResult whole = train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("whole"));
  c.epochs = 1;
  train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run"));
  const Checkpoints ck(d("run"));
  const auto weights = fs::file_size(ck.weights_path(3)), state = fs::file_size(ck.weights_path(3) + ".state");
  REQUIRE(state > weights + 4096);
  c.epochs = 2;
  {
    const test::FileSizeLimit full(weights + 2048);  // the weights of step 6 fit, its state does not
    CHECK_THROWS_WITH(train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run")), Catch::Contains(std::strerror(EFBIG)));
  }
  CHECK(fs::exists(ck.weights_path(6)));  // the half of the failed save
  std::vector<std::string> lines;
  TrainHooks h;
  h.log = [&](const std::string& m) { lines.push_back(m); };
  const TrainResult resumed = train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run"), h);
  CHECK(resumed.resumed_from_step == 3);
  CHECK(resumed.log[1].loss == whole.log[1].loss);
  same_weights(last_weights(d.root / "whole"), last_weights(d.root / "run"));
  // Finished: a rerun says how far it went, in words that fit the number.
  lines.clear();
  c.epochs = 1;
  train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run"), h);
  REQUIRE_FALSE(lines.empty());
  CHECK_THAT(lines.back(), Catch::Contains("already trained for 2 epochs (--epochs 1 asks for fewer)"));
}

TEST_CASE("trainer: the first save failing starts over from step 0 and says so", "[train]") {
  test::LoaderFixture f("trainer_first_save", 3, 8, 32);
  const Dirs d;
  TrainConfig c = tiny_config();
  c.epochs = 2;
  c.val_every = 5;  // no validation after epoch 1: log.jsonl is written, then the checkpoint fails
  {
    const test::FileSizeLimit full(8 * 1024);
    CHECK_THROWS(train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run")));
  }
  REQUIRE(fs::exists(d.root / "run" / "log.jsonl"));
  std::vector<std::string> lines;
  TrainHooks h;
  h.log = [&](const std::string& m) { lines.push_back(m); };
  const TrainResult r = train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run"), h);
  CHECK(r.resumed_from_step == -1);
  REQUIRE_FALSE(lines.empty());
  CHECK_THAT(lines.front(), Catch::Contains("no complete checkpoint") && Catch::Contains("step 0"));
}

TEST_CASE("trainer: progress inside epochs: step, loss, steps/s and the run's ETA", "[train]") {
  test::LoaderFixture f("trainer_progress", 3, 8, 32);
  const Dirs d;
  TrainConfig c = tiny_config();
  c.epochs = 2;
  c.steps_per_epoch = 10;
  c.log_every = 4;  // the loss shows from the first read on
  std::FILE* out = std::tmpfile();
  TrainHooks h;
  h.progress = out;
  train_fold(c, f.cache, ids(0, 2), ids(2, 3), d("run"), h);
  std::rewind(out);
  std::string text;
  for (int ch; (ch = std::fgetc(out)) != EOF;) text += static_cast<char>(ch);
  std::fclose(out);
  // Off a terminal: plain lines, one per tenth of an epoch.
  CHECK(text.find('\r') == std::string::npos);
  CHECK_THAT(text, Catch::Contains("epoch 1/2: 1/10 steps (10%), ") && Catch::Contains("steps/s, ETA "));
  CHECK_THAT(text, Catch::Contains("epoch 2/2: 9/10 steps (90%)"));
  CHECK_THAT(text, Catch::Contains("run ETA "));
  CHECK(text.find("loss ") > text.find("epoch 1/2: 4/10 steps"));  // read at step 4, not before
}
