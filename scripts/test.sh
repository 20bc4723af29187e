#!/usr/bin/env bash
# Sets up (idempotent), builds and runs all tests; ctest prints each test it ran.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SECONDS=0
# Ninja for a new build folder (it compiles across the layers in parallel); an existing one keeps
# the generator it was made with.
export CMAKE_GENERATOR=${CMAKE_GENERATOR:-Ninja}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
echo "[test] configured in ${SECONDS}s"
cmake --build build -j"$(nproc)"
echo "[test] built in ${SECONDS}s"
cd build && ctest --output-on-failure -j"$(nproc)"
echo "[test] tested in ${SECONDS}s"
