#!/usr/bin/env bash
# The levels-versus-scores ablation on the demo's synthetic-distortion set: one initial model,
# one budget (configs/demo.yaml: 1000 steps of 16), three answers — (a) the five level words,
# (b) the MOS written as a number, (c) a regression head on the hidden state — each evaluated on
# the held-out photographs. Writes results.md here. Needs a built qalign (README: build).
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${QALIGN:-build/tools/qalign}
OUT=${QALIGN_ABLATION_OUT:-runs/ablation}
HERE=experiments/ablation-levels-vs-scores
rm -rf "$OUT"
$Q demo make-data --out "$OUT/data" --size 64 --per-image 48 --test-per-image 10 --scene 128
$Q init --config configs/demo_model.json --tokenizer "$OUT/data/tokenizer" --out "$OUT/init"
declare -A DATA=([levels]=train.json [number]=train_numbers.json [regression]=train.json)
for v in levels number regression; do
  $Q train --config configs/demo.yaml model_name_or_path="$OUT/init" data_path="$OUT/data/${DATA[$v]}" \
    image_folder="$OUT/data" output_dir="$OUT/$v" eval_data_paths="$OUT/data/test.json" answer_format=$v
  $Q eval --model "$OUT/$v" --readout $v --data "$OUT/data/test.json" --image-folder "$OUT/data" --out "$OUT/$v-eval"
done
field() { grep -o "\"$2\": *[-0-9.e]*" "$OUT/$1-eval/results.json" | head -1 | sed 's/.*: *//'; }
# SRCC and PLCC are undefined (null in results.json) when every prediction is the same number.
cell() { local v; v=$(field "$1" "$2"); if [ -n "$v" ]; then printf '%.3f' "$v"; else printf 'undefined'; fi; }
distinct() { grep -o '"score":[-0-9.e]*' "$OUT/$1-eval/predictions.jsonl" | sort -u | wc -l; }
{
  echo "# Ablation results: levels vs. scores on the demo set"
  echo
  echo "Run $(date -u +%Y-%m-%d) by \`$HERE/run.sh\` on $(nproc) CPU cores; held-out photographs (test.json, $(field levels n) pictures)."
  echo
  echo "| answer | SRCC | PLCC | KRCC | distinct predictions |"
  echo "|---|---|---|---|---|"
  for v in levels number regression; do
    echo "| $v | $(cell $v srcc) | $(cell $v plcc) | $(cell $v krcc) | $(distinct $v) |"
  done
} > "$HERE/results.md"
cat "$HERE/results.md"
