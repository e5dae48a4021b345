// Catch2 runner for every test binary: turns on NaN-poisoning of new host
// buffers first, so ops that leave output elements unwritten fail loudly.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "engine/tensor.h"

int main(int argc, char** argv) {
  lk::set_poison_allocations(true);
  return Catch::Session().run(argc, argv);
}
