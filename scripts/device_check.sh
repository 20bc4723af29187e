#!/usr/bin/env bash
# The GPU check, for a machine with nothing but PyTorch (CUDA) in its python3: no apt, no network
# (README, "Checking a GPU machine"). Prepare here with scripts/device_bundle.sh --opencv, copy the
# tree with .deps/device there and run it; through this project's device tool that is
#   run(command="scripts/device_check.sh", carry=[".deps/device"], timeout_s=330)
# Stages, most informative first, each under its own timeout and a budget for the whole check
# (QALIGN_DEVICE_BUDGET_S, default 290 s, the build included), so a rerun fits the machine's
# 15 minutes; a failed stage is recorded and the next one runs:
#   build         qalign and qalign_tests against python3's torch and the bundle (unity build)
#   parity        the model parity tests on CUDA
#   golden-step   the authors' golden training step through the Trainer on CUDA (float32, tf32 off)
#   bench-score   owl2-7b scoring, bf16, batch 1, 8, 64
#   bench-quantize the same with the language model's linears in int4, fp8 and int8 (--quantize):
#                 images/s and peak memory per mode, bf16's beside them
#   train         qalign train on owl2-7b-4l, bf16, ZeRO-2 under NCCL, micro-batch 32, 30 steps
#   plan          qalign plan for that run beside its measured peak
#   zero-resume   ZeRO-2 saved at step 3 and resumed: bitwise against the uninterrupted run
#   decode        the bundle's OpenCV against the authors' pixels (when the bundle has OpenCV)
#   bench-train   the owl2-7b-4l training step through the Trainer
#   zero3-offload ZeRO-3 with the optimizer on the host, owl2-7b-8l
# --quick: build, parity, golden-step and bench-score only, for a second command.
# QALIGN_DEVICE_DRY=1 runs the same stages on this CPU machine: device cpu, Gloo, the tiny model
# and the existing build in QALIGN_BUILD_DIR (default build/); a test runs it so.
# $OUT receives at most 4 files: summary.json (every stage: status, seconds, figures),
# device_check.log (each stage's last lines) and bench.json (the benchmarks' JSON). Scratch
# (models, checkpoints, full logs) goes to QALIGN_DEVICE_SCRATCH (default a temporary folder).
set -uo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
DRY=${QALIGN_DEVICE_DRY:-0}
OUT=${OUT:-runs/device}
BUNDLE=${QALIGN_DEPS_BUNDLE:-$PWD/.deps/device}
BUDGET=${QALIGN_DEVICE_BUDGET_S:-290}
S=${QALIGN_DEVICE_SCRATCH:-$(mktemp -d /tmp/qalign-device-check.XXXXXX)}
mkdir -p "$OUT" "$S"
rm -rf "$S"/run-* "$S"/model-* "$S"/*.log "$S"/*.json "$S"/*.figures
LOG="$OUT/device_check.log"
: > "$LOG"
: > "$S/stages.tsv"
SECONDS=0
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"

if [ "$DRY" = 1 ]; then
  BUILD=${QALIGN_BUILD_DIR:-build}
  DEVICE=cpu BACKEND=gloo
  SCORE_ARGS="--preset tiny --dtype float32 --batch-sizes 1,2 --repeats 2 --warmup 1"
  QUANT_ARGS="--preset tiny --dtype bfloat16 --group-size 32 --batch-sizes 1,2 --repeats 1 --warmup 0" QUANT_MODES="int4 int8"
  TRAIN_MODEL=tests/fixtures/qalign-tiny/model TRAIN_RECIPE=tests/fixtures/train/tiny_recipe.yaml TRAIN_BATCH=2 TRAIN_STEPS=3
  BENCH_TRAIN_ARGS="--preset tiny --batch-size 2 --repeats 2 --warmup 1"
  ZERO3_PRESET=tiny ZERO3_BATCH=2
else
  BUILD=build-device
  DEVICE=cuda BACKEND=nccl
  SCORE_ARGS="--preset owl2-7b --dtype bfloat16 --batch-sizes 1,8,64"
  QUANT_ARGS="--preset owl2-7b --dtype bfloat16 --batch-sizes 1,8,64 --repeats 2 --warmup 1" QUANT_MODES="int4 fp8 int8"
  TRAIN_MODEL=owl2-7b-4l TRAIN_RECIPE=configs/onealign.yaml TRAIN_BATCH=32 TRAIN_STEPS=30
  BENCH_TRAIN_ARGS="--preset owl2-7b-4l --dtype bfloat16 --batch-size 32 --gradient-checkpointing --optim adamw_torch_fused"
  ZERO3_PRESET=owl2-7b-8l ZERO3_BATCH=8
fi
Q=$BUILD/tools/qalign
T=$BUILD/tests/qalign_tests  # every test file in one executable; each stage picks its suites
OPENCV=OFF
if [ "$DRY" = 1 ] || [ -f "$BUNDLE/opencv/lib/cmake/opencv4/OpenCVConfig.cmake" ]; then OPENCV=ON; fi

# stage NAME TIMEOUT FUNCTION: runs FUNCTION under `timeout` with its output in $S/NAME.log; the
# last lines go to the combined log, the outcome to stages.tsv. A stage whose timeout would pass
# the budget is skipped, saying so.
stage() {
  local name=$1 limit=$2 fn=$3 start=$SECONDS status rc
  if ((SECONDS + limit > BUDGET)); then
    status="skipped (budget: ${SECONDS}s of ${BUDGET}s spent, needs ${limit}s)"
  else
    timeout --kill-after=5 "$limit" bash -o pipefail -c "$fn" > "$S/$name.log" 2>&1
    rc=$?
    if ((rc == 0)); then status=pass; elif ((rc == 124 || rc == 137)); then status="fail (timed out after ${limit}s)"; else status="fail (exit $rc)"; fi
  fi
  printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" >> "$S/stages.tsv"
  printf '[device_check %4ss] %-13s %s\n' "$SECONDS" "$name" "$status" | tee -a "$LOG"
  [ -f "$S/$name.log" ] && tail -15 "$S/$name.log" | sed 's/^/    /' >> "$LOG"
}
# figure STAGE KEY VALUE: one figure of a stage for summary.json.
figure() { printf '%s\t%s\n' "$2" "$3" >> "$S/$1.figures"; }

build() {
  if [ "$DRY" = 1 ]; then
    [ -x "$Q" ] && [ -x "$T" ] || { echo "dry run: no $Q or $T (build first)"; return 1; }
    echo "dry run: using $BUILD"
    return 0
  fi
  local torch_dir
  torch_dir=$(python3 -c 'import os, torch; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))') || return 1
  command -v ninja > /dev/null && export CMAKE_GENERATOR=${CMAKE_GENERATOR:-Ninja}
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DQALIGN_WITH_OPENCV=$OPENCV -DQALIGN_DEPS_BUNDLE="$BUNDLE" \
    -DTorch_DIR="$torch_dir" > "$S/configure.log" 2>&1 || { tail -30 "$S/configure.log"; return 1; }
  cmake --build "$BUILD" -j"$(nproc)" --target qalign qalign_tests > "$S/build_output.log" 2>&1 \
    || { grep -m20 -A5 'error' "$S/build_output.log"; return 1; }
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
}

gtest_figures() {  # NAME LOG: the passed and failed test counts of a gtest run
  local passed failed
  passed=$(grep -oE '\[  PASSED  \] [0-9]+' "$2" | grep -oE '[0-9]+$' || echo 0)
  failed=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$2" | grep -oE '^[^0-9]*[0-9]+' | grep -oE '[0-9]+' || echo 0)
  figure "$1" tests_passed "${passed:-0}"
  figure "$1" tests_failed "${failed:-0}"
}
parity() {
  QALIGN_TEST_DEVICE=$DEVICE "$T" --gtest_filter='*ModelParity*' > "$S/parity.gtest" 2>&1
  local rc=$?
  gtest_figures parity "$S/parity.gtest"
  tail -3 "$S/parity.gtest"
  return $rc
}
golden_step() {
  QALIGN_TEST_DEVICE=$DEVICE "$T" --gtest_filter='TrainGoldenOnDevice.*:HostBuffer.*' > "$S/golden-step.gtest" 2>&1
  local rc=$?
  gtest_figures golden-step "$S/golden-step.gtest"
  grep "\[sdpa\]" "$S/golden-step.gtest"
  tail -3 "$S/golden-step.gtest"
  return $rc
}
decode() {
  [ "$OPENCV" = ON ] || { echo "this build has no OpenCV (bundle without opencv/)"; return 0; }
  "$T" --gtest_filter='DecodeImage.*:ExpandToSquare.*:ImplicitPadding.*:IsVideoPath.*:*Photo448*:PilResize.*:Preprocess.*:TinyImages.*' \
    > "$S/decode.gtest" 2>&1
  local rc=$?
  gtest_figures decode "$S/decode.gtest"
  tail -3 "$S/decode.gtest"
  return $rc
}
# bench_json NAME ARGS...: a `qalign bench` run whose JSON goes to $S/NAME.bench.json
bench_json() {
  local name=$1
  shift
  "$Q" bench "$@" --json > "$S/$name.bench.json" 2> "$S/$name.bench.err"
  local rc=$?
  cat "$S/$name.bench.json"
  tail -5 "$S/$name.bench.err"
  return $rc
}
# shellcheck disable=SC2086  # the argument strings split into words
bench_score() { bench_json bench-score score --device "$DEVICE" $SCORE_ARGS; }
# shellcheck disable=SC2086
bench_train() { bench_json bench-train train-step --device "$DEVICE" $BENCH_TRAIN_ARGS; }

# One bench score per --quantize mode (each mode's figures are kept as soon as it has run, so a
# timeout keeps the modes before it), with bench-score's bf16 figures as the baseline.
bench_quantize() {
  local mode rc=0
  for mode in $QUANT_MODES; do
    # shellcheck disable=SC2086
    if ! bench_json "bench-quantize-$mode" score --device "$DEVICE" $QUANT_ARGS --quantize "$mode" > /dev/null; then
      echo "--quantize $mode failed:"
      tail -5 "$S/bench-quantize-$mode.bench.err"
      rc=1
      continue
    fi
    python3 - "$S/bench-quantize-$mode.bench.json" "$mode" "$S/bench-quantize.figures" <<'PY'
import json, sys
path, mode, figures = sys.argv[1:4]
b = json.load(open(path))
with open(figures, "a") as f:
    for row in b["batches"]:
        f.write(f"{mode}_images_per_s_batch{row['batch_size']}\t{row['images_per_s']}\n")
    f.write(f"{mode}_peak_allocated\t{b['memory'][0]['peak_allocated']}\n")
    f.write(f"{mode}_peak_reserved\t{b['memory'][0]['peak_reserved']}\n")
print(mode, [(r["batch_size"], round(r["images_per_s"], 2)) for r in b["batches"]], b["memory"][0])
PY
  done
  [ -f "$S/bench-score.bench.json" ] && python3 - "$S/bench-score.bench.json" "$S/bench-quantize.figures" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
with open(sys.argv[2], "a") as f:
    for row in b["batches"]:
        f.write(f"{b['dtype']}_images_per_s_batch{row['batch_size']}\t{row['images_per_s']}\n")
    f.write(f"{b['dtype']}_peak_reserved\t{b['memory'][0]['peak_reserved']}\n")
PY
  return $rc
}

# Records over the fixtures' pictures (and the bundle's photographs), decoded by the loader's
# workers every step, or text-only ones where this build has no OpenCV.
train_records() {
  local images=() folder=""
  if [ "$OPENCV" = ON ]; then
    folder="$S/photos"
    mkdir -p "$folder"
    [ -d "$BUNDLE/photos" ] && cp "$BUNDLE"/photos/*.jpg "$folder/" 2>/dev/null
    for f in tests/fixtures/qalign-448/inputs/*.{jpg,png} tests/fixtures/qalign-tiny/inputs/*.{jpg,png}; do
      [ -e "$folder/${f##*/}" ] || cp "$f" "$folder/"
    done
    images=("$folder"/*)
  fi
  python3 - "$S/records.json" "${images[@]##*/}" <<'PY'
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
  echo "$folder"
}
train() {
  local folder model=$TRAIN_MODEL
  folder=$(train_records | tail -1)
  if [ ! -d "$model" ]; then
    model="$S/model-$TRAIN_MODEL"
    "$Q" init --preset "$TRAIN_MODEL" --tokenizer tests/fixtures/llama2-tokenizer --out "$model" > "$S/init.log" 2>&1 \
      || { tail -5 "$S/init.log"; return 1; }
  fi
  echo "$model" > "$S/train.model"
  echo "$folder" > "$S/train.folder"
  "$Q" launch --nproc-per-node 1 --master-port 29534 -- "$Q" train --config "$TRAIN_RECIPE" model_name_or_path="$model" \
    data_path="$S/records.json" image_folder="$folder" output_dir="$S/run-train" device="$DEVICE" ddp_backend="$BACKEND" \
    zero_stage=2 per_device_train_batch_size="$TRAIN_BATCH" gradient_accumulation_steps=1 max_steps="$TRAIN_STEPS" \
    save_steps=1000 logging_steps=10 dataloader_num_workers=4 || return 1
  local held
  held=$(grep -oE '[0-9]+ MiB of cuda:[0-9]+ held before loading' "$S/train.log" | head -1 | grep -oE '^[0-9]+')
  if [ -n "$held" ]; then figure train held_before_loading_mib "$held"; fi
  python3 - "$S/run-train/metrics.jsonl" "$S/train.figures" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
last = lines[-1]
with open(sys.argv[2], "a") as f:
    for key in ("ms_per_step", "samples_per_s", "input_wait_ms_per_step", "peak_memory_mib", "loss"):
        f.write(f"{key}\t{last.get(key)}\n")
    f.write(f"peak_allocated\t{last['memory'][0]['peak_allocated']}\n")
    f.write(f"peak_reserved\t{last['memory'][0]['peak_reserved']}\n")
print(json.dumps(last))
PY
}
plan() {
  [ -f "$S/run-train/metrics.jsonl" ] || { echo "no train stage to compare with"; return 1; }
  "$Q" plan --config "$TRAIN_RECIPE" --nproc-per-node 1 --json model_name_or_path="$(cat "$S/train.model")" \
    data_path="$S/records.json" image_folder="$(cat "$S/train.folder")" device="$DEVICE" zero_stage=2 \
    per_device_train_batch_size="$TRAIN_BATCH" > "$S/plan.json" || return 1
  python3 - "$S/plan.json" "$S/run-train/metrics.jsonl" "$S/plan.figures" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
lines = [json.loads(l) for l in open(sys.argv[2])]
report, peak = lines[0]["memory_report"][0], lines[-1]["memory"][0]
planned = plan["device_per_rank"]["total"]
with open(sys.argv[3], "a") as f:
    for key in ("parameters", "gradients", "masters", "optimizer"):
        f.write(f"{key}_planned\t{plan['device_per_rank'][key]}\n{key}_reported\t{report[key]}\n")
    f.write(f"total_planned\t{planned}\npeak_allocated\t{peak['peak_allocated']}\npeak_reserved\t{peak['peak_reserved']}\n")
    f.write(f"planned_over_reserved\t{planned / peak['peak_reserved']:.4f}\n")
print(f"planned {planned / 2**30:.2f} GiB, peak reserved {peak['peak_reserved'] / 2**30:.2f} GiB")
PY
}
zero_resume() {
  local args=(train --config tests/fixtures/train/tiny_recipe.yaml max_steps=6 save_steps=3 ddp_backend="$BACKEND"
              zero_stage=2 device="$DEVICE")
  "$Q" launch --nproc-per-node 1 --master-port 29532 -- "$Q" "${args[@]}" output_dir="$S/run-full" || return 1
  "$Q" launch --nproc-per-node 1 --master-port 29533 -- "$Q" "${args[@]}" output_dir="$S/run-resumed" \
    resume_from_checkpoint="$S/run-full/checkpoint-3" || return 1
  cmp "$S/run-full/model.safetensors" "$S/run-resumed/model.safetensors" || return 1
  figure zero-resume bitwise true
  echo "ZeRO-2 resumed at step 3: bitwise equal"
}
zero3_offload() {
  "$Q" plan --config configs/onealign.yaml --preset "$ZERO3_PRESET" --nproc-per-node 1 --json zero_stage=3 \
    offload_optimizer=cpu per_device_train_batch_size="$ZERO3_BATCH" gradient_checkpointing=true device="$DEVICE" \
    > "$S/zero3.plan.json" || return 1
  "$Q" launch --nproc-per-node 1 --master-port 29535 -- "$Q" bench train-step --preset "$ZERO3_PRESET" \
    --device "$DEVICE" --batch-size "$ZERO3_BATCH" --gradient-checkpointing --zero-stage 3 --offload --json \
    $([ "$DRY" = 1 ] && echo "--repeats 2 --warmup 1" || echo "--dtype bfloat16 --optim adamw_torch_fused") \
    > "$S/zero3-offload.out" 2> "$S/zero3-offload.bench.err" || { tail -20 "$S/zero3-offload.bench.err"; return 1; }
  sed 's/^\[rank 0\] //' "$S/zero3-offload.out" > "$S/zero3-offload.bench.json"  # the launcher's prefix
  python3 - "$S/zero3.plan.json" "$S/zero3-offload.bench.json" "$S/zero3-offload.figures" <<'PY'
import json, sys
plan, bench = (json.load(open(f)) for f in sys.argv[1:3])
with open(sys.argv[3], "a") as f:
    f.write(f"device_planned\t{plan['device_per_rank']['total']}\nhost_planned\t{plan['host_per_rank']['total']}\n")
    mem = bench.get("memory")
    if isinstance(mem, list) and mem:
        f.write(f"peak_allocated\t{mem[0]['peak_allocated']}\npeak_reserved\t{mem[0]['peak_reserved']}\n")
print(json.dumps(bench)[:400])
PY
}

