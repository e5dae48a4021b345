// util/dice.h: the one Dice formula the trainer, eval and the demo share.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "util/dice.h"

TEST_CASE("Dice of two label maps, class by class", "[dice]") {
  const std::vector<int32_t> pred{0, 1, 1, 2, 2, 2, 0, 0};
  const std::vector<uint8_t> truth{0, 1, 0, 2, 2, 0, 0, 3};
  const lk::Overlap one = lk::class_overlap(pred.data(), truth.data(), pred.size(), 1);
  CHECK(one.pred == 2);
  CHECK(one.truth == 1);
  CHECK(one.both == 1);
  CHECK(one.dice() == Approx(2.0 / 3.0).epsilon(0));
  CHECK(lk::class_overlap(pred.data(), truth.data(), pred.size(), 2).dice() == Approx(0.8).epsilon(0));
  // Present in the truth only, in neither.
  CHECK(lk::class_overlap(pred.data(), truth.data(), pred.size(), 3).dice() == 0.0);
  CHECK(lk::class_overlap(pred.data(), truth.data(), pred.size(), 4).dice() == 1.0);
  CHECK(lk::Overlap{}.dice() == 1.0);
  CHECK(lk::Overlap{5, 0, 0}.dice() == 0.0);
}
