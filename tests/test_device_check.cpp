// scripts/device_check.sh in its dry mode (QALIGN_DEVICE_DRY=1): the GPU check's stages on this
// CPU with the tiny model and this build. The GPU machine returns at most 8 files of at most
// 16 MiB, so the check must leave at most 4 there, with summary.json holding every stage.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/support/fixtures.h"
#include "tests/support/goldens.h"

using namespace qalign;
namespace fs = std::filesystem;

TEST(DeviceCheck, DryRunPassesEveryStageAndLeavesAtMostFourSmallFiles) {
  test::ScratchDir out("qalign_device_out"), scratch("qalign_device_scratch");
  const auto build = fs::path(test::qalign_binary()).parent_path().parent_path().string();
  std::string log;
  // The budget is the GPU machine's; on this shared CPU the dry stages alone may take longer.
  const int rc = test::run_command(
      "cd '" + test::source_dir() + "' && QALIGN_DEVICE_DRY=1 QALIGN_DEVICE_BUDGET_S=900 QALIGN_BUILD_DIR='" + build +
          "' OUT='" + out.path() + "' QALIGN_DEVICE_SCRATCH='" + scratch.path() + "' scripts/device_check.sh",
      &log);
  EXPECT_EQ(rc, 0) << log;
  std::set<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(out.path())) {
    files.insert(e.path().filename().string());
    if (e.is_regular_file()) EXPECT_LT(fs::file_size(e.path()), uintmax_t{16} << 20) << e.path();
  }
  EXPECT_LE(files.size(), 4u) << log;
  EXPECT_EQ(files, (std::set<std::string>{"summary.json", "device_check.log", "bench.json"})) << log;
  const auto summary = test::read_json(out.file("summary.json"));
  EXPECT_TRUE(summary.at("dry").get<bool>());
  EXPECT_TRUE(summary.at("passed").get<bool>()) << summary.dump(1);
  std::vector<std::string> names;
  for (const auto& s : summary.at("stages")) {
    names.push_back(s.at("name").get<std::string>());
    EXPECT_EQ(s.at("status"), "pass") << s.dump();
  }
  EXPECT_EQ(names, (std::vector<std::string>{"build", "parity", "golden-step", "bench-score", "bench-quantize", "train",
                                             "plan", "zero-resume", "decode", "bench-train", "zero3-offload"}));
  for (const auto& s : summary.at("stages"))
    if (s.at("name") == "train") EXPECT_GT(s.at("figures").at("ms_per_step").get<double>(), 0) << s.dump();
  // Images/s and peak memory of each quantised mode, beside the unquantised run's.
  for (const auto& s : summary.at("stages"))
    if (s.at("name") == "bench-quantize")
      for (const char* key : {"int8_images_per_s_batch2", "int4_images_per_s_batch1", "int8_peak_reserved",
                              "int4_peak_allocated", "float32_images_per_s_batch2"})
        EXPECT_GT(s.at("figures").at(key).get<double>(), 0) << key << " " << s.dump();
  const auto bench = test::read_json(out.file("bench.json"));
  for (const char* b : {"bench-score", "bench-quantize-int8", "bench-quantize-int4", "bench-train", "zero3-offload"})
    EXPECT_TRUE(bench.contains(b)) << b;
}
