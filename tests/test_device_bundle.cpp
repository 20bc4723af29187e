// The CPU-side half of the GPU check (scripts/device_check.sh): the bundle it carries holds every
// dependency but LibTorch, a build configured from the bundle without OpenCV uses nothing from
// this machine's system folders, and a bundle missing a piece fails at configure time naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

std::string configure(const std::string& bundle, const std::string& build, int* rc) {
  std::string out;
  const std::string torch_dir =
      "$('" + test::source_dir() +
      "/.venv/bin/python' -c 'import os, torch; print(os.path.join(torch.utils.cmake_prefix_path, \"Torch\"))')";
  *rc =
      test::run_command("cmake -G 'Unix Makefiles' -S '" + test::source_dir() + "' -B '" + build +
                            "' -DQALIGN_WITH_OPENCV=OFF -DQALIGN_DEPS_BUNDLE='" + bundle + "' -DTorch_DIR=" + torch_dir,
                        &out);
  return out;
}

}  // namespace

TEST(DeviceBundle, HoldsEveryDependencyAndConfiguresWithoutOpenCV) {
  test::ScratchDir tmp("qalign-device-bundle");
  const auto bundle = tmp.file("bundle");
  std::string out;
  ASSERT_EQ(test::run_command("'" + test::source_dir() + "/scripts/device_bundle.sh' '" + bundle + "'", &out), 0)
      << out;
  for (const auto* f :
       {"include/yaml-cpp/yaml.h", "include/nlohmann/json.hpp", "include/CLI/CLI.hpp", "include/gtest/gtest.h",
        "include/gloo/config.h", "include/sentencepiece_processor.h", "lib/libyaml-cpp.a", "lib/libgtest.a",
        "lib/libgtest_main.a", "lib/libsentencepiece.a", "lib/libsentencepiece_train.a"})
    EXPECT_TRUE(fs::exists(bundle + "/" + f)) << f;

  int rc = 0;
  out = configure(bundle, tmp.file("build"), &rc);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream cache(tmp.file("build/CMakeCache.txt"));
  std::stringstream text;
  text << cache.rdbuf();
  EXPECT_NE(text.str().find("QALIGN_SPM_PREFIX:PATH=" + bundle), std::string::npos);
  EXPECT_EQ(text.str().find("OpenCV_DIR"), std::string::npos) << "OpenCV must not be looked up";
  // The generated build lines name the bundle's includes and no system OpenCV (Makefiles, whatever
  // CMAKE_GENERATOR the caller has: flags.make holds them).
  std::string flags;
  ASSERT_EQ(test::run_command("cat '" + tmp.file("build") + "'/qalign/CMakeFiles/qalign_core.dir/flags.make", &flags),
            0);
  EXPECT_NE(flags.find(bundle + "/include"), std::string::npos) << flags;
  EXPECT_EQ(flags.find("opencv"), std::string::npos) << flags;

  ASSERT_EQ(test::run_command("bash -n '" + test::source_dir() + "/scripts/device_check.sh'", &out), 0) << out;

  fs::remove(bundle + "/lib/libyaml-cpp.a");
  out = configure(bundle, tmp.file("build2"), &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("lacks"), std::string::npos) << out;  // CMake wraps its message lines
  EXPECT_NE(out.find("lib/libyaml-cpp.a: rebuild it with scripts/device_bundle.sh"), std::string::npos) << out;
}
