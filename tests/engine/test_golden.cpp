// Every op against PyTorch: the fixtures in tests/golden/ops were written by
// tools/golden/make_op_fixtures.py (torch, float64). Each holds the inputs,
// the output, a random upstream gradient and the input gradients. We run
// each case in float64 (tight) and float32 (value-scaled), with the fast and
// the reference CPU kernels, on top of NaN-poisoned outputs.
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "engine/safetensors.h"
#include "tests/support/harness.h"

using namespace lk;
using namespace lk::test;

namespace {

using Named = std::map<std::string, Tensor>;
using Meta = std::map<std::string, std::string>;
using GoldenFn = std::function<Tensor(Named&, const Meta&)>;

int64_t mi(const Meta& m, const char* k) { return std::stoll(m.at(k)); }
double md(const Meta& m, const char* k) { return std::stod(m.at(k)); }

// op name -> how to run it from the fixture's named inputs
const std::map<std::string, GoldenFn>& golden_ops() {
  static const std::map<std::string, GoldenFn> ops = {
      {"conv2d",
       [](Named& in, const Meta& m) {
         return conv2d(in["x"], in["weight"], in["bias"],
                       {mi(m, "stride"), mi(m, "padding"), mi(m, "dilation"), mi(m, "groups")});
       }},
      {"conv_transpose2d",
       [](Named& in, const Meta& m) {
         return conv_transpose2d(in["x"], in["weight"], in["bias"], mi(m, "stride"), mi(m, "padding"));
       }},
      {"batch_norm",
       [](Named& in, const Meta& m) {
         return batch_norm(in["x"], in["weight"], in["bias"], in["running_mean"], in["running_var"],
                           mi(m, "training") != 0, md(m, "momentum"), md(m, "eps"));
       }},
      {"relu", [](Named& in, const Meta&) { return relu(in["x"]); }},
      {"sigmoid", [](Named& in, const Meta&) { return sigmoid(in["x"]); }},
      {"add", [](Named& in, const Meta&) { return add(in["a"], in["b"]); }},
      {"mul", [](Named& in, const Meta&) { return mul(in["a"], in["b"]); }},
      {"global_avg_pool", [](Named& in, const Meta&) { return global_avg_pool(in["x"]); }},
      {"linear", [](Named& in, const Meta&) { return linear(in["x"], in["weight"], in["bias"]); }},
      {"max_pool2d", [](Named& in, const Meta& m) { return max_pool2d(in["x"], mi(m, "kernel"), mi(m, "stride")); }},
      {"upsample_bilinear", [](Named& in, const Meta& m) { return upsample_bilinear(in["x"], mi(m, "scale")); }},
      {"upsample_nearest", [](Named& in, const Meta& m) { return upsample_nearest(in["x"], mi(m, "scale")); }},
      {"concat", [](Named& in, const Meta&) { return concat({in["a"], in["b"]}); }},
      {"softmax", [](Named& in, const Meta&) { return softmax(in["x"]); }},
      {"cross_entropy",
       [](Named& in, const Meta&) { return cross_entropy(in["logits"], in["target"], in["class_weight"]); }},
      {"tversky",
       [](Named& in, const Meta& m) {
         TverskyParams p;
         p.alpha_min = md(m, "alpha_min");
         p.alpha_max = md(m, "alpha_max");
         p.eps = md(m, "eps");
         Tensor stats;
         Tensor loss = tversky_loss(in["probs"], in["target"], p, &stats);
         in["__stats"] = stats;
         return loss;
       }},
  };
  return ops;
}

bool is_input(const std::string& name) {
  return name != "out" && name != "alpha" && name.rfind("grad_", 0) != 0 && name.find("_after") == std::string::npos;
}

std::vector<std::filesystem::path> fixture_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(LKASEG_GOLDEN_DIR "/ops"))
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

void run_case(const SafeTensors& st, DType dt, double tol) {
  const std::string& op = st.meta("op");
  INFO("fixture " << st.path << " as " << dtype_name(dt));
  REQUIRE(golden_ops().count(op) == 1);
  Named in;
  std::vector<std::string> diff;
  for (const auto& [name, t] : st.tensors) {
    if (!is_input(name)) continue;
    Tensor x = t.dtype() == DType::I32 ? t : t.to(dt);
    if (st.has("grad_" + name)) {
      x.set_requires_grad(true);
      diff.push_back(name);
    }
    in[name] = x;
  }
  const Tensor out = golden_ops().at(op)(in, st.metadata);
  CHECK(scaled_error(out, st.get("out")) <= tol);
  for (const char* after : {"running_mean", "running_var"})
    if (st.has(std::string(after) + "_after")) CHECK(scaled_error(in[after], st.get(std::string(after) + "_after")) <= tol);
  if (st.has("alpha")) {
    const int64_t c = st.get("alpha").numel();
    const std::vector<double> stats = in["__stats"].to_vector();
    const Tensor alpha = Tensor::from_vector({stats.begin() + 3 * c, stats.end()}, {c}, DType::F64);
    CHECK(scaled_error(alpha, st.get("alpha")) <= tol);
  }
  backward(out, st.get("grad_out").to(dt));
  for (const std::string& name : diff) {
    INFO("gradient of " << name);
    REQUIRE(in[name].grad().defined());
    CHECK(scaled_error(in[name].grad(), st.get("grad_" + name)) <= tol);
  }
}

}  // namespace

TEST_CASE("golden fixtures exist for every op", "[golden]") {
  std::set<std::string> seen;
  for (const auto& f : fixture_files()) seen.insert(load_safetensors(f.string()).meta("op"));
  for (const auto& [op, fn] : golden_ops()) {
    INFO("op without a fixture: " << op);
    CHECK(seen.count(op) == 1);
  }
  CHECK(fixture_files().size() >= 30);
}

TEST_CASE("every op matches PyTorch in float64 and float32 with fast and reference kernels", "[golden]") {
  const auto variant = GENERATE(KernelVariant::Fast, KernelVariant::Reference);
  Backend& b = backend(cpu_device());
  const KernelVariant prev = b.variant();
  b.set_variant(variant);
  for (const auto& f : fixture_files()) {
    const SafeTensors st = load_safetensors(f.string());
    run_case(st, DType::F64, 1e-10);
    run_case(st, DType::F32, 2e-5);
  }
  b.set_variant(prev);
}
