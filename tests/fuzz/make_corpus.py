#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid files of
each format, a few near-misses, and copies of the project's own small inputs (job files, catalog,
test data). Deterministic; rerun after changing a format: python3 tests/fuzz/make_corpus.py"""
import gzip
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


def copy(target, path, limit=8192):
    with open(os.path.join(ROOT, path), "rb") as f:
        data = f.read()
    if len(data) <= limit:
        put(target, path.replace("/", "_"), data)


def idx(code, fmt, dims, values):
    head = bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return head + b"".join(struct.pack(">" + fmt, v) for v in values)


def make_idx():
    images = idx(0x08, "B", [2, 3, 3], range(18))
    put("idx", "images_u8", images)
    put("idx", "labels_u8", idx(0x08, "B", [4], [0, 1, 2, 9]))
    put("idx", "i8", idx(0x09, "b", [3], [-1, 0, 1]))
    put("idx", "i16", idx(0x0B, "h", [2, 2], [-300, 0, 1, 300]))
    put("idx", "i32", idx(0x0C, "i", [3], [-70000, 0, 70000]))
    put("idx", "f32", idx(0x0D, "f", [2, 1, 2], [0.5, -1.0, 2.0, 1e-3]))
    put("idx", "f64", idx(0x0E, "d", [2], [3.25, -0.125]))
    put("idx", "images_u8.gz", gz(images))
    put("idx", "truncated", images[:-3])
    put("idx", "gzip_two_members", gz(images[:10]) + gz(images[10:]))


def npy(descr, shape, payload, version=1):
    shape_text = "(" + "".join(f"{d}, " if len(shape) == 1 else f"{d}, " for d in shape).rstrip(", ")
    shape_text += ",)" if len(shape) == 1 else ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    prefix = 10 if version == 1 else 12
    pad = (64 - (prefix + len(header) + 1) % 64) % 64
    header = header + " " * pad + "\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode() + payload


def make_npy():
    put("npy", "f4_2x3", npy("<f4", [2, 3], struct.pack("<6f", 0, 1, 2, 3, 4.5, -5)))
    put("npy", "f8_3", npy("<f8", [3], struct.pack("<3d", 1, 2, 3)))
    put("npy", "u1_2x2x2", npy("|u1", [2, 2, 2], bytes(range(8))))
    put("npy", "i8_4", npy("<i8", [4], struct.pack("<4q", 0, 1, 2, 3)))
    put("npy", "i4_2", npy("<i4", [2], struct.pack("<2i", 7, -7)))
    put("npy", "i1_3", npy("|i1", [3], struct.pack("<3b", 1, -1, 0)))
    put("npy", "scalar", npy("<f4", [], struct.pack("<f", 1.5)))
    put("npy", "empty_0x3", npy("<f4", [0, 3], b""))
    put("npy", "v2_f4", npy("<f4", [2], struct.pack("<2f", 1, 2), version=2))
    put("npy", "v3_i8", npy("<i8", [1], struct.pack("<q", 5), version=3))
    put("npy", "f4_2x3.gz", gz(npy("<f4", [2, 3], struct.pack("<6f", 0, 1, 2, 3, 4.5, -5))))
    put("npy", "nan", npy("<f4", [2], struct.pack("<2f", 1, float("nan"))))
    copy("npy", "tests/interop/finetune/train_targets.npy")


def make_csv():
    put("csv", "header", "height,weight,class\n1.5,2,0\n-3,4e1,2\r\n\n5, +6 ,1\n")
    put("csv", "no_header", "1,2,3\n4,5,6\n")
    put("csv", "names", "6.3,3.3,virginica\n5.1,3.5,setosa\n7.0,3.2,versicolor\n4.9,3.0,setosa\n")
    put("csv", "quoted", 'species,"len, cm",width\n"cat",1,2\ndog,3,"4"\n"a ""b""",5,6\n')
    put("csv", "bom_crlf", "\ufeffa,b,y\r\n1,2,0\r\n3,4,1\r\n")
    put("csv", "bad_rows", "a,b,y\n1,2,0\n3,4\n5,1e300,1\n7,nan,0\n")
    put("csv", "labels", "x,label\n1,0\n2,-1\n3,2.5\n4,seven\n5,200\n")
    put("csv", "semicolon", "a;b;y\n1;2;0\n")
    put("csv", "four.csv.gz", gz(b"x0,x1,x2,label\n0.1,0.2,0.3,1\n0.4,0.5,0.6,0\n-1,2,-3,3\n"))


