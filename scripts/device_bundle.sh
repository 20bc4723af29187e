#!/usr/bin/env bash
# Gathers every dependency but LibTorch — headers and static libraries — into one folder that a
# machine with only PyTorch (the GPU machine: no apt, no network) builds against with
# -DQALIGN_DEPS_BUNDLE=DIR -DQALIGN_WITH_OPENCV=OFF. Run after scripts/setup.sh.
# Usage: scripts/device_bundle.sh [OUT]   (default .deps/device)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.deps/device}
LIB=/usr/lib/$(gcc -print-multiarch)
SPM=.deps/sentencepiece
rm -rf "$OUT"
mkdir -p "$OUT/include" "$OUT/lib"
for d in yaml-cpp nlohmann CLI gtest gloo; do
  [ -d "/usr/include/$d" ] || { echo "device_bundle: /usr/include/$d missing; run scripts/setup.sh" >&2; exit 1; }
  cp -r "/usr/include/$d" "$OUT/include/"
done
for a in "$LIB/libyaml-cpp.a" "$LIB/libgtest.a" "$LIB/libgtest_main.a" "$SPM/lib/libsentencepiece.a" \
         "$SPM/lib/libsentencepiece_train.a"; do
  [ -f "$a" ] || { echo "device_bundle: $a missing; run scripts/setup.sh" >&2; exit 1; }
  cp "$a" "$OUT/lib/"
done
cp "$SPM"/include/*.h "$OUT/include/"
echo "device_bundle: $(du -sh "$OUT" | cut -f1) in $OUT"
