#!/usr/bin/env bash
# README command (a): set up, build, and run the main job on its built-in default: score the
# bundled photographs and video clip with the bundled test model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target qalign
build/tools/qalign score --model tests/fixtures/qalign-448/model --batch-size 3 tests/fixtures/qalign-448/inputs
