#!/usr/bin/env bash
# The released model's full size (owl2-7b: 8.2 B parameters, 32 decoder layers, ViT-L/14 at 448 px)
# on this CPU, end to end: a bf16 checkpoint in 5 GB shards from `qalign init`, its export, scoring
# a photograph (bf16, int8, int4, each quantised mode also with --quantize-vision) and a video, the
# authors' LoRA recipe for 3 steps with a checkpoint at step 2, the same run resumed from that
# checkpoint (its adapter compared byte for byte), the recipe on two ZeRO-3 ranks resumed on one, a
# full fine-tune of owl2-7b-3l on two ZeRO-3 ranks resumed (compared byte for byte), the adapter
# merged by `export --merge-lora` and the merged model scored beside base + adapter. Wall time and peak resident set of each step come from GNU time; results.md holds the
# figures of a dated run.
#   experiments/full-size-cpu/run.sh [WORK_DIR]   (default /tmp/qalign-full-size; ~60 GB of disk)
# Needs a build (scripts/test.sh or cmake --build build) and ~20 GB of free memory; 24 minutes on this
# 2-core machine when nothing else runs (results.md), far longer beside compiles.
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${QALIGN_BINARY:-build/tools/qalign}
W=${1:-/tmp/qalign-full-size}
mkdir -p "$W"
# Issue 33's per-rank bounds, from the trainer's own reports (its log and metrics.jsonl): every
# phase of a two-rank ZeRO-3 run (load, each step, each save, evaluation) within 0.6 x the whole
# bf16 model plus the activations its memory plan counts (the LoRA recipe: most weights frozen);
# with every weight trained, the state a rank keeps (parameters, gradients, masters, moments)
# within 16 bytes per parameter / N + 1 %. Fails the script where one is not met.
check_zero3() {  # run name, output dir, model dir
  python3 - "$W/$1.log" "$2" "$3" << 'PY' | tee -a "$W/summary.txt"
import json, os, re, struct, sys
log, run, model = sys.argv[1:]
text = open(log).read()
checkpoint_bytes = 0
for f in os.listdir(model):
    if f.endswith(".safetensors"):
        with open(os.path.join(model, f), "rb") as h:
            checkpoint_bytes += os.path.getsize(h.name) - 8 - struct.unpack("<Q", h.read(8))[0]
activations = float(re.search(r"activations\s+([0-9.]+) MiB", text).group(1)) * 2**20
trained, everything = map(int, re.search(r"(\d+) of (\d+) parameters trained", text).groups())
model_bytes = 2 * everything  # the model trained, in bf16: the checkpoint's weights and the run's adapters
bound = 0.6 * model_bytes + activations
peaks = [(m.group(2) + " (rank " + m.group(1) + ")", int(m.group(3)))
         for m in re.finditer(r"rank (\d): (loading|saving|evaluation)[^:]*: (\d+) B of CPU tensors at peak", text)]
rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
for r in rows:
    for m in r.get("memory", []):
        peaks.append((f"step {r['step']} (rank {m['rank']})", m["peak_allocated"]))
print(f"{os.path.basename(log)}: {len(peaks)} per-rank peaks, the largest {max(b for _, b in peaks) / model_bytes:.4f} x"
      f" the model ({model_bytes} B; its checkpoint {checkpoint_bytes} B)", end="")
ok = True
if trained < everything:
    over = [(what, b) for what, b in peaks if b > bound]
    print(f"; bound 0.6 x + activations {activations / 1e9:.3f} GB = {bound:.0f} B:",
          "met" if not over else f"exceeded by {over}", end="")
    ok = not over
print()
if trained == everything:
    n = len(rows[0]["memory_report"])
    for m in rows[0]["memory_report"]:
        state = m["parameters"] + m["gradients"] + m["masters"] + m["optimizer"]
        print(f"  rank {m['rank']}: state {state} B = {state / (16 * trained / n):.4f} x 16·P/N")
        ok = ok and state <= 1.01 * 16 * trained / n
sys.exit(0 if ok else 1)
PY
}
measure() {  # name, command...: runs it, prints "name: wall s, peak MiB" and keeps its log
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$W/$name.time" "$@" > "$W/$name.log" 2>&1 || { tail -20 "$W/$name.log"; return 1; }
  read -r wall peak_kb < "$W/$name.time"
  printf '%-24s %8.1f s  peak %6d MiB\n' "$name" "$wall" $((peak_kb / 1024)) | tee -a "$W/summary.txt"
}
: > "$W/summary.txt"
M=$W/model
[ -f "$M/model.safetensors.index.json" ] ||
  measure init "$Q" init --preset owl2-7b --dtype bfloat16 --tokenizer tests/fixtures/llama2-tokenizer \
    --out "$M" --overwrite
