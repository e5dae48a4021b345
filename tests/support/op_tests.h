// Test cases generated from the op table (op_table.h): one Catch2 test case
// "<suite> <op>" per entry that `want` accepts, so ctest lists, runs in
// parallel and reports each op on its own.
//   [[maybe_unused]] const bool registered = lk::test::register_op_tests(
//       "golden", "[golden]", [](const OpEntry& e) { return !e.fixtures.empty(); }, run_golden);
// Call it from a namespace-scope initializer of the test file.
#pragma once

#include <functional>
#include <string>

#include "tests/support/op_table.h"

namespace lk::test {

bool register_op_tests(const std::string& suite, const std::string& tags,
                       const std::function<bool(const OpEntry&)>& want,
                       const std::function<void(const OpEntry&)>& body);

// The fixture file of one of an entry's fixtures (tests/golden/ops).
std::string fixture_path(const std::string& fixture);

}  // namespace lk::test
