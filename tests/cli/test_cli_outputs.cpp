// What the commands write, when the disk fills up or an input lies (issue
// 11): synth and predict leave no half-written case and say why; a model
// whose weights hold NaN, or whose metadata claims a far larger network than
// the file holds, is refused before anything is predicted or allocated; case
// ids with commas are quoted in the evaluation CSV.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "data/brats_cases.h"
#include "data/synth.h"
#include "engine/state_dict.h"
#include "tests/support/file_size_limit.h"
#include "tests/support/nifti_craft.h"
#include "eval/evaluate.h"
#include "tools/cli/run.h"
#include "train/trainer.h"
#include "util/csv.h"

using namespace lk;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

data::SynthOptions tiny_synth() {
  data::SynthOptions o;
  o.dims = {40, 36, 12};
  return o;
}

// Entries whose name holds ".tmp." anywhere under `dir`.
int temps(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

// A small trained-looking model file: a state_dict with lkaseg's metadata.
std::string model_file(const test::TempDir& dir, const std::string& name, const train::TrainConfig& claimed,
                       bool poison) {
  train::TrainConfig c;
  c.net.widths = {4, 8, 16, 32};
  model::SegNet net(c.net);
  if (poison) net.named_parameters()[3].second.data<float>()[0] = std::nanf("");
  data::PreprocessOptions po;
  po.size = 32;
  const std::string path = dir.file(name);
  save_state_dict(path, net, {{"lkaseg.train_config", claimed.to_json()}, {"lkaseg.preprocess", train::preprocess_to_json(po)}});
  return path;
}

}  // namespace

TEST_CASE("cli outputs: a full disk while synth writes leaves no half-written case, and says why", "[cli]") {
  const test::TempDir dir;
  const std::string out = dir.file("set");
  data::generate_synthetic_dataset(out, 1, 3, tiny_synth());  // case 0
  const std::string flair0 = out + "/BraTS2021_00000/BraTS2021_00000_flair.nii.gz";
  const auto size0 = fs::file_size(flair0);
  data::SynthOptions next = tiny_synth();
  next.first_id = 1;
  {
    const test::FileSizeLimit full(6 * 1024);  // a case's files do not fit (gzip level 1 of 40x36x12 int16)
    CHECK_THROWS_WITH(data::generate_synthetic_dataset(out, 1, 3, next),
                      Contains("case BraTS2021_00001 not written (nothing of it is left)") &&
                          Contains(std::strerror(EFBIG)));
    // Replacing case 0 (another seed) fails the same way and leaves the old one whole.
    CHECK_THROWS_WITH(data::generate_synthetic_dataset(out, 1, 4, tiny_synth()), Contains("BraTS2021_00000"));
  }
  CHECK_FALSE(fs::exists(dir.path() / "set" / "BraTS2021_00001"));
  CHECK(temps(dir.path()) == 0);
  CHECK(data::discover_brats_cases(out).cases.size() == 1);
  CHECK(fs::file_size(flair0) == size0);
}

TEST_CASE("cli outputs: a full disk while predicting names the file and the reason", "[cli]") {
  const test::TempDir dir;
  const std::string data_dir = dir.file("set"), pred = dir.file("pred");
  data::generate_synthetic_dataset(data_dir, 1, 4, tiny_synth());
  train::TrainConfig c;
  c.net.widths = {4, 8, 16, 32};
  const cli::LoadedModel m = cli::load_model(model_file(dir, "m.safetensors", c, false), cpu_device());
  cli::prepare_prediction_folder(pred, false);
  const data::BratsCase bc = data::discover_brats_cases(data_dir).cases.at(0);
  {
    const test::FileSizeLimit full(100);
    CHECK_THROWS_WITH(cli::predict_case_file(*m.net, m.preprocess, bc, pred, 8, cpu_device()),
                      Contains(pred + "/BraTS2021_00000.nii.gz") && Contains("gzip write failed: ") &&
                          Contains(std::strerror(EFBIG)));
  }
  CHECK(fs::is_empty(pred));
  // With space the prediction is written; a file there that is not one is never replaced.
  cli::predict_case_file(*m.net, m.preprocess, bc, pred, 8, cpu_device());
  CHECK(fs::exists(pred + "/BraTS2021_00000.nii.gz"));
  fs::copy_file(bc.seg, pred + "/BraTS2021_00000.nii.gz", fs::copy_options::overwrite_existing);
  CHECK_THROWS_WITH(cli::predict_case_file(*m.net, m.preprocess, bc, pred, 8, cpu_device()),
                    Contains("not an lkaseg prediction"));
  CHECK_THROWS_WITH(cli::prepare_prediction_folder(pred, false), Contains("--force"));
  CHECK_NOTHROW(cli::prepare_prediction_folder(pred, true));
}

TEST_CASE("cli outputs: a model with NaN weights or oversized metadata is refused before it is used", "[cli]") {
  const test::TempDir dir;
  train::TrainConfig c;
  c.net.widths = {4, 8, 16, 32};
  CHECK_THROWS_WITH(cli::load_model(model_file(dir, "nan.safetensors", c, true), cpu_device()),
                    Contains("nan.safetensors") && Contains("1 non-finite value") && Contains("meaningless"));
  train::TrainConfig huge = c;
  huge.net.widths = {100000, 100000, 100000, 100000};  // would need terabytes
  CHECK_THROWS_WITH(cli::load_model(model_file(dir, "huge.safetensors", huge, false), cpu_device()),
                    Contains("huge.safetensors") && Contains("damaged or foreign metadata"));
  CHECK(cli::min_parameters(huge.net) > int64_t{300000000000});
  CHECK_THROWS_WITH(cli::check_network_memory(huge.net, 4, "--widths"), Contains("GB") && Contains("this machine has"));
}

TEST_CASE("cli outputs: case ids with commas or quotes are quoted in the evaluation CSV", "[cli]") {
  CHECK(csv_field("BraTS2021_00001") == "BraTS2021_00001");
  CHECK(csv_field("site 3, case 1") == "\"site 3, case 1\"");
  CHECK(csv_field("a \"b\"") == "\"a \"\"b\"\"\"");
  CHECK(csv_field("two\nlines") == "\"two\nlines\"");
  eval::CaseMetrics m;
  m.id = "site 3, case 1";
  const std::string csv = eval::format_metrics_csv({m});
  CHECK_THAT(csv, Contains("\n\"site 3, case 1\",NCR,"));
}