# The stages run in child shells (under timeout), which see these.
export Q T S OUT BUNDLE DEVICE BACKEND DRY OPENCV BUILD SCORE_ARGS QUANT_ARGS QUANT_MODES BENCH_TRAIN_ARGS TRAIN_MODEL \
  TRAIN_RECIPE TRAIN_BATCH TRAIN_STEPS ZERO3_PRESET ZERO3_BATCH
export -f figure build gtest_figures parity golden_step decode bench_json bench_score bench_quantize bench_train \
  train_records train plan zero_resume zero3_offload
echo "device check $(date -u +%Y-%m-%dT%H:%M:%SZ): dry=$DRY quick=$QUICK budget=${BUDGET}s scratch=$S" | tee -a "$LOG"
stage build $([ "$DRY" = 1 ] && echo 10 || echo 170) build
if [ -x "$Q" ] && [ -x "$T" ]; then
  stage parity 60 parity
  stage golden-step 60 golden_step
  stage bench-score 70 bench_score
  if [ "$QUICK" = 0 ]; then
    stage bench-quantize 60 bench_quantize
    stage train 100 train
    stage plan 20 plan
    stage zero-resume 60 zero_resume
    stage decode 40 decode
    stage bench-train 60 bench_train
    stage zero3-offload 90 zero3_offload
  fi
