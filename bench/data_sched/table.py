#!/usr/bin/env python3
"""The data-efficiency table of issue 21 part 1 from the directory bench/data_sched/run.sh wrote:
python3 bench/data_sched/table.py WORK_DIR ROUNDS|tune. Final metrics, wall time and the run's cost
(energy, kWh: the local instance is free) come from each run's summary.json; "time to plain's final"
is `frugal compare PLAIN METHOD`'s b_reached_a (the first evaluation of the method at or past
plain's final validation metric: its time, and its cost pro rata as a share of plain's whole cost).
Medians over rounds."""
import json
import os
import statistics
import sys

work, rounds = sys.argv[1], sys.argv[2]


def load(*parts):
    path = os.path.join(work, *parts)
    return json.load(open(path)) if os.path.exists(path) else None


def summary(name):
    return load("runs", name, "summary.json")


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec, suffix=""):
    return "n/a" if v is None else format(v, spec) + suffix


def kwh(s):
    return s["cost"]["kwh"]["value"] if s and "kwh" in s.get("cost", {}) else None


def row(label, plain_names, names, metric, metric_fmt):
    """One table row: the method's runs `names` against plain's `plain_names` (same rounds)."""
    runs = [summary(n) for n in names]
    plains = [summary(n) for n in plain_names]
    comps = [load("compare", n + ".json") for n in names] if names != plain_names else []
    reached = [c.get("b_reached_a") if c else None for c in comps]
    t_reach = [r["time_s"] if r else None for r in reached]
    share = [r.get("share_of_a") if r else None for r in reached]
    wall_ratio = [s["wall_s"] / p["wall_s"] if s and p else None for s, p in zip(runs, plains)]
    time_ratio = [t / p["wall_s"] if t is not None and p else None for t, p in zip(t_reach, plains)]
    n_reached = sum(1 for r in reached if r)
    steps = med([r["step"] if r else None for r in reached])
    verdict = "" if names == plain_names else (
        f"reached in {n_reached}/{len(names)} (step {fmt(steps, '.0f')} of {fmt(med([p['steps'] if p else None for p in plains]), '.0f')}); "
        f"time {fmt(med(time_ratio), '.2f', 'x')}, cost {fmt(med(share), '.2f', 'x')}")
    flops = [s.get("flops") if s else None for s in runs]
    return (f"| {label} | {fmt(med([metric(s) if s else None for s in runs]), metric_fmt)} | "
            f"{fmt(med([s['wall_s'] if s else None for s in runs]), '.1f', ' s')} ({fmt(med(wall_ratio), '.2f', 'x')}) | "
            f"{fmt(med(flops), '.3g')} | {fmt(med([kwh(s) for s in runs]), '.3g')} | {verdict} |")


machine = "?"
for line in open(os.path.join(work, "machine.txt")):
    if line.startswith("Model name"):
        machine = line.split(":", 1)[1].strip()
head = ("| variant | final val metric | wall time (vs plain) | training FLOPs | energy kWh (est.) | "
        "frugal compare: time / cost to reach plain's final val metric |\n|---|---|---|---|---|---|")
bpc = lambda s: s["metrics"].get("val_bits_per_char")
acc = lambda s: s["metrics"].get("val_accuracy")
test_acc = lambda s: s["metrics"].get("test_accuracy")

if rounds == "tune":
    print(f"Tuning (seed 1), KJV GPT, {machine}; wall times on a shared machine\n\n{head}")
    print(row("plain", ["tune-gpt-plain"], ["tune-gpt-plain"], bpc, ".4f"))
    for name in sorted(os.listdir(os.path.join(work, "runs"))):
        if name.startswith("tune-gpt-warm"):
            print(row(f"seq_warmup fraction {name[len('tune-gpt-warm'):]}", ["tune-gpt-plain"], [name], bpc, ".4f"))
    sys.exit(0)

r = range(1, int(rounds) + 1)
print(f"{machine}; medians over {rounds} round(s), fresh seeds; wall times on a shared machine\n")
if summary("gpt-plain-1"):
    print(f"KJV GPT (examples/kjv-gpt.toml, bf16-mixed), val bits/char\n\n{head}")
    plain = [f"gpt-plain-{i}" for i in r]
    print(row("plain", plain, plain, bpc, ".4f"))
    w = summary("gpt-warm-1")["techniques"]["seq_warmup"] if summary("gpt-warm-1") else {}
    print(row(f"seq_warmup {w.get('start')}->{w.get('context')} over {w.get('warmup_steps')} steps ({w.get('mode')}), "
              f"tokens {fmt(w.get('tokens_trained', 0) / max(1, w.get('tokens_full_context', 1)), '.2f', 'x')}",
              plain, [f"gpt-warm-{i}" for i in r], bpc, ".4f"))
    print()
if summary("mlp-plain-1"):
    print(f"Fashion-MNIST MLP (examples/fashion-mnist-mlp.toml, fewer epochs), val accuracy "
          f"(test accuracy: {fmt(med([test_acc(summary(f'mlp-plain-{i}')) for i in r]), '.4f')} plain)\n\n{head}")
    plain = [f"mlp-plain-{i}" for i in r]
    print(row("plain", plain, plain, acc, ".4f"))
    for v, label in [("curriculum", "curriculum, self-scored, easy first (linear, 0.2 -> all at 50%)"),
                     ("anti", "curriculum, hardest first (control)"), ("random", "curriculum, random pool (control)"),
                     ("selective", "selective backprop, keep 0.5"), ("importance", "importance sampling, smoothing 0.5")]:
        names = [f"mlp-{v}-{i}" for i in r]
        tests = med([test_acc(summary(n)) if summary(n) else None for n in names])
        print(row(f"{label} (test {fmt(tests, '.4f')})", plain, names, acc, ".4f"))
