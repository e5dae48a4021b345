#include "tests/support/op_tests.h"

#include <catch2/catch.hpp>

#include <deque>

namespace lk::test {

namespace {

class OpTest final : public Catch::ITestInvoker {
 public:
  OpTest(const OpEntry& e, std::function<void(const OpEntry&)> body) : entry_(e), body_(std::move(body)) {}
  void invoke() const override { body_(entry_); }

 private:
  const OpEntry& entry_;  // op_table() lives for the process
  std::function<void(const OpEntry&)> body_;
};

}  // namespace

bool register_op_tests(const std::string& suite, const std::string& tags,
                       const std::function<bool(const OpEntry&)>& want,
                       const std::function<void(const OpEntry&)>& body) {
  static std::deque<Catch::AutoReg> registrations;
  for (const OpEntry& e : op_table()) {
    if (!want(e)) continue;
    const std::string name = suite + " " + e.name;  // Catch copies the name and tags
    registrations.emplace_back(new OpTest(e, body), CATCH_INTERNAL_LINEINFO, Catch::StringRef(),
                               Catch::NameAndTags{Catch::StringRef(name), Catch::StringRef(tags)});
  }
  return true;
}

std::string fixture_path(const std::string& fixture) {
  return std::string(LKASEG_GOLDEN_DIR) + "/ops/" + fixture + ".safetensors";
}

}  // namespace lk::test
