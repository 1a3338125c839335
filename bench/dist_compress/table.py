#!/usr/bin/env python3
"""Table of bench/dist_compress/run.sh: per model and run setting (seeds averaged), the quality
(MLP: test accuracy; GPT: final val bits/char), bytes sent per rank (rank 0's, from the
run summary's techniques.data_parallel.bytes_sent_rank0) and both against the uncompressed run ("none") of the same model.
Usage: table.py RUNS_DIR"""
import json
import os
import re
import sys
from collections import defaultdict


def bytes_sent(summary):
    return ((summary.get("techniques") or {}).get("data_parallel") or {}).get("bytes_sent_rank0")


def main(runs):
    groups = defaultdict(list)  # (model, setting) -> summaries
    for name in sorted(os.listdir(runs)):
        path = os.path.join(runs, name, "summary.json")
        m = re.match(r"(mlp|gpt)-(.+)-s(\d+)$", name)
        if not m or not os.path.exists(path):
            continue
        with open(path) as f:
            groups[(m.group(1), m.group(2))].append(json.load(f))
    for model, label, key, points in (("mlp", "test accuracy %", "test_accuracy", 100.0),
                                      ("gpt", "val bits/char", "val_bits_per_char", 1.0)):
        rows = {s: v for (mo, s), v in groups.items() if mo == model}
        if not rows:
            continue
        def mean(values):
            values = [v for v in values if v is not None]
            return sum(values) / len(values) if values else None
        stats = {}
        for setting, sums in rows.items():
            stats[setting] = (mean([s["metrics"].get(key) for s in sums]), mean([bytes_sent(s) for s in sums]),
                              mean([s.get("wall_s") for s in sums]), len(sums), sums[0].get("steps"))
        base = stats.get("none")
        print(f"\n{model}: | setting | seeds | steps | {label} | vs none | bytes sent / rank | fewer bytes than none | wall s |")
        print("|---|---|---|---|---|---|---|---|")
        for setting in sorted(stats, key=lambda s: (s != "none", s)):
            q, b, wall, n, steps = stats[setting]
            dq = f"{(q - base[0]) * points:+.2f}" if base and q is not None and base[0] is not None else "-"
            ratio = f"{base[1] / b:.1f}x" if base and b and base[1] else "-"
            qs = f"{q * points:.2f}" if q is not None and points == 100.0 else (f"{q:.4f}" if q is not None else "-")
            bs = f"{b / 1e6:.1f} MB" if b is not None else "-"
            print(f"| {setting} | {n} | {steps} | {qs} | {dq} | {bs} | {ratio} | {wall:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs")
