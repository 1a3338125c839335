#!/usr/bin/python3
# Makes the PyTorch side of the interop test (tests/e2e/interop_test.cc): trains the job's MLP in
# PyTorch and saves it under frugal's names (torch_mlp.safetensors), evaluates it and the frugal-trained
# model (frugal_mlp.safetensors) in PyTorch, and writes both results to expected.json.
#
# Run from anywhere with Debian's torch 1.13:   /usr/bin/python3 tests/interop/make_interop.py
# frugal_mlp.safetensors was made with the same job file, then copied here:
#   build/frugal train tests/interop/job.toml --out /tmp/interop && \
#     cp /tmp/interop/model.safetensors tests/interop/frugal_mlp.safetensors
# Limits: safetensors are read and written by hand (struct + json, F32/F64 only), so the script
# needs no `safetensors` package; the data is Debian's dataset-fashion-mnist.
#
# Name mapping (the "documented mapping"): the model is a module with one child `layers`, an
# nn.Sequential(Flatten, Linear(784, 64), ReLU, Linear(64, 10)), so its state dict keys are exactly
# frugal's: layers.1.weight (64, 784), layers.1.bias (64), layers.3.weight (10, 64), layers.3.bias (10).
# Weights are (out_features, in_features) on both sides; y = x W^T + b.

import gzip
import json
import os
import struct

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = "/usr/share/datasets/fashion-mnist"
SEED = 7
HIDDEN = 64
EPOCHS = 1
BATCH = 64
LR = 0.002
# f32 logits from two different matmul kernels agree to about 1e-6 relative; a sample whose two
# largest float64 logits are closer than this may legitimately be classified differently by
# PyTorch and frugal. The count is recorded so the test can tell a tie from a bug.
TIE_MARGIN = 1e-4


def read_idx(path):
    """An IDX file (gzip) as a numpy array; checks the magic number and the size."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} values, header says {dims}")
    return data.reshape(dims)


def load_split(kind):
    images = read_idx(os.path.join(DATA, f"{kind}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(DATA, f"{kind}-labels-idx1-ubyte.gz"))
    # pixels / 255 in float32, exactly as frugal's idx reader with normalize = "none".
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255.0))  # (N, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))  # (N,)
    return x, y


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))

    def forward(self, x):
        return self.layers(x)


_DTYPES = {"F32": (np.float32, torch.float32), "F64": (np.float64, torch.float64)}


def save_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, t in tensors.items():
        blob = t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad the header to a multiple of 8 bytes, as the spec suggests
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out, end = {}, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: {name} has dtype {info['dtype']}; this script reads F32/F64 only")
        np_dtype, _ = _DTYPES[info["dtype"]]
        begin, stop = info["data_offsets"]
        array = np.frombuffer(data[begin:stop], dtype=np.dtype(np_dtype).newbyteorder("<"))
        out[name] = torch.from_numpy(array.astype(np_dtype).reshape(info["shape"]))
        end = max(end, stop)
    if end != len(data):
        raise ValueError(f"{path}: data section is {len(data)} bytes, tensors cover {end}")
    return out


def evaluate(model, x, y):
    """Accuracy, correct count, mean loss in float32, and the near-tie count from float64 logits."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])  # (N, 10) f32
        loss = nn.functional.cross_entropy(logits.double(), y, reduction="mean").item()
        pred = logits.argmax(dim=1)
        exact = Mlp().double()
        exact.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
        logits64 = exact(x.double())  # (N, 10) f64
        top2 = logits64.topk(2, dim=1).values
        near_ties = int(((top2[:, 0] - top2[:, 1]) < TIE_MARGIN).sum())
        agree64 = int((logits64.argmax(dim=1) == pred).sum())
    correct = int((pred == y).sum())
    return {"samples": len(y), "correct": correct, "accuracy": correct / len(y), "loss": loss,
            "near_ties": near_ties, "f64_argmax_agrees": agree64}


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # a reproducible torch_mlp.safetensors on any machine
    x_train, y_train = load_split("train")
    x_test, y_test = load_split("t10k")

    # (1) train in PyTorch, save under frugal's names.
    model = Mlp()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch_path = os.path.join(HERE, "torch_mlp.safetensors")
    save_safetensors(torch_path, model.state_dict(), {"format": "pt", "source": "tests/interop/make_interop.py"})
    # Evaluate what was written, not the in-memory model.
    reloaded = Mlp()
    reloaded.load_state_dict(load_safetensors(torch_path), strict=True)
    torch_result = evaluate(reloaded, x_test, y_test)

    # (2) the model frugal trained, evaluated by PyTorch.
    frugal_model = Mlp()
    frugal_model.load_state_dict(load_safetensors(os.path.join(HERE, "frugal_mlp.safetensors")), strict=True)
    frugal_result = evaluate(frugal_model, x_test, y_test)

    expected = {
        "note": "PyTorch " + torch.__version__ + " test-set results (t10k, 10000 samples); made by make_interop.py",
        "tie_margin": TIE_MARGIN,
        "torch_mlp.safetensors": torch_result,
        "frugal_mlp.safetensors": frugal_result,
    }
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    print(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main()
