# Summarises experiments/bench/quantize_accuracy.sh's folder as the Markdown tables of
# experiments/bench/README.md: per mode, the demo's held-out SRCC/PLCC (from `qalign eval`'s
# results.json), its SRCC drop from float32 and how far its scores move from float32's
# (predictions.jsonl); then the golden fixtures' scores per mode (`qalign score --json`).
import json
import math
import os
import sys

out = sys.argv[1]
modes = [line.split('|')[0] for line in open(f'{out}/modes.txt').read().splitlines() if line]


def ranks(xs):
    # Average ranks of ties, as SRCC needs.
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def predictions(mode):
    rows = [json.loads(l) for l in open(f'{out}/eval/{mode}/predictions.jsonl') if l.strip()]
    return {(r['dataset'], r['index']): r['score'] for r in rows}


def failure(path):
    lines = [l.strip() for l in open(path) if 'error' in l.lower()]
    # The message without the log line's date and level.
    return lines[-1].split('ERROR ', 1)[-1] if lines else 'failed'


ref = predictions('float32')
ref_srcc = next(iter(json.load(open(f'{out}/eval/float32/results.json')).values()))['srcc']
print('| mode | n | SRCC | PLCC | SRCC drop from float32 | SRCC with float32\'s scores | largest score difference | mean score difference |')
print('|---|---|---|---|---|---|---|---|')
for mode in modes:
    res = f'{out}/eval/{mode}/results.json'
    if not os.path.exists(res):
        print(f'| {mode} | — | — | — | — | — | — | {failure(f"{out}/eval/{mode}.log")} |')
        continue
    a = next(iter(json.load(open(res)).values()))
    p = predictions(mode)
    keys = sorted(ref)
    d = [abs(p[k] - ref[k]) for k in keys]
    same = pearson(ranks([p[k] for k in keys]), ranks([ref[k] for k in keys]))
    drop = f'{ref_srcc - a["srcc"]:+.4f}'
    print(f'| {mode} | {a["n"]} | {a["srcc"]:.4f} | {a["plcc"]:.4f} | {drop} | {same:.5f} | {max(d):.4f} | '
          f'{sum(d) / len(d):.4f} |')

for fixture in ('qalign-tiny', 'qalign-448'):
    golden = json.load(open(f'tests/fixtures/{fixture}/golden.json'))['cases']
    table = {}
    for mode in modes:
        path = f'{out}/fixtures/{fixture}/{mode}.jsonl'
        rows = [json.loads(l) for l in open(path) if l.startswith('{')] if os.path.exists(path) else []
        table[mode] = {os.path.basename(r['input']): r['score'] for r in rows}
    inputs = sorted({k for t in table.values() for k in t})
    print(f'\n{fixture}: the 1-5 score of each input per mode (golden: the authors\' code in float32)\n')
    print('| input | golden | ' + ' | '.join(modes) + ' |')
    print('|---|---|' + '---|' * len(modes))
    for name in inputs:
        stem = os.path.splitext(name)[0]
        case = golden.get(f'image.{stem}', golden.get('video'))
        cells = [f'{table[m][name]:.4f}' if name in table[m] else 'error' for m in modes]
        print(f'| {name} | {case["score_model"][0]:.4f} | ' + ' | '.join(cells) + ' |')