def make_text():
    put("text", "verse", "In the beginning God created the heaven and the earth.\n")
    put("text", "bytes", bytes(range(256)))
    put("text", "verse.gz", gz(b"And God said, Let there be light: and there was light.\n" * 3))
    put("text", "vocab", "[10,32,33,65,97]")
    put("text", "vocab_spaces", " [ 0 , 255 ]\n")
    put("text", "vocab_empty", "[]")


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def make_safetensors():
    put("safetensors", "mlp", safetensors({
        "0.weight": ("F32", [2, 3], struct.pack("<6f", *range(6))),
        "0.bias": ("F32", [2], struct.pack("<2f", 0.5, -0.5))}, {"format": "pt"}))
    put("safetensors", "dtypes", safetensors({
        "a": ("F64", [1], struct.pack("<d", 1)), "b": ("BF16", [2], b"\x80\x3f\x00\x40"),
        "c": ("F16", [1], b"\x00\x3c"), "d": ("I8", [2], b"\x01\xff"), "e": ("U8", [1], b"\x07"),
        "f": ("I32", [1], struct.pack("<i", 3)), "g": ("I64", [1], struct.pack("<q", 4))}))
    put("safetensors", "empty_tensor", safetensors({"z": ("F32", [0, 4], b""), "s": ("F32", [], b"\0\0\x80\x3f")}))
    put("safetensors", "nan_weight", safetensors({"w": ("F32", [1], struct.pack("<f", float("inf")))}))
    put("safetensors", "no_tensors", safetensors({}, {"k": "v"}))
    copy("safetensors", "tests/interop/finetune/frugal_finetuned.safetensors")


def checkpoint(step, tensors, values, job_hash="0123456789abcdef"):
    entries, data = [], b""
    for name, dtype, shape, payload in tensors:
        offset = (len(data) + 63) // 64 * 64
        data += b"\0" * (offset - len(data)) + payload
        entries.append({"name": name, "dtype": dtype, "shape": shape, "offset": offset, "length": len(payload)})
    header = json.dumps({"step": step, "job_hash": job_hash, "data_bytes": len(data), "tensors": entries,
                         "values": values}, separators=(",", ":")).encode()
    fixed = b"FRUGALCK" + struct.pack("<IQ", 1, len(header))
    start = (20 + len(header) + 63) // 64 * 64
    body = fixed + header + b"\0" * (start - 20 - len(header)) + data
    # The checksum (XXH64) is left zero: the fuzz target also reads every input with it recomputed.
    return body + b"\0" * 8 + b"FRUGALCK"


def make_checkpoint():
    put("checkpoint", "step12", checkpoint(12, [
        ("model.0.weight", "f32", [2, 3], struct.pack("<6f", *range(6))),
        ("model.0.bias", "f32", [2], struct.pack("<2f", 1, 2)),
        ("optim.step", "i64", [], struct.pack("<q", 12))], {"epoch": "1", "rng": "42"}))
    put("checkpoint", "empty", checkpoint(0, [], {}))
    put("checkpoint", "dtypes", checkpoint(3, [
        ("a", "f64", [1], struct.pack("<d", 1)), ("b", "u8", [3], b"\1\2\3"), ("c", "i32", [0], b""),
        ("d", "bf16", [1], b"\x80\x3f"), ("e", "f16", [1], b"\x00\x3c"), ("f", "i8", [1], b"\xff")], {}))


def make_toml():
    for path in ["examples/fashion-mnist-mlp.toml", "examples/fashion-mnist-cnn.toml", "examples/kjv-gpt.toml",
                 "examples/cpp/fashion-mnist-ema.toml", "tests/interop/job.toml", "tests/interop/finetune/job.toml"]:
        copy("job", path)
    for name in sorted(os.listdir(os.path.join(ROOT, "examples", "transfer"))):
        if name.endswith(".toml"):
            copy("job", "examples/transfer/" + name)
    put("job", "csv_full", """[run]\nname = "csv"\nseed = 1\nthreads = 1\n[data]\nkind = "csv"
train = "train.csv"\ntest = "test.csv"\nlabel_column = "label"\nheader = "yes"\nlabels = "names"
[model]\nkind = "mlp"\nhidden = [16, 8]\n[optim]\nkind = "adamw"\nlr = 1e-3\nweight_decay = 0.01
[schedule]\nkind = "cosine"\nwarmup_steps = 5\n[train]\nbatch_size = 8\nsteps = 20
[checkpoint]\nevery_steps = 10\nkeep = 2\n[budget]\nmax_usd = 0.5\n[memory]\nrecompute = "none"\n""")
    with open(os.path.join(ROOT, "catalog", "instances.toml"), "rb") as f:
        catalog = f.read().decode()
    # The whole catalog is too big for a seed: its first few entries.
    parts = catalog.split("\n[instance.")
    put("catalog", "instances_head", "\n[instance.".join(parts[:4]) + "\n")
    for i in range(4, min(len(parts), 16), 4):
        put("catalog", f"instances_{i}", "[instance." + "\n[instance.".join(parts[i:i + 4]) + "\n")
    put("catalog", "user_override", '[instance."c7i.2xlarge"]\nusd_per_hour = 0.3\n')


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    make_idx()
    make_npy()
    make_csv()
    make_text()
    make_safetensors()
    make_checkpoint()
    make_toml()
