#!/usr/bin/env python3
# Makes the PyTorch side of the fine-tuning round trip (tests/e2e/finetune_interop_test.cc), in two
# parts with a frugal run between them:
#
#   python3 tests/interop/make_finetune.py pretrain    # data + a model pretrained by PyTorch
#   (cd tests/interop/finetune && ../../../build/frugal train job.toml --out /tmp/finetune) && \
#     cp /tmp/finetune/model.safetensors tests/interop/finetune/frugal_finetuned.safetensors
#   python3 tests/interop/make_finetune.py expected    # PyTorch evaluates frugal's fine-tuned model
#
# Run from the repository root with PyTorch 2.x, numpy and safetensors (a venv: python3 -m venv
# /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy safetensors).
#
# The tasks: inputs x in R^12 ~ N(0, 1); a fixed hidden map h = tanh(x W) in R^8. The source task
# (pretraining, 10 classes) is argmax(h A); the target task (fine-tuning, 3 classes) is argmax(h B):
# both read the same features, so a body that learned them transfers, and the target has a
# different class count, so the head is re-initialized ([init] skip = ["layers.3.*"]).
#
# pretrain: trains nn.Sequential(Flatten, Linear(12, 32), ReLU, Linear(32, 10)) under the attribute
# `layers` (frugal's MLP names: layers.1.*, layers.3.*) on 20000 source samples and saves it with
# safetensors.torch.save_file (torch_pretrained.safetensors); writes the target task's small
# training set (150 samples) and test set (400) as .npy files (f32 inputs, int64 labels), which
# frugal reads with [data] kind = "npy".
# expected: loads frugal_finetuned.safetensors into the same module with 3 outputs, evaluates it on
# the target test set and writes expected.json (correct count, accuracy, mean loss, near ties).
# Limits: CPU, one thread, so the files are the same on any machine with the same PyTorch.

import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "finetune")
SEED = 2026
FEATURES, HIDDEN_TRUE, HIDDEN = 12, 8, 32
SOURCE_CLASSES, TARGET_CLASSES = 10, 3
SOURCE_SAMPLES, TARGET_TRAIN, TARGET_TEST = 20000, 150, 400
EPOCHS, BATCH, LR = 30, 64, 3e-3
# A sample whose two largest float64 logits are closer than this may be classified differently by
# two f32 kernels; the test refuses to compare counts when there is one (regenerate instead).
TIE_MARGIN = 1e-4


def tasks():
    """The fixed hidden map and the two readouts, from one seeded generator."""
    rng = np.random.default_rng(SEED)
    w = rng.normal(size=(FEATURES, HIDDEN_TRUE)) * (2.0 / np.sqrt(FEATURES))
    a = rng.normal(size=(HIDDEN_TRUE, SOURCE_CLASSES))
    b = rng.normal(size=(HIDDEN_TRUE, TARGET_CLASSES))
    return rng, w, a, b


def sample(rng, w, readout, n):
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)  # (N, 12)
    y = np.argmax(np.tanh(x.astype(np.float64) @ w) @ readout, axis=1).astype(np.int64)  # (N,)
    return x, y


class Mlp(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, classes))

    def forward(self, x):
        return self.layers(x)


def evaluate(model, x, y, classes):
    """Correct count, accuracy, mean loss (f32 logits, f64 loss) and near ties from f64 logits."""
    model.eval()
    with torch.no_grad():
        logits = model(x)  # (N, classes) f32
        loss = nn.functional.cross_entropy(logits.double(), y).item()
        pred = logits.argmax(dim=1)
        exact = Mlp(classes).double()
        exact.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
        top2 = exact(x.double()).topk(2, dim=1).values
        near_ties = int(((top2[:, 0] - top2[:, 1]) < TIE_MARGIN).sum())
    correct = int((pred == y).sum())
    return {"samples": len(y), "correct": correct, "accuracy": correct / len(y), "loss": loss, "near_ties": near_ties}


def pretrain():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    rng, w, a, b = tasks()
    x_source, y_source = sample(rng, w, a, SOURCE_SAMPLES)
    x_train, y_train = sample(rng, w, b, TARGET_TRAIN)
    x_test, y_test = sample(rng, w, b, TARGET_TEST)
    for name, array in [("train.npy", x_train), ("train_targets.npy", y_train), ("test.npy", x_test),
                        ("test_targets.npy", y_test)]:
        np.save(os.path.join(HERE, name), array)

    model = Mlp(SOURCE_CLASSES)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = torch.from_numpy(x_source), torch.from_numpy(y_source)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    path = os.path.join(HERE, "torch_pretrained.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path,
              metadata={"source": "tests/interop/make_finetune.py", "task": "source, 10 classes"})
    x_check, y_check = sample(np.random.default_rng(SEED + 1), w, a, 2000)
    result = evaluate(model, torch.from_numpy(x_check), torch.from_numpy(y_check), SOURCE_CLASSES)
    print("pretrained on the source task:", json.dumps(result))
    counts = np.bincount(y_train, minlength=TARGET_CLASSES).tolist()
    print(f"target task: {TARGET_TRAIN} training samples (per class {counts}), {TARGET_TEST} test samples")


def expected():
    torch.set_num_threads(1)
    model = Mlp(TARGET_CLASSES)
    model.load_state_dict(load_file(os.path.join(HERE, "frugal_finetuned.safetensors")), strict=True)
    x = torch.from_numpy(np.load(os.path.join(HERE, "test.npy")))
    y = torch.from_numpy(np.load(os.path.join(HERE, "test_targets.npy")))
    out = {
        "note": "PyTorch " + torch.__version__ + " on the target test set; made by make_finetune.py expected",
        "tie_margin": TIE_MARGIN,
        "frugal_finetuned.safetensors": evaluate(model, x, y, TARGET_CLASSES),
    }
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("pretrain", "expected"):
        sys.exit("usage: make_finetune.py pretrain|expected")
    pretrain() if sys.argv[1] == "pretrain" else expected()