fi

# summary.json and bench.json from the stages' records.
python3 - "$S" "$OUT" "$DRY" "$QUICK" "$SECONDS" <<'PY'
import glob, json, os, subprocess, sys, time
scratch, out, dry, quick, seconds = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1", int(sys.argv[5])
def number(v):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False, "None": None}.get(v, v)
stages = []
for line in open(os.path.join(scratch, "stages.tsv")):
    name, status, secs = line.rstrip("\n").split("\t")
    figures = {}
    path = os.path.join(scratch, name + ".figures")
    if os.path.exists(path):
        for row in open(path):
            k, _, v = row.rstrip("\n").partition("\t")
            figures[k] = number(v)
    stages.append({"name": name, "status": status, "seconds": int(secs), "figures": figures})
bench = {}
for path in sorted(glob.glob(os.path.join(scratch, "*.bench.json"))):
    try:
        bench[os.path.basename(path)[: -len(".bench.json")]] = json.load(open(path))
    except ValueError:
        pass
# The headline figures of each benchmark beside its stage.
for s in stages:
    b = bench.get(s["name"])
    if not b:
        continue
    for key in ("step_ms", "samples_per_s", "mfu"):
        if key in b:
            s["figures"][key] = b[key]
    for row in b.get("batches", []):
        s["figures"][f"images_per_s_batch{row['batch_size']}"] = row["images_per_s"]
        s["figures"][f"mfu_batch{row['batch_size']}"] = row["mfu"]
    mem = b.get("memory")
    if isinstance(mem, list) and mem:
        s["figures"]["peak_reserved"] = mem[0].get("peak_reserved")
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20).stdout.strip()
except (OSError, subprocess.TimeoutExpired):
    gpu = ""
summary = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dry": dry, "quick": quick,
           "device": "cpu (dry run)" if dry else (gpu or "no GPU found"), "seconds": seconds,
           "passed": all(s["status"] == "pass" for s in stages) and bool(stages),
           "failed": [s["name"] for s in stages if s["status"] != "pass"], "stages": stages}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
json.dump(bench, open(os.path.join(out, "bench.json"), "w"), indent=1)
print(f"[device_check {seconds}s] done: {'all stages passed' if summary['passed'] else 'failed: ' + ', '.join(summary['failed'])}")
PY
python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["passed"] else 1)' "$OUT/summary.json"
