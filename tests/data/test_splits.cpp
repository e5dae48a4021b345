// Case selection and folds (data/splits.h): determinism, SPEC's 204-case
// example, fold structure, the JSON round trip and every validation error.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <unistd.h>

#include "data/splits.h"

using namespace lk::data;
using Catch::Matchers::Contains;

namespace {

std::vector<std::string> ids(int n) {
  std::vector<std::string> v;
  char buf[32];
  for (int i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "BraTS2021_%05d", i);
    v.emplace_back(buf);
  }
  return v;
}

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("lkaseg_test_splits_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

void check_structure(const Split& s) {
  std::set<std::string> seen;
  for (const Fold& f : s.folds) {
    CHECK(f.train.size() + f.val.size() == s.selected.size());
    for (const auto& id : f.val) CHECK(seen.insert(id).second);  // validation sets disjoint
    std::set<std::string> all(f.train.begin(), f.train.end());
    all.insert(f.val.begin(), f.val.end());
    CHECK(all == std::set<std::string>(s.selected.begin(), s.selected.end()));
  }
  CHECK(seen == std::set<std::string>(s.selected.begin(), s.selected.end()));  // and covering
}

// Removes this process's temporary folder when a test ends.
struct CleanUp {
  ~CleanUp() {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::temp_directory_path() / ("lkaseg_test_splits_" + std::to_string(::getpid())), ec);
  }
};

}  // namespace

TEST_CASE("make_split is deterministic and independent of input order", "[data]") {
  const CleanUp cleanup;
  const auto v = ids(300);
  const Split a = make_split(v), b = make_split(v);
  auto r = v;
  std::reverse(r.begin(), r.end());
  const Split c = make_split(r);
  CHECK(a.selected == b.selected);
  CHECK(a.selected == c.selected);
  for (size_t k = 0; k < a.folds.size(); ++k) CHECK(a.folds[k].val == c.folds[k].val);
  CHECK(make_split(v, 0.1, 43).selected != a.selected);
  CHECK(a.selected.size() == 30);
  check_structure(a);
}

TEST_CASE("make_split pins the mt19937_64 + Fisher-Yates draw", "[data]") {
  const CleanUp cleanup;
  // Golden values (recorded from this implementation, a regression pin): any change to the draw (or a library that shuffles
  // differently) changes every experiment's case list.
  const Split s = make_split(ids(20), 0.5, 42, 5);
  REQUIRE(s.selected.size() == 10);
  INFO(nlohmann::json(s.selected).dump());
  CHECK(nlohmann::json(s.selected).dump() == R"(["BraTS2021_00000","BraTS2021_00001","BraTS2021_00002","BraTS2021_00007","BraTS2021_00011","BraTS2021_00013","BraTS2021_00014","BraTS2021_00015","BraTS2021_00016","BraTS2021_00019"])");
}

TEST_CASE("SPEC's example: 2040 cases, 10% drawn, 5 folds of 163/41", "[data]") {
  const CleanUp cleanup;
  const Split s = make_split(ids(2040));
  REQUIRE(s.selected.size() == 204);
  REQUIRE(s.folds.size() == 5);
  std::vector<size_t> val, train;
  for (const Fold& f : s.folds) val.push_back(f.val.size()), train.push_back(f.train.size());
  CHECK(val == std::vector<size_t>{41, 41, 41, 41, 40});
  CHECK(train == std::vector<size_t>{163, 163, 163, 163, 164});
  check_structure(s);
}

TEST_CASE("make_split takes at least one case per fold, and refuses too few cases", "[data]") {
  const CleanUp cleanup;
  const Split s = make_split(ids(12));  // 10% of 12 is 1 < 5 folds
  CHECK(s.selected.size() == 5);
  for (const Fold& f : s.folds) CHECK(f.val.size() == 1);
  check_structure(s);
  CHECK(make_split(ids(5)).selected.size() == 5);
  CHECK_THROWS_WITH(make_split(ids(4)), Contains("4 cases") && Contains("5 folds"));
  CHECK_THROWS_WITH(make_split({"a", "b", "a", "c", "d", "e"}), Contains("'a'") && Contains("twice"));
  CHECK_THROWS(make_split(ids(10), 0.0));
  CHECK_THROWS(make_split(ids(10), 0.1, 42, 1));
}

TEST_CASE("split JSON round trip", "[data]") {
  const CleanUp cleanup;
  const auto v = ids(100);
  const Split s = make_split(v, 0.2, 7, 4);
  const std::string path = temp_path("split.json");
  write_split_json(path, s);
  const Split r = read_split_json(path, v);
  CHECK(r.seed == 7);
  CHECK(r.fraction == 0.2);
  CHECK(r.selected == s.selected);
  REQUIRE(r.folds.size() == 4);
  for (size_t k = 0; k < 4; ++k) {
    CHECK(r.folds[k].train == s.folds[k].train);
    CHECK(r.folds[k].val == s.folds[k].val);
  }
  // No temporary left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
    files += e.path().filename().string().rfind("split.json", 0) == 0;
  CHECK(files == 1);
}

TEST_CASE("read_split_json honours an edited file but validates it", "[data]") {
  const CleanUp cleanup;
  const auto v = ids(50);
  const std::string path = temp_path("edited.json");
  const nlohmann::json good = {{"version", 1},
                               {"seed", 42},
                               {"fraction", 0.1},
                               {"selected", {"BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003"}},
                               {"folds",
                                {{{"train", {"BraTS2021_00002", "BraTS2021_00003"}}, {"val", {"BraTS2021_00001"}}},
                                 {{"train", {"BraTS2021_00001"}}, {"val", {"BraTS2021_00002", "BraTS2021_00003"}}}}}};
  write_text(path, good.dump());
  const Split s = read_split_json(path, v);
  CHECK(s.folds.size() == 2);
  CHECK(s.folds[1].val.size() == 2);

  auto expect = [&](const nlohmann::json& j, const std::string& what) {
    write_text(path, j.dump());
    CHECK_THROWS_WITH(read_split_json(path, v), Contains(path) && Contains(what));
  };
  nlohmann::json j = good;
  j["selected"].push_back("BraTS2021_99999");
  expect(j, "'BraTS2021_99999' is not among the available cases");

  j = good;
  j["folds"][1]["val"] = {"BraTS2021_00001", "BraTS2021_00002"};
  j["folds"][1]["train"] = {"BraTS2021_00003"};
  expect(j, "validation sets of folds 0 and 1");

  j = good;
  j["folds"][0]["val"] = nlohmann::json::array();
  expect(j, "fold 0 has an empty validation set");

  j = good;
  j["folds"] = nlohmann::json::array();
  expect(j, "\"folds\" must be a non-empty array");

  j = good;
  j["folds"][0]["train"].push_back("BraTS2021_00001");
  expect(j, "in both its training and validation sets");

  j = good;
  j["folds"][0]["train"].push_back("BraTS2021_00010");
  expect(j, "not in \"selected\"");

  j = good;
  j["selected"].push_back("BraTS2021_00001");
  expect(j, "twice");

  j = good;
  j["version"] = 2;
  expect(j, "unsupported version");

  j = good;
  j.erase("folds");
  expect(j, "missing key \"folds\"");

  write_text(path, "{\"version\": 1, \"selected\": [");
  CHECK_THROWS_WITH(read_split_json(path, v), Contains(path) && Contains("not valid JSON"));
  CHECK_THROWS_WITH(read_split_json(temp_path("absent.json"), v), Contains("absent.json") && Contains("cannot open"));
}
