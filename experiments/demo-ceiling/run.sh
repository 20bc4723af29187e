#!/usr/bin/env bash
# The demo set's learnability ceiling: the same pictures scripts/demo.sh trains on, learnt by a
# plain small ViT (the demo's vision tower with a mean-pooled five-level head) and a small conv
# net, in PyTorch on 2 threads, for comparison with the full model. Needs a built qalign, .venv
# (scripts/setup.sh) and Debian's python3-pil. Prints one line per quarter of each run.
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${QALIGN:-build/tools/qalign}
OUT=${QALIGN_CEILING_OUT:-runs/ceiling}
HERE=experiments/demo-ceiling
rm -rf "$OUT"
$Q demo make-data --out "$OUT" --size 64 --per-image 48 --test-per-image 10 --scene 128
/usr/bin/python3 $HERE/dump.py "$OUT"
.venv/bin/python $HERE/probe.py "$OUT" 1000 vit 8 5e-4
.venv/bin/python $HERE/probe.py "$OUT" 1000 vit 4 5e-4
.venv/bin/python $HERE/probe.py "$OUT" 2000 cnn 0 1e-3
