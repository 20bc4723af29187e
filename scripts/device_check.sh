#!/usr/bin/env bash
# The GPU check, for a machine with nothing but PyTorch (CUDA) in its python3: no apt, no
# network. Prepare here with scripts/device_bundle.sh, then run through the device tool as
#   run(command="scripts/device_check.sh", carry=[".deps/device"], timeout_s=480)
# It builds qalign without OpenCV against python3's torch and the carried bundle, runs the model
# parity tests and the authors' golden training step on CUDA (float32, the fixture tolerances),
# one NCCL training step through `qalign launch`, `qalign train` on CUDA with ZeRO-2 (save and
# resume; a 4-layer owl2-7b at micro-batch 32; text-only records, as this build decodes no
# images) and the benchmarks (through the Trainer). Logs and JSON go to $OUT.
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
cmake --build build-device -j"$(nproc)" --target qalign test_model_parity test_train_device > "$OUT/build.log" 2>&1 \
  || { grep -m20 -A5 'error' "$OUT/build.log"; exit 1; }
Q=build-device/tools/qalign
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" || true

stage "parity tests on CUDA"
parity() { QALIGN_TEST_DEVICE=cuda timeout 180 build-device/tests/test_model_parity > "$OUT/parity.log" 2>&1; local rc=$?; tail -3 "$OUT/parity.log"; return $rc; }
try parity parity

stage "(a) the authors' golden training step through the Trainer on CUDA, float32"
golden_step() { QALIGN_TEST_DEVICE=cuda timeout 120 build-device/tests/test_train_device > "$OUT/golden_step.log" 2>&1; local rc=$?; tail -3 "$OUT/golden_step.log"; return $rc; }
try golden-step golden_step

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

stage "the trainer on CUDA: ZeRO-2 under NCCL, saved at step 3 and resumed (bitwise against the uninterrupted run)"
zero_resume() {
  local args=(train --config tests/fixtures/train/tiny_recipe.yaml data_path="$OUT/text.json" max_steps=6 save_steps=3
              ddp_backend=nccl zero_stage=2 device=cuda)
  timeout 120 $Q launch --nproc-per-node 1 --master-port 29532 -- "$Q" "${args[@]}" output_dir="$OUT/zero_full" \
    > "$OUT/zero_full.log" 2>&1 || { tail -20 "$OUT/zero_full.log"; return 1; }
  timeout 120 $Q launch --nproc-per-node 1 --master-port 29533 -- "$Q" "${args[@]}" output_dir="$OUT/zero_resumed" \
    resume_from_checkpoint="$OUT/zero_full/checkpoint-3" > "$OUT/zero_resumed.log" 2>&1 || { tail -20 "$OUT/zero_resumed.log"; return 1; }
  grep -m1 "memory of rank 0" "$OUT/zero_full.log"
  cmp "$OUT/zero_full/model.safetensors" "$OUT/zero_resumed/model.safetensors" && echo "ZeRO-2 resume on CUDA: bitwise"
}
try zero-resume zero_resume

stage "qalign train on owl2-7b-4l, bf16, ZeRO-2, activation checkpointing, micro-batch 32, 30 steps (text-only records)"
train_4l() {
  python3 -c 'import json, sys; words = ["excellent", "good", "fair", "poor", "bad"]; json.dump([{"id": f"t{i}", "conversations": [{"from": "human", "value": "How would you rate the quality of this image? " * (1 + i % 4)}, {"from": "gpt", "value": f"The quality of the image is {words[i % 5]}."}]} for i in range(256)], sys.stdout)' > "$OUT/text256.json"
  timeout 120 $Q init --preset owl2-7b-4l --tokenizer tests/fixtures/llama2-tokenizer --out "$OUT/owl2-7b-4l" \
    > "$OUT/init_4l.log" 2>&1 || { tail -5 "$OUT/init_4l.log"; return 1; }
  timeout 240 $Q launch --nproc-per-node 1 --master-port 29534 -- "$Q" train --config configs/onealign.yaml \
    model_name_or_path="$OUT/owl2-7b-4l" data_path="$OUT/text256.json" image_folder= output_dir="$OUT/train_4l" \
    per_device_train_batch_size=32 gradient_accumulation_steps=1 max_steps=30 save_steps=1000 logging_steps=10 \
    dataloader_num_workers=4 > "$OUT/train_4l.log" 2>&1 || { tail -20 "$OUT/train_4l.log"; return 1; }
  grep -E "memory of rank|step (10|20|30)/30" "$OUT/train_4l.log"
}
try train-4l train_4l

stage "bench"
bench_to() { local file=$1; shift; timeout 150 $Q bench "$@" --json > "$file" 2> "$file.err"; local rc=$?; cat "$file"; tail -5 "$file.err"; return $rc; }
try bench-train bench_to "$OUT/bench_train_owl2-7b-4l.json" train-step --preset owl2-7b-4l --device cuda --dtype bfloat16 \
  --batch-size 32 --gradient-checkpointing --optim adamw_torch_fused
try bench-lora bench_to "$OUT/bench_train_owl2-7b_lora.json" train-step --preset owl2-7b --device cuda --dtype bfloat16 \
  --batch-size 16 --gradient-checkpointing --lora --optim adamw_torch_fused
try bench-score bench_to "$OUT/bench_score_owl2-7b.json" score --preset owl2-7b --device cuda --dtype bfloat16 --batch-sizes 1,8,64
stage "done; failed stages: ${FAILED[*]:-none}"
[ ${#FAILED[@]} -eq 0 ]
