# Finds every dependency; LibTorch and SentencePiece come from the project's own
# .venv and .deps (scripts/setup.sh), so a plain `cmake -S . -B build` needs no flags.

set(QALIGN_PYTHON "${PROJECT_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH "Python holding the torch wheel")
if(NOT Torch_DIR)
  if(NOT EXISTS "${QALIGN_PYTHON}")
    message(FATAL_ERROR "No ${QALIGN_PYTHON}: run scripts/setup.sh first (or pass -DTorch_DIR=...)")
  endif()
  execute_process(
    COMMAND "${QALIGN_PYTHON}" -c "import torch;print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${QALIGN_PYTHON} cannot import torch: run scripts/setup.sh")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
endif()
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "8.0;9.0")  # A100, H100/H200
endif()
find_package(Torch REQUIRED)
# TorchConfig puts -D_GLIBCXX_USE_CXX11_ABI and friends in TORCH_CXX_FLAGS.
separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
add_compile_options(${_torch_flags})

find_package(Threads REQUIRED)
if(QALIGN_DEPS_BUNDLE)
  # A machine with nothing but LibTorch (the GPU machine): every other dependency comes from the
  # bundle, and only from it, so a missing piece fails here rather than resolving elsewhere.
  set(_b "${QALIGN_DEPS_BUNDLE}")
  foreach(f include/yaml-cpp/yaml.h include/nlohmann/json.hpp include/CLI/CLI.hpp include/gtest/gtest.h
            include/gloo/config.h lib/libyaml-cpp.a lib/libgtest.a lib/libgtest_main.a lib/libsentencepiece.a
            lib/libsentencepiece_train.a include/sentencepiece_processor.h)
    if(NOT EXISTS "${_b}/${f}")
      message(FATAL_ERROR "QALIGN_DEPS_BUNDLE=${_b} lacks ${f}: rebuild it with scripts/device_bundle.sh")
    endif()
  endforeach()
  add_library(yaml-cpp STATIC IMPORTED GLOBAL)
  set_target_properties(yaml-cpp PROPERTIES IMPORTED_LOCATION "${_b}/lib/libyaml-cpp.a"
                                            INTERFACE_INCLUDE_DIRECTORIES "${_b}/include")
  foreach(t nlohmann_json::nlohmann_json CLI11::CLI11)
    add_library(${t} INTERFACE IMPORTED GLOBAL)
    set_target_properties(${t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_b}/include")
  endforeach()
  add_library(GTest::gtest STATIC IMPORTED GLOBAL)
  set_target_properties(GTest::gtest PROPERTIES IMPORTED_LOCATION "${_b}/lib/libgtest.a"
                                                INTERFACE_INCLUDE_DIRECTORIES "${_b}/include"
                                                INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(GTest::gtest_main STATIC IMPORTED GLOBAL)
  set_target_properties(GTest::gtest_main PROPERTIES IMPORTED_LOCATION "${_b}/lib/libgtest_main.a"
                                                     INTERFACE_LINK_LIBRARIES GTest::gtest)
  set(GLOO_INCLUDE_DIR "${_b}/include")
  set(_spm_default "${_b}")
else()
  set(_spm_default "${PROJECT_SOURCE_DIR}/.deps/sentencepiece")
  find_package(yaml-cpp REQUIRED)
  find_package(nlohmann_json 3 REQUIRED)
  find_package(CLI11 REQUIRED)
  find_package(GTest REQUIRED)
  # c10d's ProcessGroupGloo.hpp includes gloo's headers, which the wheel lacks; the code is in
  # libtorch_cpu.so, so only the headers are used (never link Debian's libgloo).
  find_path(GLOO_INCLUDE_DIR gloo/config.h)
  if(NOT GLOO_INCLUDE_DIR)
    message(FATAL_ERROR "No gloo headers (gloo/config.h): run scripts/setup.sh (Debian package libgloo-dev)")
  endif()
endif()
if(QALIGN_WITH_OPENCV AND QALIGN_DEPS_BUNDLE)
  # The bundle's static OpenCV (scripts/device_bundle.sh --opencv), never a system one.
  if(NOT EXISTS "${QALIGN_DEPS_BUNDLE}/opencv/lib/cmake/opencv4/OpenCVConfig.cmake")
    message(FATAL_ERROR "QALIGN_DEPS_BUNDLE=${QALIGN_DEPS_BUNDLE} lacks opencv/: rebuild it with "
                        "scripts/device_bundle.sh --opencv, or configure with -DQALIGN_WITH_OPENCV=OFF")
  endif()
  find_package(OpenCV REQUIRED COMPONENTS core imgcodecs imgproc videoio
               PATHS "${QALIGN_DEPS_BUNDLE}/opencv/lib/cmake/opencv4" NO_DEFAULT_PATH)
elseif(QALIGN_WITH_OPENCV)
  find_package(OpenCV REQUIRED COMPONENTS core imgcodecs imgproc videoio)
endif()

set(QALIGN_SPM_PREFIX "${_spm_default}" CACHE PATH "Static SentencePiece")
if(NOT EXISTS "${QALIGN_SPM_PREFIX}/lib/libsentencepiece_train.a")
  message(FATAL_ERROR "No static SentencePiece in ${QALIGN_SPM_PREFIX}: run scripts/setup.sh")
endif()
add_library(sentencepiece_static STATIC IMPORTED GLOBAL)
set_target_properties(sentencepiece_static PROPERTIES
  IMPORTED_LOCATION "${QALIGN_SPM_PREFIX}/lib/libsentencepiece.a"
  INTERFACE_INCLUDE_DIRECTORIES "${QALIGN_SPM_PREFIX}/include"
  INTERFACE_LINK_OPTIONS "-Wl,--exclude-libs,libsentencepiece.a")
# The trainer, for tokenizers trained on prompts (the demo); it needs the processor library.
add_library(sentencepiece_train_static STATIC IMPORTED GLOBAL)
set_target_properties(sentencepiece_train_static PROPERTIES
  IMPORTED_LOCATION "${QALIGN_SPM_PREFIX}/lib/libsentencepiece_train.a"
  INTERFACE_LINK_LIBRARIES sentencepiece_static
  INTERFACE_LINK_OPTIONS "-Wl,--exclude-libs,libsentencepiece_train.a")

# One precompiled header for LibTorch, shared by every target that includes it.
add_library(qalign_pch INTERFACE)
target_link_libraries(qalign_pch INTERFACE ${TORCH_LIBRARIES})

# The wheel's libtorch.so exports its own (GCC 13) std::filesystem, whose remove_all crashes
# against Debian's libstdc++; listing libstdc++ first makes every binary resolve to the system's.
add_link_options(LINKER:--push-state,--no-as-needed -lstdc++ LINKER:--pop-state)
