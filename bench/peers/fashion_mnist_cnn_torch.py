#!/usr/bin/env python3
"""examples/fashion-mnist-cnn.toml written for PyTorch: conv 3x3 32 and 64 channels (padding 1) each
with BatchNorm, ReLU and 2x2 max pooling, then 3136-128-10 with dropout 0.25; frugal's initial weights
(PyTorch's default init scheme drawn from frugal's streams), data split, normalization and shuffle
order; AdamW lr 0.002 / wd 0.01 on rank >= 2 weights only, warmup_cosine (200 warmup steps), batch
128, 6 epochs. Prints JSON lines; the last one is the summary.
Usage: fashion_mnist_cnn_torch.py [--epochs 6 | --steps N] [--threads 2] [--bf16] [--compile]"""
import torch.nn as nn

import peer_common as pc


class Cnn(nn.Module):
    """frugal's nn::Cnn with its parameter names: features = per block Conv2d, BatchNorm2d, ReLU,
    MaxPool2d(2); classifier = Flatten, (Linear, ReLU, Dropout)..., Linear."""

    def __init__(self, in_channels=1, size=28, channels=(32, 64), kernel=3, hidden=(128,), outputs=10, dropout=0.25):
        super().__init__()
        features = []
        c = in_channels
        for out in channels:
            features += [nn.Conv2d(c, out, kernel, padding=kernel // 2), nn.BatchNorm2d(out, eps=1e-5, momentum=0.1),
                         nn.ReLU(), nn.MaxPool2d(2)]
            size = (size + 2 * (kernel // 2) - kernel + 1) // 2
            c = out
        self.features = nn.Sequential(*features)
        classifier = [nn.Flatten()]
        width = c * size * size
        for h in hidden:
            classifier += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
            width = h
        classifier.append(nn.Linear(width, outputs))
        self.classifier = nn.Sequential(*classifier)

    def forward(self, x):
        return self.classifier(self.features(x))


def build(seed):
    model = Cnn()
    pc.load_frugal_init(model, seed, pc.torch_default_rule)
    return model


def main():
    ap = pc.classifier_parser(__doc__.split("\n")[0], epochs=6)
    ap.add_argument("--dump-init", action="store_true", help="print the initial parameters and exit")
    args = ap.parse_args()
    if args.dump_init:
        return pc.init_dump(build(args.seed))
    pc.train_classifier("fashion-mnist-cnn", lambda: build(args.seed), args)


if __name__ == "__main__":
    main()
