"""Shared parts of the PyTorch peers of examples/*.toml: the data as frugal prepares it (gz IDX
Fashion-MNIST, /255, seeded val split, "scalar" normalization; the KJV text cache), frugal's initial
weights, frugal's warmup_cosine schedule and AdamW parameter groups, the timed classifier loop and
the final JSON line. Limits: dropout masks come from torch's RNG (frugal's differ), so runs match
in recipe and data order, not bit for bit."""
import argparse
import gzip
import json
import math
import os
import resource
import subprocess
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import frugal_order

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def base_parser(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (frugal: [run] threads)")
    ap.add_argument("--bf16", action="store_true", help="torch.autocast('cpu', dtype=torch.bfloat16)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (needs a C compiler)")
    ap.add_argument("--channels-last", action="store_true",
                    help="model and image batches in torch.channels_last (PyTorch's advice for CNNs on CPU)")
    ap.add_argument("--minutes", type=float, default=0, help="stop after this much wall time (0 = off)")
    ap.add_argument("--seed", type=int, default=1, help="[run] seed: data order and initial weights")
    ap.add_argument("--quiet", action="store_true", help="only the final JSON line")
    return ap


def setup_torch(args):
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = True
    torch.manual_seed(args.seed)  # dropout masks only; weights come from frugal's streams


def autocast(args):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)


def memory_format(t, args):
    """An image batch in the run's memory format (--channels-last); other tensors unchanged."""
    return t.contiguous(memory_format=torch.channels_last) if args.channels_last and t.dim() == 4 else t


def maybe_compile(model, args):
    return torch.compile(model) if args.compile else model


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def emit(record, quiet=False, final=False):
    if final or not quiet:
        print(json.dumps(record), flush=True)


# ---- data ----

def read_idx_gz(path):
    """An IDX file (gzip or plain) as a numpy array; u8 only, as frugal's read_idx_dataset needs."""
    raw = gzip.open(path, "rb").read() if path.endswith(".gz") else open(path, "rb").read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: expected an unsigned-byte IDX file, magic {raw[:4].hex()}")
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * d: 8 + 4 * d], "big") for d in range(rank)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def fashion_mnist(seed, val_fraction=0.1, directory=FASHION_DIR):
    """(train, val, test) as (x f32 (N, 1, 28, 28), y i64 (N)) torch tensors, prepared as frugal's
    prepare_data does: pixels / 255, val = split_fraction(train, val_fraction, seed + 1), then
    x = (x - mean) / std with one mean and std over the remaining training pixels (f64 sums)."""
    def load(images, labels):
        x = read_idx_gz(os.path.join(directory, images)).astype(np.float32) / np.float32(255.0)
        y = read_idx_gz(os.path.join(directory, labels)).astype(np.int64)
        return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2]), y

    x, y = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    x_test, y_test = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    train_rows, val_rows = frugal_order.split_fraction(len(x), val_fraction, seed + 1)
    x_train, y_train, x_val, y_val = x[train_rows], y[train_rows], x[val_rows], y[val_rows]
    del x
    # Statistics in f64 a chunk at a time (no f64 copy of the whole set: peak RSS is measured).
    flat = x_train.reshape(len(x_train), -1)
    chunks = range(0, len(flat), 4096)
    mean = sum(float(np.sum(flat[i: i + 4096], dtype=np.float64)) for i in chunks) / flat.size
    var = sum(float(np.sum((flat[i: i + 4096].astype(np.float64) - mean) ** 2)) for i in chunks) / flat.size
    m, s = np.float32(mean), np.float32(math.sqrt(var) if math.sqrt(var) > 1e-12 else 1.0)
    sets = []
    for xs, ys in ((x_train, y_train), (x_val, y_val), (x_test, y_test)):
        xs -= m  # in place, f32: (x - mean) / std as Normalizer::apply
        xs /= s
        sets.append((torch.from_numpy(xs), torch.from_numpy(np.ascontiguousarray(ys))))
    return sets


