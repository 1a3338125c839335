#!/usr/bin/env python3
"""The KJV character GPT of examples/kjv-gpt.toml written for PyTorch: the peer that frugal is
measured against. Same model (pre-norm, tanh GELU, learned positions, tied embeddings), GPT-2 init,
AdamW with decay on rank >= 2 weights only, linear warmup + cosine, global norm clipping, random
windows of context+1 characters, validation on the last 5% of the text in order.
Usage: kjv_gpt_torch.py --text runs/cache/kjv.txt [--minutes 15] [--steps 3000] [--threads 2] [--bf16]
Prints one JSON line per evaluation and a final JSON summary."""
import argparse, json, math, time, resource
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.fc_proj = nn.Linear(4 * width, width)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.heads)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight",)) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-min", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-tokens", type=int, default=100000)
    ap.add_argument("--bf16", action="store_true", help="torch.autocast(cpu, bfloat16)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    text = open(args.text, "rb").read()
    n_val = int(len(text) * 0.05)
    train_bytes, val_bytes = text[: len(text) - n_val], text[len(text) - n_val:]
    chars = sorted(set(train_bytes))
    index = np.full(256, -1, np.int64)
    index[chars] = np.arange(len(chars))
    train = torch.from_numpy(index[np.frombuffer(train_bytes, np.uint8)])
    val = torch.from_numpy(index[np.frombuffer(val_bytes, np.uint8)])
    model = Gpt(len(chars), args.context, args.layers, args.heads, args.width)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.99))

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (1 / args.warmup + (1 - 1 / args.warmup) * step / args.warmup)
        p = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
        return args.lr_min + (args.lr - args.lr_min) * (1 + math.cos(math.pi * p)) / 2

    def evaluate():
        model.eval()
        total, count = 0.0, 0
        stream = val[: args.eval_tokens + 1]
        T = args.context
        windows = (len(stream) - 1) // T
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            for b in range(0, windows, args.batch):
                idx = torch.arange(b, min(windows, b + args.batch))
                x = torch.stack([stream[i * T: i * T + T] for i in idx])
                y = torch.stack([stream[i * T + 1: i * T + T + 1] for i in idx])
                logits = model(x).float()
                total += F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1), reduction="sum").item()
                count += y.numel()
        model.train()
        return total / count

    gen = torch.Generator().manual_seed(1)
    start = time.time()
    step = 0
    val_loss = float("nan")
    while step < args.steps and time.time() - start < args.minutes * 60:
        offsets = torch.randint(0, len(train) - args.context - 1, (args.batch,), generator=gen)
        x = torch.stack([train[o: o + args.context] for o in offsets])
        y = torch.stack([train[o + 1: o + args.context + 1] for o in offsets])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.eval_every == 0:
            val_loss = evaluate()
            print(json.dumps({"step": step, "time_s": round(time.time() - start, 1), "train_loss": loss.item(),
                              "val_bits_per_char": val_loss / math.log(2)}), flush=True)
    wall = time.time() - start
    val_loss = evaluate()
    print(json.dumps({"peer": "pytorch", "torch": torch.__version__, "bf16": args.bf16, "steps": step,
                      "wall_s": round(wall, 1), "tokens_per_s": step * args.batch * args.context / wall,
                      "val_bits_per_char": val_loss / math.log(2),
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}), flush=True)


if __name__ == "__main__":
    main()
