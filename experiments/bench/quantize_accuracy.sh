#!/usr/bin/env bash
# Issue 34 item 3: what each scoring mode costs in accuracy. Trains the demo's model as
# scripts/demo.sh does (same data, init and recipe) but for a fixed number of steps, so that a busy
# machine gets the same model as an idle one; then scores its held-out pictures with `qalign eval`
# and the golden fixtures' inputs with `qalign score` in every mode, and prints the tables of
# experiments/bench/README.md ("Accuracy per mode"). Stages whose output exists are kept, so a
# rerun only evaluates. Needs a built qalign and python3.
#   QALIGN (build/tools/qalign), QALIGN_ACC_OUT (runs/quantize-accuracy), QALIGN_ACC_STEPS (1500),
#   QALIGN_ACC_SEED (0)
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${QALIGN:-build/tools/qalign}
OUT=${QALIGN_ACC_OUT:-runs/quantize-accuracy}
STEPS=${QALIGN_ACC_STEPS:-1500}
SEED=${QALIGN_ACC_SEED:-0}
mkdir -p "$OUT"

[ -f "$OUT/data/test.json" ] ||
  $Q demo make-data --out "$OUT/data" --seed "$SEED" --size 64 --per-image 48 --test-per-image 10 --scene 128
[ -d "$OUT/init" ] || $Q init --config configs/demo_model.json --tokenizer "$OUT/data/tokenizer" --out "$OUT/init" --seed "$SEED"
# Passive OpenMP waits: on a machine shared with other work, spinning threads waiting for a
# descheduled partner made each step 12x slower (38 s against 3 s at load 10).
if [ ! -f "$OUT/train/config.json" ]; then
  OMP_WAIT_POLICY=PASSIVE $Q train --config configs/demo.yaml model_name_or_path="$OUT/init" \
    data_path="$OUT/data/train.json" seed="$SEED" max_steps="$STEPS" eval_steps=$(((STEPS + 3) / 4)) \
    image_folder="$OUT/data" output_dir="$OUT/train" eval_data_paths="$OUT/data/test.json"
fi

# name|options: float32 first, the reference of the others.
cat >"$OUT/modes.txt" <<'MODES'
float32|--dtype float32
bfloat16|--dtype bfloat16
bfloat16+int8|--dtype bfloat16 --quantize int8
bfloat16+int4-g32|--dtype bfloat16 --quantize int4 --group-size 32
bfloat16+int4-g64|--dtype bfloat16 --quantize int4 --group-size 64
bfloat16+int4-g128|--dtype bfloat16 --quantize int4 --group-size 128
bfloat16+int8+vision|--dtype bfloat16 --quantize int8 --quantize-vision
bfloat16+int4-g32+vision|--dtype bfloat16 --quantize int4 --group-size 32 --quantize-vision
float32+int8|--dtype float32 --quantize int8
float32+int4-g32|--dtype float32 --quantize int4 --group-size 32
MODES
mkdir -p "$OUT/eval" "$OUT/fixtures/qalign-tiny" "$OUT/fixtures/qalign-448"
while IFS='|' read -r name opts; do
  # A mode the model cannot take (a group size that does not divide a layer's input) is an error:
  # its message goes into the table.
  # shellcheck disable=SC2086
  $Q eval --model "$OUT/train" --data "$OUT/data/test.json" --image-folder "$OUT/data" --out "$OUT/eval/$name" \
    --overwrite $opts >"$OUT/eval/$name.log" 2>&1 || echo "[accuracy] $name: $(tail -1 "$OUT/eval/$name.log")"
  for f in qalign-tiny qalign-448; do
    # shellcheck disable=SC2086
    $Q score --json --model tests/fixtures/$f/model $opts tests/fixtures/$f/inputs/*.{png,jpg,avi} \
      >"$OUT/fixtures/$f/$name.jsonl" 2>"$OUT/fixtures/$f/$name.log" || true
  done
done <"$OUT/modes.txt"
python3 experiments/bench/quantize_accuracy.py "$OUT"
