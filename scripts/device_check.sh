#!/usr/bin/env bash
# The GPU check, for a machine with nothing but PyTorch (CUDA) in its python3: no apt, no
# network (README, "Checking a GPU machine"). Prepare here with scripts/device_bundle.sh --opencv,
# copy the tree with .deps/device there and run it; through this project's device tool that is
#   run(command="scripts/device_check.sh", carry=[".deps/device"], timeout_s=480)
# It builds qalign against python3's torch and the carried bundle (with the bundle's static OpenCV
# when it has one, else without decoding), checks that build's decoding against the authors'
# pixels, runs the model parity tests and the authors' golden training step on CUDA (float32, the
# fixture tolerances), one NCCL training step through `qalign launch`, `qalign train` on CUDA
# with ZeRO-2 (save and resume; a 4-layer owl2-7b at micro-batch 32 on the bundle's photographs,
# or on text-only records without OpenCV), the benchmarks (through the Trainer), ZeRO-3 with the
# optimizer on the host for the deepest owl2-7b-<L>l that `qalign plan` fits on this machine, and
# the plan's figures beside the measured ones. Logs and JSON go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/device}
BUNDLE=${QALIGN_DEPS_BUNDLE:-$PWD/.deps/device}
mkdir -p "$OUT"
# qalign refuses to train or init over an earlier run's folders; a rerun here starts them afresh.
rm -rf "$OUT/nccl" "$OUT/zero_full" "$OUT/zero_resumed" "$OUT/owl2-7b-4l" "$OUT/train_4l"
SECONDS=0
stage() { echo "[device_check ${SECONDS}s] $*"; }

# A failed stage is recorded and the next one still runs: a machine is lent for minutes only.
FAILED=()
try() { local name=$1; shift; "$@" || { echo "[device_check] stage failed: $name"; FAILED+=("$name"); }; }
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"

OPENCV=OFF
TARGETS=(qalign qalign_tests)
if [ -f "$BUNDLE/opencv/lib/cmake/opencv4/OpenCVConfig.cmake" ]; then OPENCV=ON; fi
T=build-device/tests/qalign_tests  # every test file in one executable; each stage picks its suites
stage "configure (OpenCV $OPENCV)"
TORCH_DIR=$(python3 -c 'import os, torch; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DQALIGN_WITH_OPENCV=$OPENCV \
  -DQALIGN_DEPS_BUNDLE="$BUNDLE" -DTorch_DIR="$TORCH_DIR" > "$OUT/configure.log" 2>&1 \
  || { tail -30 "$OUT/configure.log"; exit 1; }
stage "build"
cmake --build build-device -j"$(nproc)" --target "${TARGETS[@]}" > "$OUT/build.log" 2>&1 \
  || { grep -m20 -A5 'error' "$OUT/build.log"; exit 1; }
Q=build-device/tools/qalign
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" || true

if [ $OPENCV = ON ]; then
  stage "decoding with the bundle's OpenCV against the authors' pixels"
  decode() { timeout 120 $T --gtest_filter='DecodeImage.*:ExpandToSquare.*:ImplicitPadding.*:IsVideoPath.*:*Photo448*:PilResize.*:Preprocess.*:TinyImages.*' > "$OUT/decode.log" 2>&1; local rc=$?; tail -3 "$OUT/decode.log"; return $rc; }
  try decode decode
fi

stage "parity tests on CUDA"
parity() { QALIGN_TEST_DEVICE=cuda timeout 180 $T --gtest_filter='*ModelParity*' > "$OUT/parity.log" 2>&1; local rc=$?; tail -3 "$OUT/parity.log"; return $rc; }
try parity parity

stage "(a) the authors' golden training step through the Trainer on CUDA, float32"
golden_step() { QALIGN_TEST_DEVICE=cuda timeout 120 $T --gtest_filter='TrainGoldenOnDevice.*' > "$OUT/golden_step.log" 2>&1; local rc=$?; grep "\[sdpa\]" "$OUT/golden_step.log"; tail -3 "$OUT/golden_step.log"; return $rc; }
try golden-step golden_step

stage "one NCCL training step (text-only records)"
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

stage "qalign train on owl2-7b-4l, bf16, ZeRO-2, activation checkpointing, micro-batch 32, 30 steps"
train_4l() {
  # Records over the bundle's photographs and the fixtures' (decoded by the loader's workers every
  # step), or text-only ones where this build has no OpenCV.
  local images=() folder=""
  if [ $OPENCV = ON ]; then
    folder="$OUT/photos"
    mkdir -p "$OUT/photos"
    cp "$BUNDLE"/photos/*.jpg "$OUT/photos/"
    for f in tests/fixtures/qalign-448/inputs/*.{jpg,png} tests/fixtures/qalign-tiny/inputs/*.{jpg,png}; do
      [ -e "$OUT/photos/${f##*/}" ] || cp "$f" "$OUT/photos/"  # the bundle has baboon and building too
    done
    images=("$OUT"/photos/*)
  fi
  python3 - "$OUT/train256.json" "${images[@]##*/}" <<'PY'
import json, sys
out, images = sys.argv[1], sys.argv[2:]
words = ["excellent", "good", "fair", "poor", "bad"]
records = []
for i in range(256):
    r = {"id": f"r{i}", "conversations": [
        {"from": "human", "value": "How would you rate the quality of this image?" + ("\n<|image|>" if images else " " * (i % 4))},
        {"from": "gpt", "value": f"The quality of the image is {words[i % 5]}."}]}
    if images:
        r["image"] = images[i % len(images)]
    records.append(r)
json.dump(records, open(out, "w"))
PY
  echo "training records: 256 over ${#images[@]} photographs"
  timeout 120 $Q init --preset owl2-7b-4l --tokenizer tests/fixtures/llama2-tokenizer --out "$OUT/owl2-7b-4l" \
    > "$OUT/init_4l.log" 2>&1 || { tail -5 "$OUT/init_4l.log"; return 1; }
  timeout 240 $Q launch --nproc-per-node 1 --master-port 29534 -- "$Q" train --config configs/onealign.yaml \
    model_name_or_path="$OUT/owl2-7b-4l" data_path="$OUT/train256.json" image_folder="$folder" output_dir="$OUT/train_4l" \
    per_device_train_batch_size=32 gradient_accumulation_steps=1 max_steps=30 save_steps=1000 logging_steps=10 \
    dataloader_num_workers=8 > "$OUT/train_4l.log" 2>&1 || { tail -20 "$OUT/train_4l.log"; return 1; }
  grep -E "memory of rank|step (10|20|30)/30" "$OUT/train_4l.log"
  # The loader's wait beside the step's time: the GPU must not wait for input.
  tail -1 "$OUT/train_4l/metrics.jsonl"
}
try train-4l train_4l

