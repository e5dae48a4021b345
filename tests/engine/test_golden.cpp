// Every op of the op table (tests/support/op_table.h) against PyTorch on the
// CPU: the fixtures in tests/golden/ops were written by
// tools/golden/make_op_fixtures.py (torch, float64). Each holds the inputs, the
// output, any extra outputs, a random upstream gradient and the input
// gradients. Each fixture runs in float64 (tight) and float32 (value-scaled),
// with every kernel variant of the CPU backend, on top of NaN-poisoned outputs.
// One test case per op ("golden <op>"), and one that holds the table and the
// fixture folder to each other.
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "engine/safetensors.h"
#include "tests/support/harness.h"
#include "tests/support/op_tests.h"

using namespace lk;
using namespace lk::test;

namespace {

void run_fixture(const OpEntry& op, const SafeTensors& st, DType dt, double tol) {
  INFO("fixture " << st.path << " as " << dtype_name(dt));
  Named in;
  std::vector<std::string> diff;
  for (const auto& [name, t] : st.tensors) {
    if (!fixture_input(name)) continue;
    Tensor x = t.dtype() == DType::I32 ? t : t.to(dt);
    if (st.has("grad_" + name)) {
      x.set_requires_grad(true);
      diff.push_back(name);
    }
    in[name] = x;
  }
  const Tensor out = op.golden(in, st.metadata);
  CHECK(scaled_error(out, st.get("out")) <= tol);
  for (const auto& [name, t] : st.tensors) {
    if (name == "out" || fixture_input(name) || name.rfind("grad_", 0) == 0) continue;
    INFO("extra output " << name);
    REQUIRE(in.count(name) == 1);
    CHECK(scaled_error(in[name], t) <= tol);
  }
  backward(out, st.get("grad_out").to(dt));
  for (const std::string& name : diff) {
    INFO("gradient of " << name);
    REQUIRE(in[name].grad().defined());
    CHECK(scaled_error(in[name].grad(), st.get("grad_" + name)) <= tol);
  }
}

void golden(const OpEntry& op) {
  REQUIRE(op.golden);
  Backend& b = backend(cpu_device());
  for (KernelVariant v : b.variants()) {
    VariantScope scope(b, v);
    INFO("variant " << variant_name(v));
    for (const std::string& f : op.fixtures) {
      const SafeTensors st = load_safetensors(fixture_path(f));
      run_fixture(op, st, DType::F64, op.tol.cpu_f64);
      run_fixture(op, st, DType::F32, op.tol.cpu_f32);
    }
  }
}

[[maybe_unused]] const bool registered =
    register_op_tests("golden", "[golden]", [](const OpEntry& e) { return !e.fixtures.empty(); }, golden);

}  // namespace

TEST_CASE("the op table and tests/golden/ops name each other", "[golden]") {
  std::set<std::string> listed, ops;
  for (const OpEntry& e : op_table()) {
    INFO("op " << e.name);
    CHECK(ops.insert(e.name).second);  // one entry per op
    CHECK(e.fixtures.empty() == !e.golden);
    for (const std::string& f : e.fixtures) {
      INFO("fixture " << f);
      CHECK(listed.insert(f).second);  // one op per fixture
      REQUIRE(std::filesystem::exists(fixture_path(f)));
      // The fixture's op is the entry's name: one spelling, file to table.
      CHECK(load_safetensors(fixture_path(f)).meta("op") == e.name);
      CHECK(f.rfind(e.name, 0) == 0);
    }
  }
  int on_disk = 0;
  for (const auto& p : std::filesystem::directory_iterator(LKASEG_GOLDEN_DIR "/ops")) {
    if (p.path().extension() != ".safetensors") continue;
    ++on_disk;
    INFO("fixture file no entry lists: " << p.path());
    CHECK(listed.count(p.path().stem().string()) == 1);
  }
  CHECK(on_disk >= 30);
  CHECK(find_op("depthwise_conv2d") != nullptr);
  CHECK(find_op("dwconv") == nullptr);
}
