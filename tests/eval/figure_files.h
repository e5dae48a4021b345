// What the figure tests share (test_figures.cpp, test_figures_cli.cpp):
// a PNG decoded back with stb_image, text files, and log.jsonl lines in the
// trainer's format (train/run_log.h) for the training curves.
#pragma once

#include <string>

#include "eval/raster.h"

namespace lk::test {

// The PNG at `path` as RGB (a test failure when stb_image cannot read it).
eval::Image decode_png(const std::string& path);
void write_text(const std::string& path, const std::string& s);
// One epoch line of log.jsonl; `val` is the validation object's JSON, if any.
std::string log_line(int epoch, double loss, const char* val = nullptr);
inline constexpr const char* kVal5 = "{\"dice_ncr\": 0.5, \"dice_et\": 0.25, \"dice_ed\": 0.75, \"mean\": 0.5, \"cases\": 2}";
inline constexpr const char* kVal6 = "{\"dice_ncr\": 0.6, \"dice_et\": 0.3, \"dice_ed\": 0.9, \"mean\": 0.6, \"cases\": 2}";

}  // namespace lk::test
