#!/usr/bin/env python3
"""The pruning table of bench/RESULTS.md from the directory bench/prune/run.sh wrote:
python3 bench/prune/table.py WORK_DIR ROUNDS. Quality and parameters come from each run's
summary.json; step time is (forward + backward + optimizer) seconds / steps and evaluation time the
evaluation phase's seconds, medians over the alternated timing rounds. The verdicts are
`frugal compare`'s (compare.txt)."""
import json
import os
import statistics
import sys

work, rounds = sys.argv[1], int(sys.argv[2])


def load(name):
    path = os.path.join(work, "runs", name, "summary.json")
    return json.load(open(path)) if os.path.exists(path) else None


def metric(s, key):
    return s["metrics"].get(key) if s else None


def step_s(s):
    p = s["phases"]
    return (p["forward"] + p["backward"] + p["optimizer"]) / max(1, s["steps"])


def median_of(prefix, fn):
    values = [fn(s) for s in (load(f"{prefix}-{r}") for r in range(1, rounds + 1)) if s]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def params(s):
    if not s:
        return None
    prune = s.get("techniques", {}).get("prune")
    if prune and "compact_params" not in prune:  # unstructured: nonzero = all but the zeroed ones
        return s["params"] - prune["params_removed"]
    return s["params"]


machine = "?"
for line in open(os.path.join(work, "machine.txt")):
    if line.startswith("Model name"):
        machine = line.split(":", 1)[1].strip()
print(f"CPU: {machine}. Shortened runs (see bench/prune/run.sh); the machine was shared while measured.\n")
print("| model | variant | params (nonzero) | quality | step ms | eval s | step speedup | eval speedup |")
print("|---|---|---|---|---|---|---|---|")
rows = [
    ("MLP", "dense, 4 epochs", "mlp-dense", "test_accuracy", "mlp-time-dense"),
    ("MLP", "90% weights pruned (gradual)", "mlp-prune90", "test_accuracy", "mlp-time-prune90"),
    ("CNN", "dense, 2+1 epochs", "cnn-dense-ft", "test_accuracy", "cnn-time-dense"),
    ("CNN", "half the channels, +1 epoch", "cnn-half-ft", "test_accuracy", "cnn-time-half"),
    ("GPT", "dense, 300+150 steps", "gpt-dense-ft", "val_bits_per_char", "gpt-time-dense"),
    ("GPT", "half heads + MLP, +150 steps", "gpt-half-ft", "val_bits_per_char", "gpt-time-half"),
]
base = {}
for model, variant, run, key, timing in rows:
    s = load(run)
    step = median_of(timing, step_s)
    ev = median_of(timing, lambda t: t["phases"]["evaluation"])
    if model not in base:
        base[model] = (step, ev)
    b_step, b_ev = base[model]
    speed_step = b_step / step if step and b_step else None
    speed_ev = b_ev / ev if ev and b_ev else None
    q = metric(s, key)
    qtext = "n/a" if q is None else (f"{100 * q:.2f}% acc" if key == "test_accuracy" else f"{q:.3f} bits/char")
    print(f"| {model} | {variant} | {fmt(params(s), ',')} | {qtext} | {fmt(step and step * 1000, '.1f')} | "
          f"{fmt(ev, '.2f')} | {fmt(speed_step, '.2f')}x | {fmt(speed_ev, '.2f')}x |")
dense, pruned = load("mlp-dense"), load("mlp-prune90")
if dense and pruned:
    kept = metric(pruned, "test_accuracy") / metric(dense, "test_accuracy")
    print(f"\nMLP: {100 * kept:.1f}% of the dense test accuracy kept with 90% of the hidden weights removed "
          f"(target >= 95%).")
