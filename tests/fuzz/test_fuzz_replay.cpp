// Every fuzz target (tests/fuzz/fuzz_targets.h) on its seeds and on
// deterministic mutations of them: bit flips, bytes set to boundary values,
// 16/32/64-bit fields overwritten with extreme numbers, truncations,
// extensions and spliced chunks. A reader must accept or refuse each input
// with a std::exception whose message names the file; anything else fails.
// The open-ended, sanitized version of this is tools/fuzz.sh (libFuzzer).
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <string>

#include "tests/fuzz/fuzz_targets.h"

using namespace lk::fuzz;

namespace {

struct XorShift {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

std::string mutate(std::string in, XorShift& r) {
  const int edits = 1 + static_cast<int>(r.below(4));
  for (int e = 0; e < edits; ++e) {
    if (in.empty()) {
      in.push_back(static_cast<char>(r.next()));
      continue;
    }
    const size_t at = r.below(in.size());
    switch (r.below(8)) {
      case 0: in[at] = static_cast<char>(in[at] ^ (1 << r.below(8))); break;  // bit flip
      case 1: {
        static const uint8_t v[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE};
        in[at] = static_cast<char>(v[r.below(sizeof v)]);
        break;
      }
      case 2: {  // a 16/32/64-bit field set to an extreme value
        static const uint64_t v[] = {0, ~0ull, 0x7FFFFFFFull, 0x80000000ull, 0xFFFFull, 0x7FFFFFFFFFFFFFFFull, 1ull << 40};
        const size_t w = size_t{2} << r.below(3);
        const uint64_t x = v[r.below(sizeof v / sizeof v[0])];
        std::memcpy(in.data() + at, &x, std::min(w, in.size() - at));
        break;
      }
      case 3: in.resize(r.below(in.size())); break;  // truncation
      case 4: in.append(r.below(64) + 1, static_cast<char>(r.next())); break;
      case 5: {  // splice a chunk of itself elsewhere
        const size_t from = r.below(in.size()), len = 1 + r.below(std::min<size_t>(32, in.size() - from));
        const std::string chunk = in.substr(from, len);
        in.replace(at, std::min(len, in.size() - at), chunk);
        break;
      }
      case 6: in.erase(at, 1 + r.below(16)); break;
      default: in.insert(at, 1 + r.below(8), static_cast<char>(r.next())); break;
    }
  }
  return in;
}

struct Outcome {
  int accepted = 0, refused = 0;
  std::string why;
};

Outcome run_one(const Target& t, const std::string& bytes) {
  Outcome o;
  try {
    t.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    o.accepted = 1;
  } catch (const std::logic_error& e) {
    // The target's own consistency checks (or a reader's logic_error):
    // either way a bug. std::invalid_argument is a logic_error the readers
    // use for refusals, so let those through.
    if (!dynamic_cast<const std::invalid_argument*>(&e)) FAIL(t.name << ": " << e.what());
    o.refused = 1;
  } catch (const std::exception& e) {
    CHECK(std::strlen(e.what()) > 0);
    o.refused = 1;
    o.why = e.what();
  }
  return o;
}

}  // namespace

TEST_CASE("fuzz replay: every reader accepts its seeds and refuses or accepts mutations cleanly", "[fuzz]") {
  const int kMutations = 1500;
  for (const Target& t : targets()) {
    INFO("target " << t.name);
    const std::vector<std::string> seeds = t.seeds();
    REQUIRE_FALSE(seeds.empty());
    for (const std::string& s : seeds) {
      const Outcome o = run_one(t, s);
      CHECK(o.accepted == 1);
      CHECK(o.why == "");
    }
    CHECK(run_one(t, "").refused == 1);
    XorShift r{0x9E3779B97F4A7C15ull ^ std::hash<std::string>{}(t.name)};
    Outcome sum;
    for (int i = 0; i < kMutations; ++i) {
      const Outcome o = run_one(t, mutate(seeds[r.below(seeds.size())], r));
      sum.accepted += o.accepted;
      sum.refused += o.refused;
    }
    // Most mutations must be caught (checksums, validation): a reader that
    // accepts nearly everything is not validating.
    CHECK(sum.refused > kMutations / 4);
    WARN(t.name << ": " << sum.accepted << " mutations accepted, " << sum.refused << " refused");
  }
  std::filesystem::remove_all(scratch_dir());
}