du -sb "$M" | awk '{printf "weights on disk: %.2f GB\n", $1 / 1e9}' | tee -a "$W/summary.txt"
D=/usr/share/doc/opencv-doc/examples/data

measure export "$Q" export --checkpoint "$M" --out "$W/export" --dtype bfloat16 --overwrite
rm -rf "$W/export"  # its 16 GB; the merged export below needs the disk
measure score-1-photo "$Q" score --model "$M" --dtype bfloat16 --batch-size 1 "$D/baboon.jpg"
measure score-int8 "$Q" score --model "$M" --dtype bfloat16 --quantize int8 --batch-size 1 "$D/baboon.jpg"
measure score-int8-vision "$Q" score --model "$M" --dtype bfloat16 --quantize int8 --quantize-vision --batch-size 1 "$D/baboon.jpg"
measure score-int4 "$Q" score --model "$M" --dtype bfloat16 --quantize int4 --batch-size 1 "$D/baboon.jpg"
measure score-int4-vision "$Q" score --model "$M" --dtype bfloat16 --quantize int4 --quantize-vision --batch-size 1 "$D/baboon.jpg"
measure score-video "$Q" score --model "$M" --dtype bfloat16 --batch-size 1 "$D/Megamind.avi"

# configs/l1_koniq_lora.yaml (q_proj and v_proj.multiway.1, r 128) with the abstractor trained, on
# six photographs labelled by hand; 3 steps of one picture, bf16, activation checkpointing.
L=$W/lora
mkdir -p "$L"
cat > "$L/train.json" << 'JSON'
[
 {"id": "baboon", "image": "baboon.jpg", "conversations": [{"from": "human", "value": "How would you rate the quality of this image?\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is good."}]},
 {"id": "fruits", "image": "fruits.jpg", "conversations": [{"from": "human", "value": "How would you rate the quality of this image?\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is excellent."}]},
 {"id": "fish", "image": "HappyFish.jpg", "conversations": [{"from": "human", "value": "How would you rate the quality of this image?\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is fair."}]},
 {"id": "building", "image": "building.jpg", "conversations": [{"from": "human", "value": "How would you rate the quality of this image?\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is poor."}]},
 {"id": "butterfly", "image": "butterfly.jpg", "conversations": [{"from": "human", "value": "How would you rate the quality of this image?\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is good."}]},
 {"id": "home", "image": "home.jpg", "conversations": [{"from": "human", "value": "How would you rate the quality of this image?\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is fair."}]}
]
JSON
# The same pictures with a score each (the level's middle) for evaluation during training.
python3 -c 'import json, sys
mos = {"excellent": 4.6, "good": 3.6, "fair": 2.8, "poor": 1.9, "bad": 1.2}
d = json.load(open(sys.argv[1]))
for e in d: e["gt_score"] = mos[e["conversations"][1]["value"].split()[-1].rstrip(".")]
json.dump(d, open(sys.argv[2], "w"), indent=1)' "$L/train.json" "$L/eval.json"
RECIPE=(--config configs/l1_koniq_lora.yaml "model_name_or_path=$M" "data_path=$L/train.json" "image_folder=$D"
  per_device_train_batch_size=1 max_steps=3 save_steps=2 tune_visual_abstractor=true dataloader_num_workers=1
  device=cpu logging_steps=1)
