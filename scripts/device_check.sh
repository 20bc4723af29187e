#!/usr/bin/env bash
# The GPU check, for a machine with nothing but PyTorch (CUDA) in its python3: no apt, no
# network. Prepare here with scripts/device_bundle.sh, then run through the device tool as
#   run(command="scripts/device_check.sh", carry=[".deps/device"], timeout_s=480)
# It builds qalign without OpenCV against python3's torch and the carried bundle, runs the model
# parity tests on CUDA (float32, the fixture tolerances), one NCCL training step through
# `qalign launch`, and the benchmarks the performance issue asks for. Logs and JSON go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/device}
BUNDLE=${QALIGN_DEPS_BUNDLE:-$PWD/.deps/device}
mkdir -p "$OUT"
SECONDS=0
stage() { echo "[device_check ${SECONDS}s] $*"; }

# A failed stage is recorded and the next one still runs: a machine is lent for minutes only.
FAILED=()
try() { local name=$1; shift; "$@" || { echo "[device_check] stage failed: $name"; FAILED+=("$name"); }; }
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"

stage "configure"
TORCH_DIR=$(python3 -c 'import os, torch; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DQALIGN_WITH_OPENCV=OFF \
  -DQALIGN_DEPS_BUNDLE="$BUNDLE" -DTorch_DIR="$TORCH_DIR" > "$OUT/configure.log" 2>&1 \
  || { tail -30 "$OUT/configure.log"; exit 1; }
stage "build"
cmake --build build-device -j"$(nproc)" --target qalign test_model_parity > "$OUT/build.log" 2>&1 \
  || { grep -m20 -A5 'error' "$OUT/build.log"; exit 1; }
Q=build-device/tools/qalign
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" || true

stage "parity tests on CUDA"
parity() { QALIGN_TEST_DEVICE=cuda timeout 180 build-device/tests/test_model_parity > "$OUT/parity.log" 2>&1; local rc=$?; tail -3 "$OUT/parity.log"; return $rc; }
try parity parity

stage "one NCCL training step (text-only records: this build decodes no images)"
cat > "$OUT/text.json" <<'JSON'
[{"id": "t0", "conversations": [{"from": "human", "value": "Rate the quality."}, {"from": "gpt", "value": "The quality of the image is good."}]},
 {"id": "t1", "conversations": [{"from": "human", "value": "Rate the quality."}, {"from": "gpt", "value": "The quality of the image is poor."}]}]
JSON
nccl_step() {
  timeout 120 $Q launch --nproc-per-node 1 --master-port 29531 -- "$Q" train --config tests/fixtures/train/tiny_recipe.yaml \
    data_path="$OUT/text.json" output_dir="$OUT/nccl" max_steps=1 save_steps=1000 ddp_backend=nccl zero_stage=0 \
    > "$OUT/nccl.log" 2>&1 || { tail -20 "$OUT/nccl.log"; return 1; }
  grep -q "with nccl" "$OUT/nccl.log" && grep -Eq '"step": *1[,}]' "$OUT/nccl/metrics.jsonl" && echo "NCCL training step: OK"
}
try nccl nccl_step

stage "bench"
bench_to() { local file=$1; shift; timeout 150 $Q bench "$@" --json > "$file" 2> "$file.err"; local rc=$?; cat "$file"; tail -5 "$file.err"; return $rc; }
try bench-train bench_to "$OUT/bench_train_owl2-7b-4l.json" train-step --preset owl2-7b-4l --device cuda --dtype bfloat16 \
  --batch-size 8 --optim adamw_torch_fused
try bench-score bench_to "$OUT/bench_score_owl2-7b.json" score --preset owl2-7b --device cuda --dtype bfloat16 --batch-sizes 1,8,64
stage "done; failed stages: ${FAILED[*]:-none}"
[ ${#FAILED[@]} -eq 0 ]