stage "bench"
bench_to() { local file=$1; shift; timeout 150 $Q bench "$@" --json > "$file" 2> "$file.err"; local rc=$?; cat "$file"; tail -5 "$file.err"; return $rc; }
try bench-train bench_to "$OUT/bench_train_owl2-7b-4l.json" train-step --preset owl2-7b-4l --device cuda --dtype bfloat16 \
  --batch-size 32 --gradient-checkpointing --optim adamw_torch_fused
try bench-lora bench_to "$OUT/bench_train_owl2-7b_lora.json" train-step --preset owl2-7b --device cuda --dtype bfloat16 \
  --batch-size 16 --gradient-checkpointing --lora --optim adamw_torch_fused
try bench-score bench_to "$OUT/bench_score_owl2-7b.json" score --preset owl2-7b --device cuda --dtype bfloat16 --batch-sizes 1,8,64
stage "(e) ZeRO-3 with the optimizer on the host: the deepest owl2-7b-<L>l the plan fits on this GPU and host, micro-batch 8"
zero3_offload() {
  local host_bytes layers=0 plan_json
  host_bytes=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 1024 ))
  for L in 32 28 24 20 16 12 8 4; do
    plan_json=$($Q plan --config configs/onealign.yaml --preset "owl2-7b-${L}l" --nproc-per-node 1 --json \
      zero_stage=3 offload_optimizer=cpu per_device_train_batch_size=8 gradient_checkpointing=true model_max_length=96 2>/dev/null) || continue
    if python3 -c 'import json, sys; p = json.loads(sys.argv[1]); sys.exit(0 if p["fits"] and p["host_per_rank"]["total"] < 0.8 * int(sys.argv[2]) else 1)' \
         "$plan_json" "$host_bytes"; then layers=$L; break; fi
  done
  [ "$layers" -gt 0 ] || { echo "the plan fits no owl2-7b-<L>l here"; return 1; }
  echo "$plan_json" > "$OUT/plan_zero3_offload.json"
  timeout 200 $Q launch --nproc-per-node 1 --master-port 29535 -- "$Q" bench train-step --preset "owl2-7b-${layers}l" --device cuda \
    --dtype bfloat16 --batch-size 8 --gradient-checkpointing --zero-stage 3 --offload --optim adamw_torch_fused --json \
    > "$OUT/bench_zero3_offload.json" 2> "$OUT/bench_zero3_offload.err" || { tail -20 "$OUT/bench_zero3_offload.err"; return 1; }
  python3 - "$OUT/plan_zero3_offload.json" "$OUT/bench_zero3_offload.json" "$layers" <<'PY'
import json, sys
plan, bench = (json.load(open(f)) for f in sys.argv[1:3])
measured = bench["memory"][0]["peak_allocated"] if isinstance(bench.get("memory"), list) else None
planned = plan["device_per_rank"]["total"]
print(f"owl2-7b-{sys.argv[3]}l: {bench['step_ms']:.0f} ms/step, {bench['samples_per_s']:.2f} samples/s; "
      f"device peak {measured / 2**30 if measured else float('nan'):.1f} GiB, planned {planned / 2**30:.1f} GiB "
      f"({(planned / measured - 1) * 100 if measured else float('nan'):+.0f} %); host planned {plan['host_per_rank']['total'] / 2**30:.1f} GiB")
PY
}
try zero3-offload zero3_offload

stage "the plan against the measured peak of (b)"
plan_vs_b() {
  [ -f "$OUT/train_4l/metrics.jsonl" ] || { echo "no run (b)"; return 1; }
  $Q plan --config configs/onealign.yaml --preset owl2-7b-4l --nproc-per-node 1 --json data_path="$OUT/train256.json" \
    image_folder="$( [ $OPENCV = ON ] && echo "$OUT/photos" )" model_name_or_path="$OUT/owl2-7b-4l" per_device_train_batch_size=32 \
    > "$OUT/plan_4l.json" || return 1
  python3 - "$OUT/plan_4l.json" "$OUT/train_4l/metrics.jsonl" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
report = json.loads(open(sys.argv[2]).readline())["memory_report"][0]
for key in ("parameters", "gradients", "masters", "optimizer"):
    print(f"{key}: planned {plan['device_per_rank'][key]}, reported {report[key]}")
print(f"total: planned {plan['device_per_rank']['total'] / 2**30:.2f} GiB, peak allocated {report['peak_allocated'] / 2**30:.2f} GiB "
      f"({(plan['device_per_rank']['total'] / report['peak_allocated'] - 1) * 100:+.1f} %)")
PY
}
try plan-vs-b plan_vs_b

stage "done; failed stages: ${FAILED[*]:-none}"
[ ${#FAILED[@]} -eq 0 ]
