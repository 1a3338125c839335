#!/usr/bin/env python3
"""examples/kjv-gpt.toml written for PyTorch: the character GPT (4 layers, 4 heads, width 128, context
128, pre-norm, tanh GELU, learned positions, tied embeddings, no dropout) with frugal's initial
weights (GPT-2's scheme drawn from frugal's streams), frugal's text split (last 5% = validation),
vocabulary and random training windows (TokenLoader), AdamW lr 0.003 / wd 0.1 on rank >= 2 weights,
betas (0.9, 0.99), warmup_cosine (100 warmup steps, lr_min 3e-4), global-norm clipping at 1.0,
batch 32, 1600 steps or 14.5 minutes, validation every 400 steps over the first 100000 characters.
Usage: kjv_gpt_torch.py [--steps 1600] [--minutes 14.5] [--threads 2] [--bf16] [--compile]
Prints one JSON line per evaluation and a final JSON summary."""
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import frugal_order
import peer_common as pc


def attention(q, k, v):
    """Causal attention (B, H, T, D): PyTorch's fused kernel when it has one (2.0+), else the formula."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):  # (B, T, C)
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
        y = attention(q, k, v)  # (B, H, T, D)
        return self.drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class GptMlp(nn.Module):
    def __init__(self, width, dropout):
        super().__init__()
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class GptBlock(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = GptMlp(width, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    """frugal's nn::Gpt with its parameter names (wte, wpe, blocks.N.{ln1,attn.qkv,attn.proj,ln2,mlp.fc,
    mlp.proj}, ln_f); the head is wte.weight (tied)."""

    def __init__(self, vocab, context, layers, heads, width, dropout=0.0):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(GptBlock(width, heads, dropout) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(width, eps=1e-5)
        self.layers = layers

    def forward(self, ids):  # (B, T) -> (B, T, V)
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        x = self.ln_f(self.blocks(self.drop(x)))
        return F.linear(x, self.wte.weight)


def gpt2_rule(layers):
    """Gpt::reset_parameters: Linear/Embedding weights N(0, 0.02), residual projections (modules named
    *.proj) N(0, 0.02 / sqrt(2 * layers)), biases 0, LayerNorms 1 / 0."""
    def rule(module_name, module, param_name):
        if isinstance(module, nn.Linear):
            if param_name == "bias":
                return ("zeros",)
            std = 0.02 / math.sqrt(2 * layers) if module_name.endswith(".proj") else 0.02
            return "normal", 0.0, std
        if isinstance(module, nn.Embedding):
            return "normal", 0.0, 0.02
        return pc.torch_default_rule(module_name, module, param_name)
    return rule


def split_text(text, val_fraction):
    """prepare_data for text: the last int(n * val_fraction) characters are validation; the
    vocabulary is the sorted set of training bytes."""
    n = len(text)
    val_len = int(n * val_fraction)
    train_bytes, val_bytes = text[: n - val_len], text[n - val_len:]
    chars = sorted(set(train_bytes))
    index = np.full(256, -1, np.int64)
    index[chars] = np.arange(len(chars))
    train = index[np.frombuffer(train_bytes, np.uint8)]
    val = index[np.frombuffer(val_bytes, np.uint8)]
    if (val < 0).any():
        raise ValueError("a validation character is not in the training vocabulary")
    return train, val, len(chars)


def main():
    ap = pc.base_parser(__doc__.split("\n")[0])
    ap.set_defaults(minutes=14.5)
    ap.add_argument("--text", default="", help="the KJV text (default: frugal's cache runs/cache/kjv.txt, made if absent)")
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-min", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--clip-norm", type=float, default=1.0)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--eval-tokens", type=int, default=100000)
    ap.add_argument("--dump-init", action="store_true", help="print the initial parameters (vocab 65) and exit")
    args = ap.parse_args()

    def build(vocab):
        model = Gpt(vocab, args.context, args.layers, args.heads, args.width, args.dropout)
        pc.load_frugal_init(model, args.seed, gpt2_rule(args.layers))
        return model

    if args.dump_init:
        return pc.init_dump(build(65))
    start = time.perf_counter()
    pc.setup_torch(args)
    text = open(args.text, "rb").read() if args.text else pc.kjv_text()
    train_np, val_np, vocab = split_text(text, args.val_fraction)
    train, val = torch.from_numpy(train_np), torch.from_numpy(val_np)
    model = build(vocab)
    opt = pc.adamw(model, args.lr, args.weight_decay, betas=(0.9, args.beta2))
    run_model = pc.maybe_compile(model, args)
    lr_at = pc.warmup_cosine(args.lr, args.warmup, args.steps, args.lr_min)
    T, B = args.context, args.batch
    offsets = torch.arange(T + 1)

    def evaluate():
        """evaluate_language_model: consecutive windows over val[:eval_tokens + 1], batches of B."""
        model.eval()
        stream = val[: args.eval_tokens + 1] if 0 < args.eval_tokens < len(val) - 1 else val
        windows = (len(stream) - 1) // T
        total = 0.0
        with torch.no_grad(), pc.autocast(args):
            for first in range(0, windows, B):
                rows = torch.arange(first, min(windows, first + B)) * T
                chunk = stream[rows[:, None] + offsets]  # (b, T + 1)
                logits = run_model(chunk[:, :-1]).float()
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1),
                                         reduction="sum").item()
        model.train()
        return total / (windows * T)

    model.train()
    params = list(model.parameters())
    step, train_s, first_step_s, loss_value = 0, 0.0, 0.0, float("nan")
    prepare_s = time.perf_counter() - start
    while step < args.steps:
        t0 = time.perf_counter()
        starts = torch.tensor(frugal_order.window_starts(len(train), T, B, args.seed, step))
        chunk = train[starts[:, None] + offsets]  # (B, T + 1)
        with pc.autocast(args):
            logits = run_model(chunk[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        loss_value = loss.item()
        loss.backward()
        if args.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip_norm)
        pc.set_lr(opt, lr_at(step))
        opt.step()
        opt.zero_grad(set_to_none=True)
        train_s += time.perf_counter() - t0
        first_step_s = first_step_s or train_s  # with --compile: includes compilation
        step += 1
        if step % args.eval_every == 0 or step == args.steps:
            val_loss = evaluate()
            pc.emit({"kind": "eval", "step": step, "time_s": round(time.perf_counter() - start, 1),
                     "train_s": round(train_s, 2), "train_loss": loss_value,
                     "val_bits_per_char": val_loss / math.log(2)}, args.quiet)
        if args.minutes and time.perf_counter() - start > args.minutes * 60 and step < args.steps:
            break  # trainer.cc: max_minutes against the run's wall time, checked after each step
    val_loss = evaluate()
    pc.emit({"peer": "pytorch", "example": "kjv-gpt", "torch": torch.__version__, "bf16": args.bf16,
             "compile": args.compile, "threads": args.threads, "steps": step, "samples_seen": step * B,
             "train_s": train_s, "first_step_s": first_step_s, "tokens_per_s": step * B * T / train_s, "prepare_s": prepare_s,
             "wall_s": time.perf_counter() - start, "train_loss": loss_value, "val_loss": val_loss,
             "val_bits_per_char": val_loss / math.log(2), "peak_rss_bytes": pc.peak_rss_bytes()}, final=True)


if __name__ == "__main__":
    main()