def kjv_text(cache_dir="runs/cache"):
    """The KJV text exactly as frugal caches it (train/data_setup.cc kjv_text_path): `bible -f
    Gen1:1-Rev22:21`, each line's leading reference dropped. Reuses frugal's cache file."""
    path = os.path.join(cache_dir, "kjv.txt")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return open(path, "rb").read()
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, check=True).stdout
    text = bytearray()
    for line in out.split(b"\n"):
        space = line.find(b" ")
        if space < 0:
            continue
        text += line[space + 1:] + b"\n"
    os.makedirs(cache_dir, exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return bytes(text)


# ---- initial weights and optimizer ----

def load_frugal_init(model, seed, rule):
    """Overwrites every parameter with the values frugal draws for it: parameter number i in
    named_parameters order (the peers' module names make that order frugal's) gets the stream
    Rng(seed, i, init). `rule(module_name, module, param_name)` returns ("uniform", low, high),
    ("normal", mean, std), ("ones",) or ("zeros",)."""
    index = {id(p): i for i, (_, p) in enumerate(model.named_parameters())}
    with torch.no_grad():
        for module_name, module in model.named_modules():
            for param_name, p in module.named_parameters(recurse=False):
                kind, *values = rule(module_name, module, param_name)
                shape = tuple(p.shape)
                if kind == "uniform":
                    p.copy_(torch.from_numpy(frugal_order.init_uniform(seed, index[id(p)], shape, *values)))
                elif kind == "normal":
                    p.copy_(torch.from_numpy(frugal_order.init_normal(seed, index[id(p)], shape, *values)))
                elif kind == "ones":
                    p.fill_(1.0)
                elif kind == "zeros":
                    p.zero_()
                else:
                    raise ValueError(f"init rule {kind} for {module_name}.{param_name}")


def torch_default_rule(module_name, module, param_name):
    """PyTorch's default init, which frugal's Linear/Conv2d/BatchNorm reset_parameters copy:
    weights kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), biases the same bound; norms 1 / 0."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        w = module.weight
        bound = 1.0 / math.sqrt(w.shape[1] * int(np.prod(w.shape[2:])))
        return "uniform", -bound, bound
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm)):
        return ("ones",) if param_name == "weight" else ("zeros",)
    raise ValueError(f"no init rule for {module_name} ({type(module).__name__})")


def init_dump(model):
    """name, shape, first, second and last value and sum of every parameter: compared by hand with
    the same listing from frugal's make_mlp / make_cnn / make_gpt (see README.md)."""
    for name, p in model.named_parameters():
        v = p.detach().reshape(-1)
        print(name, tuple(p.shape), "%.9g %.9g %.9g sum %.9g" % (v[0], v[1], v[-1], v.double().sum()))


def adamw(model, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
    """optim::default_param_groups: decay on rank >= 2 parameters only."""
    params = list(model.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas, eps=eps)


def warmup_cosine(lr, warmup, total, lr_min):
    """optim::WarmupDecaySchedule (cosine): linear warmup from lr / warmup, then cosine to lr_min."""
    def lr_at(step):
        if step < warmup:
            return lr * (1.0 / warmup + (1.0 - 1.0 / warmup) * step / warmup)
        if step >= total:
            return lr_min
        progress = (step - warmup) / (total - warmup)
        return lr_min + (lr - lr_min) * (1.0 + math.cos(math.pi * progress)) / 2.0
    if total <= warmup:
        raise ValueError(f"total steps {total} must exceed warmup_steps {warmup}")
    return lr_at


def set_lr(opt, lr):
    for group in opt.param_groups:
        group["lr"] = lr


# ---- classifiers (Fashion-MNIST MLP and CNN) ----

def classifier_parser(description, epochs):
    ap = base_parser(description)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--steps", type=int, default=0, help="optimizer steps instead of epochs (0 = epochs)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--lr-min", type=float, default=0.0)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    return ap


def evaluate_classifier(model, x, y, args, batch=1000):
    """trainer.cc evaluate_classifier: eval mode, batches of 1000, mean loss and accuracy."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad(), autocast(args):
        for begin in range(0, len(x), batch):
            logits = model(memory_format(x[begin: begin + batch], args)).float()
            target = y[begin: begin + batch]
            loss += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def train_classifier(name, build, args):
    """The trainer loop of a classification job: epochs over frugal's shuffled order (partial last
    batch kept), warmup_cosine over all steps, evaluation on val after each epoch and on val and
    test at the end. train_s times batch assembly, forward, backward and optimizer only."""
    start = time.perf_counter()
    setup_torch(args)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = fashion_mnist(args.seed, args.val_fraction)
    model = build()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = adamw(model, args.lr, args.weight_decay)
    run_model = maybe_compile(model, args)
    n = len(x_train)
    batches = (n + args.batch - 1) // args.batch
    total = args.steps if args.steps else args.epochs * batches
    lr_at = warmup_cosine(args.lr, args.warmup, total, args.lr_min)
    model.train()
    step, epoch, samples, train_s, first_step_s, loss_value = 0, 0, 0, 0.0, 0.0, float("nan")
    prepared_s = time.perf_counter() - start
    stop = False
    while step < total and not stop:
        order = torch.tensor(frugal_order.epoch_order(n, args.seed, epoch))
        for b in range(batches):
            t0 = time.perf_counter()
            rows = order[b * args.batch: (b + 1) * args.batch]
            x, y = memory_format(x_train.index_select(0, rows), args), y_train.index_select(0, rows)
            with autocast(args):
                logits = run_model(x)
            loss = F.cross_entropy(logits.float(), y)
            loss_value = loss.item()
            loss.backward()
            set_lr(opt, lr_at(step))
            opt.step()
            opt.zero_grad(set_to_none=True)
            train_s += time.perf_counter() - t0
            first_step_s = first_step_s or train_s  # with --compile: includes compilation
            step += 1
            samples += len(rows)
            if args.minutes and time.perf_counter() - start > args.minutes * 60 and step < total:
                stop = True
            if step == total or stop:
                break
        epoch += 1
        if step % batches == 0 or step == total:  # frugal: eval_every = steps per epoch, and at the end
            val_loss, val_acc = evaluate_classifier(run_model, x_val, y_val, args)
            emit({"kind": "eval", "step": step, "epoch": epoch, "val_loss": val_loss, "val_accuracy": val_acc,
                  "train_loss": loss_value, "train_s": round(train_s, 3)}, args.quiet)
    val_loss, val_acc = evaluate_classifier(run_model, x_val, y_val, args)
    test_loss, test_acc = evaluate_classifier(run_model, x_test, y_test, args)
    emit({"peer": "pytorch", "example": name, "torch": torch.__version__, "bf16": args.bf16, "compile": args.compile,
          "channels_last": args.channels_last,
          "threads": args.threads, "steps": step, "epochs": samples / n, "samples_seen": samples,
          "train_s": train_s, "first_step_s": first_step_s, "epoch_s": train_s * n / samples, "prepare_s": prepared_s,
          "wall_s": time.perf_counter() - start, "train_loss": loss_value, "val_loss": val_loss,
          "val_accuracy": val_acc, "test_loss": test_loss, "test_accuracy": test_acc,
          "peak_rss_bytes": peak_rss_bytes()}, final=True)
