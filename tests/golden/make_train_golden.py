#!/usr/bin/python3
# Writes tests/golden/data/train_{mlp,gpt}.safetensors: 10 training steps of a tiny MLP (SGD with
# momentum) and a tiny GPT (AdamW, warmup + cosine, grad clipping) in PyTorch (1.13, run with
# /usr/bin/python3), llm.c style. Stored: the initial weights under frugal's state-dict names,
# the batches, and per step (f64) the loss, the lr used and the gradient norm before clipping. Training
# runs in f64 from f32 initial weights (the f64 run is the exact answer frugal's f32 run must
# approach). The hyperparameters live in the `__metadata__` entry "config" (one place of truth).
import math
import os
import sys
import warnings

sys.dont_write_bytecode = True  # importing make_golden must leave no __pycache__ in the tree
import torch
import torch.nn as nn
import torch.nn.functional as F

from make_golden import OUT_DIR, write_safetensors

STEPS = 10


def config_string(cfg):
    return " ".join("%s=%s" % (k, ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
                    for k, v in cfg.items())


# ---- (a) MLP 20 -> 32 -> 16 -> 5, ReLU; SGD momentum 0.9, weight decay 1e-4 on every parameter ----
class Mlp(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        layers = [nn.Flatten()]  # frugal's make_mlp: Flatten, (Linear, ReLU)..., Linear
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i + 2 < len(sizes):
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def train_mlp():
    cfg = {"inputs": 20, "hidden": [32, 16], "outputs": 5, "batch": 32, "steps": STEPS, "lr": 0.2,
           "momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-4}
    torch.manual_seed(1234)
    model = Mlp([cfg["inputs"]] + cfg["hidden"] + [cfg["outputs"]])
    gen = torch.Generator().manual_seed(99)
    teacher = torch.randn(cfg["inputs"], cfg["outputs"], generator=gen)
    xs = torch.randn(STEPS, cfg["batch"], cfg["inputs"], generator=gen).float()
    ys = (xs.double() @ teacher.double()).argmax(-1)  # learnable labels (STEPS, batch) i64
    initial = [(n, p.detach().float().clone()) for n, p in model.named_parameters()]

    model = model.double()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                                dampening=cfg["dampening"], nesterov=False, weight_decay=cfg["weight_decay"])
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xs[step].double()), ys[step])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    tensors = [("init." + n, t) for n, t in initial]
    tensors += [("x", xs), ("y", ys), ("loss", torch.tensor(losses, dtype=torch.float64))]
    write_safetensors(os.path.join(OUT_DIR, "train_mlp.safetensors"), tensors, {"config": config_string(cfg)})
    return losses


# ---- (b) GPT: vocab 11, context 8, 2 layers, 2 heads, width 16, pre-norm, GELU tanh, learned
# positions, tied embeddings; AdamW (decay on rank >= 2 only), warmup + cosine, clip at 1.0 ----
class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.heads, C // self.heads
        q, k, v = self.qkv(x).split(C, dim=2)                # (B, T, C) each
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        scores = q @ k.transpose(-2, -1) / math.sqrt(D)      # (B, H, T, T)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        y = F.softmax(scores.masked_fill(mask, float("-inf")), -1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Mlp4(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = Mlp4(width)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.blocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.wte.weight  # tied; named_parameters lists it once, as wte.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                # Larger than GPT-2's 0.02 so 10 steps move the loss visibly.
                nn.init.normal_(p, 0.0, std * 10)
            elif name.endswith("bias"):
                nn.init.uniform_(p, -0.1, 0.1)
            else:  # LayerNorm weights: away from 1 so a wrong scale would show
                nn.init.uniform_(p, 0.8, 1.2)

    def forward(self, idx):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, V)


def train_gpt():
    cfg = {"vocab": 11, "context": 8, "layers": 2, "heads": 2, "width": 16, "batch": 4, "steps": STEPS,
           "lr": 0.01, "lr_min": 0.001, "warmup": 3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
           "weight_decay": 0.1, "clip": 1.0}
    torch.manual_seed(4321)
    model = Gpt(cfg["vocab"], cfg["context"], cfg["layers"], cfg["heads"], cfg["width"])
    gen = torch.Generator().manual_seed(77)
    # Learnable sequences: arithmetic progressions mod vocab, with a few random tokens mixed in.
    B, T, V = cfg["batch"], cfg["context"], cfg["vocab"]
    start = torch.randint(0, V, (STEPS, B, 1), generator=gen)
    stride = torch.randint(1, 4, (STEPS, B, 1), generator=gen)
    seq = (start + stride * torch.arange(T + 1)) % V  # (STEPS, B, T+1)
    noise = torch.rand(seq.shape, generator=gen) < 0.1
    seq = torch.where(noise, torch.randint(0, V, seq.shape, generator=gen), seq)
    tokens, targets = seq[..., :T].contiguous(), seq[..., 1:].contiguous()
    initial = [(n, p.detach().float().clone()) for n, p in model.named_parameters()]

    model = model.double()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
    # Linear warmup from lr/warmup, then cosine to lr_min at STEPS: PyTorch's own schedulers.
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / cfg["warmup"], end_factor=1.0,
                                               total_iters=cfg["warmup"])
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=STEPS - cfg["warmup"],
                                                        eta_min=cfg["lr_min"])
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[cfg["warmup"]])
    losses, lrs, norms = [], [], []
    for step in range(STEPS):
        lr = optimizer.param_groups[0]["lr"]
        optimizer.zero_grad()
        logits = model(tokens[step])
        loss = F.cross_entropy(logits.reshape(-1, V), targets[step].reshape(-1))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        lrs.append(lr)
        norms.append(norm.item())
    tensors = [("init." + n, t) for n, t in initial]
    tensors += [("tokens", tokens), ("targets", targets), ("loss", torch.tensor(losses, dtype=torch.float64)),
                ("lr", torch.tensor(lrs, dtype=torch.float64)), ("grad_norm", torch.tensor(norms, dtype=torch.float64))]
    write_safetensors(os.path.join(OUT_DIR, "train_gpt.safetensors"), tensors, {"config": config_string(cfg)})
    return losses, norms


def main():
    torch.use_deterministic_algorithms(True)
    warnings.filterwarnings("ignore", message=".*epoch parameter.*")  # SequentialLR's own step(0)
    print("mlp loss", ["%.5f" % v for v in train_mlp()])
    losses, norms = train_gpt()
    print("gpt loss", ["%.5f" % v for v in losses])
    print("gpt grad norm", ["%.4f" % v for v in norms])


if __name__ == "__main__":
    main()
