# How learnable is the demo set for a plain network with a direct five-level head? A small ViT
# shaped like the demo's vision tower (mean-pooled) or a small conv net, trained with the demo's
# recipe (one-hot levels, AdamW, cosine, clip 1, batch 16) on 2 threads; prints held-out SRCC,
# overall and per distortion type. Usage: probe.py DATA_DIR STEPS vit|cnn PATCH LR
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(2)
d, steps, kind, patch, lr = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
H, SIZE = 128, 64


def load(split):
    labels = json.load(open(f'{d}/{split}.labels.json'))
    x = np.fromfile(f'{d}/{split}.u8', dtype=np.uint8).reshape(len(labels), SIZE, SIZE, 3)
    kinds = [image.rsplit('_', 1)[1].split('.')[0] for image, _ in labels]
    return torch.from_numpy(x.copy()), torch.tensor([m for _, m in labels]), kinds


x_train, y_train, _ = load('train')
x_test, y_test, test_kinds = load('test')
mean, std = torch.tensor([0.4815, 0.4578, 0.4082]), torch.tensor([0.2686, 0.2613, 0.2758])  # CLIP's


def prep(x):
    return ((x.float() / 255 - mean) / std).permute(0, 3, 1, 2)


def level(mos):  # the syllabus on [1, 5]: 0 excellent ... 4 bad
    return torch.clamp(((5 - mos) / 0.8).floor(), 0, 4).long()


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(H), nn.LayerNorm(H)
        self.attn = nn.MultiheadAttention(H, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(H, 4 * H), nn.GELU(), nn.Linear(4 * H, H))

    def forward(self, x):
        h = self.n1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.n2(x))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, H, patch, patch, bias=False)
        self.pos = nn.Parameter(torch.randn(1, (SIZE // patch) ** 2, H) * 0.02)
        self.pre, self.blocks, self.head = nn.LayerNorm(H), nn.Sequential(*[Block() for _ in range(3)]), nn.Linear(H, 5)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.blocks(self.pre(x)).mean(1))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        conv = lambda i, o, s: [nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o), nn.ReLU()]
        self.features = nn.Sequential(*conv(3, 32, 1), *conv(32, 64, 2), *conv(64, 64, 1), *conv(64, 128, 2),
                                      *conv(128, 128, 2))
        self.head = nn.Linear(128, 5)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def srcc(a, b):
    ra, rb = torch.argsort(torch.argsort(a)).float(), torch.argsort(torch.argsort(b)).float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def evaluate(model):
    model.eval()
    with torch.no_grad():
        score = torch.softmax(model(prep(x_test)), -1) @ torch.tensor([5.0, 4, 3, 2, 1])
    model.train()
    per = []
    for k in sorted(set(test_kinds)):
        idx = [i for i, t in enumerate(test_kinds) if t == k]
        per.append(f'{k} {srcc(score[idx], y_test[idx]):.2f}')
    return f'{srcc(score, y_test):.3f} [{" ".join(per)}]'


model = ViT() if kind == 'vit' else CNN()
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
g, t0 = torch.Generator().manual_seed(0), time.time()
for step in range(1, steps + 1):
    for group in opt.param_groups:  # 5 % warm-up, then cosine
        group['lr'] = lr * min(1, step / (0.05 * steps)) * 0.5 * (1 + math.cos(math.pi * step / steps))
    idx = torch.randint(0, len(y_train), (16,), generator=g)
    loss = nn.functional.cross_entropy(model(prep(x_train[idx])), level(y_train[idx]))
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % (steps // 4) == 0:
        print(f'{kind} patch {patch} step {step}: loss {loss.item():.3f} held-out SRCC {evaluate(model)} '
              f'({time.time() - t0:.0f} s)', flush=True)
