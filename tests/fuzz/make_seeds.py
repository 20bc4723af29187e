"""Writes tests/fuzz/corpus/: the fixtures' small files as they are, plus small files made here with
torch.save (the real .bin writer) and by hand (safetensors, images in the formats OpenCV reads).
Run with the project's venv: .venv/bin/python tests/fuzz/make_seeds.py"""
import io
import json
import os
import shutil
import struct
import zipfile
import zlib

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures")


def put(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def copy(target, src, name=None):
    with open(os.path.join(ROOT, src), "rb") as f:
        put(target, name or os.path.basename(src), f.read())


def safetensors(tensors, metadata=None, align=True):
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, arr) in tensors.items():
        b = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    if align:
        h += b" " * (-(8 + len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def state_dicts():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    yield "float32", {"w": base, "b": torch.ones(3)}
    yield "dtypes", {d: torch.arange(4).to(getattr(torch, d)) for d in
                     ["float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]}
    yield "views", {"t": base.t(), "row": base[1], "col": base[:, 2], "same": base}  # one shared storage
    yield "empty", {"e": torch.empty(0, 5), "scalar": torch.tensor(3.5)}
    yield "parameter", {"p": torch.nn.Parameter(torch.ones(2, 2))}


def png(width, height, colour_type, depth, raw_rows):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\0" + r for r in raw_rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def bmp(width, height):
    row = bytes((x * 40) % 256 for x in range(width * 3)) + b"\0" * (-(width * 3) % 4)
    pixels = row * height
    return (b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54) +
            struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0) + pixels)


def tiff(width, height):
    pixels = bytes(range(width * height * 3))
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, 8 + 12 * 9 + 4), (259, 3, 1, 1),
               (262, 3, 1, 2), (273, 4, 1, 8 + 12 * 9 + 4 + 6), (277, 3, 1, 3), (278, 3, 1, height),
               (279, 4, 1, len(pixels))]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<HHH", 8, 8, 8) + pixels


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for name, sd in state_dicts():
        buf = io.BytesIO()
        torch.save(sd, buf)
        put("torch_bin", name + ".bin", buf.getvalue())
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
            put("pickle", name + ".pkl", z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    put("safetensors", "float32.safetensors", safetensors({"a": ("F32", a), "b": ("F32", a[0].copy())},
                                                          {"format": "pt"}))
    put("safetensors", "dtypes.safetensors", safetensors({
        "f64": ("F64", np.arange(2, dtype=np.float64)), "f16": ("F16", np.arange(3, dtype=np.float16)),
        "bf16": ("BF16", np.arange(3, dtype=np.uint16)), "i64": ("I64", np.arange(2, dtype=np.int64)),
        "i8": ("I8", np.arange(3, dtype=np.int8)), "u8": ("U8", np.arange(5, dtype=np.uint8)),
        "bool": ("BOOL", np.array([1, 0, 1], dtype=np.uint8))}))
    put("safetensors", "unaligned.safetensors", safetensors({"u8": ("U8", np.arange(3, dtype=np.uint8)),
                                                             "f32": ("F32", a)}, align=False))
    put("safetensors", "empty.safetensors", safetensors({"e": ("F32", np.zeros((0, 3), np.float32)),
                                                         "s": ("F32", np.array(1.5, np.float32))}))
    put("safetensors", "none.safetensors", safetensors({}, {}))

    for src in ["qalign-tiny/model/config.json", "qalign-lora/q-align-tiny-lora/config.json"]:
        copy("model_config", os.path.join("tests/fixtures", src), src.split("/")[0] + ".json")
    copy("model_config", "configs/demo_model.json")

    for src in ["llama2-tokenizer/legacy-true/tokenizer_config.json",
                "llama2-tokenizer/legacy-false/tokenizer_config.json",
                "llama2-tokenizer/legacy-true/special_tokens_map.json",
                "qalign-tiny/model/tokenizer_config.json"]:
        copy("tokenizer_config", os.path.join("tests/fixtures", src), src.replace("/", "_"))

    copy("dataset", "tests/fixtures/qalign-tiny/inputs/train.json")
    copy("dataset", "tests/fixtures/train/five_samples.json")
    put("dataset", "scored.json", json.dumps([
        {"id": "10007357496.jpg->68.7285714286", "image": "koniq/10007357496.jpg", "gt_score": 68.7285714286},
        {"id": "I66_01_01.png->4.63", "image": "kadid10k/I66_01_01.png"},
        {"img_path": "agi-cgi/AttnGAN_normal_000.jpg", "gt_score": "0.965602553"},
        {"image": "lsvq/722.mp4", "gt_score": 78.77, "std": "0.5"}], indent=1).encode())
    put("dataset", "soft.json", json.dumps([
        {"id": "a->3.5", "image": "a.jpg", "level_probs": [0.1, 0.2, 0.4, 0.2, 0.1], "gt_score": 3.5,
         "conversations": [{"from": "human", "value": "Rate.\n<|image|>"}, {"from": "gpt", "value": "fair"}]},
        {"id": "text only", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"image": ["a.jpg", "b.jpg"], "conversations": [{"from": "human", "value": "<|image|><|image|>"},
                                                        {"from": "gpt", "value": "good"}]}]).encode())

    for src in ["tests/fixtures/train/tiny_golden.yaml", "tests/fixtures/train/tiny_recipe.yaml",
                "configs/demo.yaml", "configs/iqa_mix.yaml", "configs/l1_koniq_lora.yaml", "configs/onealign.yaml"]:
        copy("train_config", src)

    for src in ["tests/fixtures/qalign-tiny/inputs/img_tall.jpg", "tests/fixtures/qalign-tiny/inputs/img_wide.png"]:
        copy("image", src)
    rgb = [bytes((x * 30 + y * 50 + c * 90) % 256 for x in range(5) for c in range(3)) for y in range(4)]
    put("image", "rgb8.png", png(5, 4, 2, 8, rgb))
    put("image", "grey16.png", png(3, 2, 0, 16, [bytes(range(6)), bytes(range(6, 12))]))
    put("image", "rgba.png", png(2, 2, 6, 8, [bytes(range(8)), bytes(range(8, 16))]))
    put("image", "grey_alpha16.png", png(2, 1, 4, 16, [bytes(range(8))]))
    put("image", "rgb.bmp", bmp(3, 2))
    put("image", "rgb.tiff", tiff(3, 2))
    put("image", "grey.pgm", b"P5\n3 2\n255\n" + bytes(range(0, 240, 40)))
    put("image", "rgb.ppm", b"P6\n2 2\n65535\n" + bytes(range(24)))


if __name__ == "__main__":
    main()
