#!/usr/bin/env bash
# Device check for a GPU machine: builds qalign and runs one training step of the tiny fixture
# as a one-process NCCL job (`qalign launch`), then checks that NCCL was used and the step ran.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target qalign -j"$(nproc)"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
build/tools/qalign launch --nproc-per-node 1 --master-port 29531 -- qalign train \
  --config tests/fixtures/train/tiny_recipe.yaml output_dir="$out" max_steps=1 save_steps=1000 \
  ddp_backend=nccl zero_stage=0 2>&1 | tee "$out/log"
grep -q "with nccl" "$out/log" && grep -Eq '"step": *1[,}]' "$out/metrics.jsonl"
echo "NCCL one-process training step: OK"