rm -rf "$L/run-a" "$L/run-b"
measure lora-3-steps "$Q" train "${RECIPE[@]}" "output_dir=$L/run-a"
measure lora-resumed "$Q" train "${RECIPE[@]}" "output_dir=$L/run-b" "resume_from_checkpoint=$L/run-a/checkpoint-2"
for f in "$L/run-a"/*.safetensors "$L/run-a"/*.bin; do
  [ -e "$f" ] || continue
  cmp "$f" "$L/run-b/$(basename "$f")" && echo "resumed = uninterrupted: $(basename "$f")" | tee -a "$W/summary.txt"
done

# The same recipe on two Gloo ranks at ZeRO stage 3 (each rank reads, holds and saves only its
# half, evaluating unit by unit at step 3; one unit gathered at a time), held to the bound, then
# resumed from its step-2 checkpoint on one process (the same global batch of 2).
rm -rf "$L/z3-a" "$L/z3-r1"
measure lora-zero3-2-ranks "$Q" launch --nproc-per-node 2 -- "$Q" train "${RECIPE[@]}" zero_stage=3 ddp_backend=gloo \
  zero3_prefetch_blocks=0 "eval_data_paths=$L/eval.json" eval_steps=3 "output_dir=$L/z3-a"
check_zero3 lora-zero3-2-ranks "$L/z3-a" "$M"
measure lora-zero3-resumed-1-rank "$Q" train "${RECIPE[@]}" gradient_accumulation_steps=2 "output_dir=$L/z3-r1" \
  "resume_from_checkpoint=$L/z3-a/checkpoint-2"
grep -h "loading:\|saving\|evaluation:\|step [0-9]/3" "$W"/lora-zero3-*.log | tee -a "$W/summary.txt"

# A full fine-tune (every weight trained) of the deepest owl2-7b-<L>l that `qalign plan` fits in
# this machine on two ranks at stage 3: owl2-7b-3l (20.2 GiB for the two ranks; 4l plans 23.9);
# 3 steps, a checkpoint at step 2, resumed on two ranks, the models compared byte for byte.
M2=$W/model-3l
[ -f "$M2/model.safetensors" ] || [ -f "$M2/model.safetensors.index.json" ] ||
  measure init-3l "$Q" init --preset owl2-7b-3l --dtype bfloat16 --tokenizer tests/fixtures/llama2-tokenizer \
    --out "$M2" --overwrite
FT=(--config configs/l1_koniq.yaml "model_name_or_path=$M2" "data_path=$L/train.json" "image_folder=$D"
  per_device_train_batch_size=1 max_steps=3 save_steps=2 dataloader_num_workers=1 device=cpu logging_steps=1
  zero_stage=3 ddp_backend=gloo)
rm -rf "$W/ft3l"
measure full-3l-zero3-2-ranks "$Q" launch --nproc-per-node 2 -- "$Q" train "${FT[@]}" "output_dir=$W/ft3l/a"
check_zero3 full-3l-zero3-2-ranks "$W/ft3l/a" "$M2"
measure full-3l-zero3-resumed "$Q" launch --nproc-per-node 2 -- "$Q" train "${FT[@]}" "output_dir=$W/ft3l/b" \
  "resume_from_checkpoint=$W/ft3l/a/checkpoint-2"
cmp "$W/ft3l/a/model.safetensors" "$W/ft3l/b/model.safetensors" &&
  echo "full fine-tune resumed = uninterrupted: model.safetensors" | tee -a "$W/summary.txt"
for run in "$L/z3-a" "$W/ft3l/a" "$W/ft3l/b"; do  # the trainer's per-rank peaks of tensor bytes
  python3 -c 'import json,sys
for l in open(sys.argv[1] + "/metrics.jsonl"):
    j = json.loads(l)
    if "memory" in j:  # training rows; evaluation rows have none
        print(sys.argv[1], "step", j["step"], "peak tensor bytes per rank", [m["peak_allocated"] for m in j["memory"]])' "$run"
done | tee -a "$W/summary.txt"

measure export-merged "$Q" export --checkpoint "$M" --lora "$L/run-a" --merge-lora --out "$W/merged" --overwrite
measure score-base-lora "$Q" score --model "$M" --lora "$L/run-a" --dtype bfloat16 "$D/baboon.jpg" "$D/fruits.jpg"
measure score-merged "$Q" score --model "$W/merged" --dtype bfloat16 "$D/baboon.jpg" "$D/fruits.jpg"
grep -h "scored\|quality" "$W"/score-*.log
