#!/usr/bin/env python3
"""examples/fashion-mnist-mlp.toml written for PyTorch: the 784-256-128-10 ReLU MLP with dropout 0.1,
frugal's initial weights (PyTorch's default init scheme drawn from frugal's streams), frugal's data
split, normalization and shuffle order, AdamW lr 0.002 / wd 0.01 on weights only, warmup_cosine
(200 warmup steps), batch 128, 12 epochs. Prints JSON lines; the last one is the summary.
Usage: fashion_mnist_mlp_torch.py [--epochs 12 | --steps N] [--threads 2] [--bf16] [--compile]"""
import torch.nn as nn

import peer_common as pc


class Mlp(nn.Module):
    """frugal's nn::Mlp with its parameter names: layers = Flatten, (Linear, ReLU, Dropout)..., Linear."""

    def __init__(self, inputs=784, hidden=(256, 128), outputs=10, dropout=0.1):
        super().__init__()
        layers = [nn.Flatten()]
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
            width = h
        layers.append(nn.Linear(width, outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def build(seed):
    model = Mlp()
    pc.load_frugal_init(model, seed, pc.torch_default_rule)
    return model


def main():
    ap = pc.classifier_parser(__doc__.split("\n")[0], epochs=12)
    ap.add_argument("--dump-init", action="store_true", help="print the initial parameters and exit")
    args = ap.parse_args()
    if args.dump_init:
        return pc.init_dump(build(args.seed))
    pc.train_classifier("fashion-mnist-mlp", lambda: build(args.seed), args)


if __name__ == "__main__":
    main()
