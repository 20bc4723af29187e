#!/usr/bin/env bash
# README command (a): set up, build, and run the main job on its built-in default: teach a small
# mPLUG-Owl2, from scratch, to rate photographs. The photographs of four Debian packages
# (data/demo_photographs.h) are cropped and distorted at graded strengths into a quality set in
# the authors' format, split by subject; the model is trained with the syllabus
# (configs/demo.yaml), evaluated on photographs it never saw, and what it learned is drawn: the
# loss and held-out SRCC, and the best- and worst-rated held-out pictures. Everything lands in
# $QALIGN_DEMO_OUT (default runs/demo); QALIGN_DEMO_SEED picks the split, the damage and the run.
# Training gets what is left of QALIGN_DEMO_SECONDS (default 900: 15 minutes) after setup, build
# and data, at this machine's measured step time; QALIGN_DEMO_STEPS fixes the steps instead.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${QALIGN_DEMO_OUT:-runs/demo}
SEED=${QALIGN_DEMO_SEED:-0}
BUDGET=${QALIGN_DEMO_SECONDS:-900}
SECONDS=0
split=()
lap() { split+=("$1 $((SECONDS - ${last:-0})) s"); last=$SECONDS; }

scripts/setup.sh --demo
lap setup
# Only the command, at -O1 and as a unity build (the default: eight sources a compiler run, as
# each run loads LibTorch's 700 MB precompiled header), with Ninja so the layers compile side by
# side; the training arithmetic is LibTorch's, compiled already, so -O1 runs as fast.
CMAKE_GENERATOR=${CMAKE_GENERATOR:-Ninja} cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" >/dev/null
cmake --build build-demo -j"$(nproc)" --target qalign
Q=build-demo/tools/qalign
lap build

rm -rf "$OUT"
$Q demo make-data --out "$OUT/data" --seed "$SEED" --size 64 --per-image 48 --test-per-image 10 --scene 128
lap make-data
$Q init --config configs/demo_model.json --tokenizer "$OUT/data/tokenizer" --out "$OUT/init" --seed "$SEED"
# Seed 0's held-out SRCC: 0.840 after a run of 1000 steps, 0.903 after one of 2000 (0.85 and 0.89
# at its steps 1000 and 1500); 2000 is the most the demo takes, so a set-up machine does not spend
# its saved minutes on little gain. The reserve covers the evaluation and the report (~35 s); the
# trainer's steps, with the loader and its evaluations beside them, took 13-14 % longer than the
# benchmark's in fresh-clone runs, so the plan counts 15 %.
if [ -n "${QALIGN_DEMO_STEPS:-}" ]; then
  STEPS=$QALIGN_DEMO_STEPS
else
  step_ms=$($Q bench train-step --preset configs/demo_model.json --tokenizer "$OUT/data/tokenizer" --batch-size 16 \
    --warmup 3 --repeats 10 --json 2>"$OUT/step-time.log" | grep -o '"step_ms": *[0-9.]*' | sed 's/.*: *//') ||
    { echo "[demo] the step-time benchmark failed: $OUT/step-time.log" >&2; exit 1; }
  left=$((BUDGET - SECONDS - 35))
  STEPS=$(awk -v left="$left" -v ms="$step_ms" 'BEGIN { s = int(left * 1000 / (1.15 * ms)); print (s < 250 ? 250 : (s > 2000 ? 2000 : s)) }')
  echo "[demo] training $STEPS steps: ${left} s left of ${BUDGET} s at $(printf '%.0f' "$step_ms") ms a step (benchmark)"
  [ "$STEPS" -ge 1500 ] || echo "[demo] fewer than 1500 steps fit on this machine; at 1500 seeds 0 and 1 reach" \
    "0.89 and 0.88 held-out SRCC, and QALIGN_DEMO_STEPS=1500 trains that many whatever the time"
fi
$Q train --config configs/demo.yaml model_name_or_path="$OUT/init" data_path="$OUT/data/train.json" seed="$SEED" max_steps="$STEPS" \
  eval_steps=$(((STEPS + 3) / 4)) image_folder="$OUT/data" output_dir="$OUT/train" eval_data_paths="$OUT/data/test.json"
lap training
$Q eval --model "$OUT/train" --data "$OUT/data/test.json" --image-folder "$OUT/data" --out "$OUT/eval"
$Q demo report --model "$OUT/train" --data "$OUT/data" --sheet "$OUT/held-out.png" | tee "$OUT/held-out.md"
$Q demo plot --metrics "$OUT/train/metrics.jsonl" --out "$OUT/training.png"
lap evaluation
echo "[demo] held-out photographs: $(grep -o '"srcc": [-0-9.e]*' "$OUT/eval/results.json"),"\
" $(grep -o '"plcc": [-0-9.e]*' "$OUT/eval/results.json" | head -1); $(grep -c '^| test' "$OUT/data/README.md")"\
" held-out photographs, $(grep -o '"n": [0-9]*' "$OUT/eval/results.json" | grep -o '[0-9]*') pictures"
echo "[demo] time: ${split[*]}; total ${SECONDS} s"
echo "[demo] plots: $OUT/training.png, $OUT/held-out.png; photographs and licences: $OUT/data/README.md"
