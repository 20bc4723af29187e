#!/usr/bin/env bash
# The released model's full size (owl2-7b: 8.2 B parameters, 32 decoder layers, ViT-L/14 at 448 px)
# on this CPU: a bf16 checkpoint in 5 GB shards from `qalign init`, then `qalign score` on a real
# photograph from it (bf16, and int8 and int4 weights). Wall time and peak resident set of each step come from
# GNU time; results.md holds the figures of a dated run.
#   experiments/full-size-cpu/run.sh [WORK_DIR]   (default /tmp/qalign-full-size; ~17 GB of disk)
# Needs a build (scripts/test.sh or cmake --build build) and ~18 GB of free memory.
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${QALIGN_BINARY:-build/tools/qalign}
W=${1:-/tmp/qalign-full-size}
mkdir -p "$W"
measure() {  # name, command...: runs it, prints "name: wall s, peak MiB" and keeps its log
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$W/$name.time" "$@" > "$W/$name.log" 2>&1 || { tail -20 "$W/$name.log"; return 1; }
  read -r wall peak_kb < "$W/$name.time"
  printf '%-24s %8.1f s  peak %6d MiB\n' "$name" "$wall" $((peak_kb / 1024)) | tee -a "$W/summary.txt"
}
: > "$W/summary.txt"
[ -f "$W/model/model.safetensors.index.json" ] ||
  measure init "$Q" init --preset owl2-7b --dtype bfloat16 --tokenizer tests/fixtures/llama2-tokenizer \
    --out "$W/model" --overwrite
du -sb "$W/model" | awk '{printf "weights on disk: %.2f GB\n", $1 / 1e9}' | tee -a "$W/summary.txt"
D=/usr/share/doc/opencv-doc/examples/data
measure export "$Q" export --checkpoint "$W/model" --out "$W/export" --dtype bfloat16 --overwrite
measure score-1-photo "$Q" score --model "$W/model" --dtype bfloat16 --batch-size 1 "$D/baboon.jpg"
measure score-int8 "$Q" score --model "$W/model" --dtype bfloat16 --quantize int8 --batch-size 1 "$D/baboon.jpg"
measure score-int4 "$Q" score --model "$W/model" --dtype bfloat16 --quantize int4 --batch-size 1 "$D/baboon.jpg"
grep -h "scored" "$W"/score-*.log
