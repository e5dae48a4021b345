// bench/step_profile on the emulated CUDA backend, where every runtime call is
// counted: one training step of each network at the widths the issue's
// targets are stated for (4-32; the counts do not depend on batch or size).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

namespace {

using json = nlohmann::json;

// Runs step_profile with `args`; returns its stdout line parsed.
json profile(const std::string& args) {
  const std::string cmd = std::string(LKASEG_STEP_PROFILE) + " " + args;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  REQUIRE(p);
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p.get())) out += buf.data();
  const int status = pclose(p.release());
  INFO(cmd << "\n" << out);
  REQUIRE(status == 0);
  REQUIRE(out.find('\n') == out.size() - 1);  // one line
  return json::parse(out);
}

// The phases add up to the step.
void check_phases(const json& j) {
  for (const char* k : {"launches", "host_syncs", "allocations", "op_bytes", "op_calls"}) {
    double sum = 0;
    for (const auto& [name, p] : j.at("phases").items()) sum += p.at(k).get<double>();
    INFO(k);
    CHECK(sum == j.at(std::string(k) + "_per_step").get<double>());
  }
}

}  // namespace

TEST_CASE("step_profile counts a training step exactly on the emulated backend") {
  const std::string shape = " --backend emu --widths 4,8,16,32 --batch 2 --size 8 --steps 1 --warmup 1";
  for (const char* net : {"resse_lka_unet", "unet", "attention_unet"}) {
    INFO(net);
    const json j = profile(std::string("--net ") + net + shape);
    CHECK(j.at("counts_exact").get<bool>());
    CHECK(j.at("graph_launches_per_step").get<double>() == 0);
    CHECK(j.at("launches_per_step").get<double>() > 0);
    CHECK(j.at("op_bytes_per_step").get<double>() > 0);
    check_phases(j);
  }
}

TEST_CASE("step_profile refuses what it cannot do, naming it") {
  const std::string cmd = std::string(LKASEG_STEP_PROFILE) + " --backend emu --precision bf16 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  REQUIRE(p);
  std::string out;
  std::array<char, 512> buf{};
  while (fgets(buf.data(), buf.size(), p.get())) out += buf.data();
  CHECK(pclose(p.release()) != 0);
  CHECK(out.find("--precision bf16") != std::string::npos);
}
