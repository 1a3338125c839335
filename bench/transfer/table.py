#!/usr/bin/env python3
"""The tables of bench/RESULTS.md's transfer section, from the run directories bench/transfer/run.sh
wrote: python3 bench/transfer/table.py RUNS_DIR. Every figure comes from a run's summary.json and
metrics.jsonl; the verdicts themselves are `frugal compare`'s (compare.txt beside RUNS_DIR)."""
import json
import os
import statistics
import sys

runs = sys.argv[1]


def load(name):
    d = os.path.join(runs, name)
    s = json.load(open(os.path.join(d, "summary.json")))
    rows = [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))]
    s["_evals"] = [r for r in rows if r.get("kind") == "eval"]
    return s


def kwh(s):
    """The cost basis: energy on this machine (its runs are priced `local`, free); dollars on a priced
    instance scale with the same wall time."""
    return s["cost"]["kwh"]["value"]


def quality_key(s):
    m = s["metrics"]
    return "val_accuracy" if "val_accuracy" in m else "val_bits_per_char"


def reached(b, target, key):
    """The first evaluation of run b at or past `target` of `key`: (step, time_s), else None."""
    better = (lambda v: v >= target) if key == "val_accuracy" else (lambda v: v <= target)
    for r in b["_evals"]:
        if key in r and better(r[key]):
            return r["step"], r["time_s"]
    return None


def fmt_metric(key, v):
    return f"{100 * v:.2f}%" if "accuracy" in key else f"{v:.4f}"


def transfer_rows(pretrain, pairs):
    p = load(pretrain)
    out = []
    for a_name, b_name in pairs:
        try:
            a, b = load(a_name), load(b_name)
        except FileNotFoundError:
            continue
        key = quality_key(a)
        test = "test_accuracy" if "test_accuracy" in a["metrics"] else None
        hit = reached(b, a["metrics"][key], key)
        own = reached(a, a["metrics"][key], key)  # A's own first evaluation at its final quality
        a_at = f"step {own[0]}, {own[1]:.1f} s" if own else "-"
        if hit:
            step, t = hit
            frac = step / b["steps"]  # counted FLOPs are the same every step of a run
            a_flops = a["flops"] * own[0] / a["steps"] if own else a["flops"]
            at = (f"step {step} of {b['steps']}: {t:.1f} s, {b['flops'] * frac:.3g} FLOPs = {100 * b['flops'] * frac / a['flops']:.0f}%"
                  f" of A's total, {100 * b['flops'] * frac / a_flops:.0f}% of A's to there")
        else:
            at = "not reached"
        saving = kwh(a) - kwh(b)
        breakeven = f"{kwh(p) / saving:.1f}" if saving > 0 else "never"
        out.append(f"| {a_name} | {b_name} | {fmt_metric(key, a['metrics'][key])} / {fmt_metric(key, b['metrics'][key])}"
                   + (f" | {fmt_metric(test, a['metrics'][test])} / {fmt_metric(test, b['metrics'][test])}" if test else " | n/a")
                   + f" | {a['steps']} / {b['steps']} | {a['flops']:.3g} / {b['flops']:.3g} ({b['flops'] / a['flops']:.2f}x)"
                   + f" | {a['wall_s']:.1f} / {b['wall_s']:.1f} | {kwh(a):.3g} / {kwh(b):.3g} ({kwh(b) / kwh(a):.2f}x) | {a_at} | {at}"
                   + f" | {p['wall_s']:.0f} s, {p['flops']:.3g} FLOPs, {kwh(p):.3g} kWh | {breakeven} |")
    return out


def step_time(s):
    ph = s["phases"]
    return (ph["forward"] + ph["backward"] + ph["optimizer"]) / s["steps"]


def main():
    print("### Fine-tuning against training from scratch (A = scratch, B = fine-tune)\n")
    print("| A | B | val A / B | test A / B | steps A / B | train FLOPs A / B | wall s A / B | kWh A / B | A first at its final val | B reaches A's final val | pretraining | break-even fine-tunes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in transfer_rows("fashion-pretrain-5", [("fashion-scratch-5", "fashion-finetune-5"),
                                                    ("fashion-scratch-5-lr2", "fashion-finetune-5"),
                                                    ("fashion-scratch-5", "fashion-freeze-5"),
                                                    ("fashion-scratch-5-pc20", "fashion-finetune-5-pc20"),
                                                    ("fashion-scratch-5-pc20", "fashion-freeze-5-pc20")]):
        print(row)
    # Pairs evaluated on the same validation characters (eval_tokens 50000 / 100000).
    for row in transfer_rows("kjv-pretrain", [("web-scratch", "web-finetune"), ("web-scratch-recipe", "web-finetune-cosine")]):
        print(row)

    print("\n### Freezing the lower half of the GPT (wte, wpe + blocks 0-1 of 4): step time against skipped FLOPs\n")
    print("| round | step s full / frozen | measured cut | backward FLOPs/step full / frozen | predicted cut | measured / predicted |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for r in (1, 2, 3, 4):
        try:
            f, z = load(f"web-timing-full-{r}"), load(f"web-timing-freeze-{r}")
        except FileNotFoundError:
            continue
        tf, tz = step_time(f), step_time(z)
        bf, bz = f["flops_backward"] / f["steps"], z["flops_backward"] / z["steps"]
        # The full run's own backward rate prices the skipped work.
        rate = f["flops_backward"] / f["phases"]["backward"]
        predicted = (bf - bz) / rate
        measured = tf - tz
        ratios.append(measured / predicted)
        print(f"| {r} | {tf * 1e3:.1f} ms / {tz * 1e3:.1f} ms | {measured * 1e3:.1f} ms ({100 * measured / tf:.0f}%) | {bf:.3g} / {bz:.3g}"
              f" | {predicted * 1e3:.1f} ms ({100 * predicted / tf:.0f}%) | {measured / predicted:.2f} |")
    if ratios:
        print(f"\nmedian measured / predicted: {statistics.median(ratios):.2f}")

    print("\n### LoRA against full fine-tuning of the KJV GPT on the WEB\n")
    print("| run | trainable params | peak memory (allocator) | peak RSS | step time | steps | val bits/char | kWh |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("web-finetune", "web-lora"):
        try:
            s = load(name)
        except FileNotFoundError:
            continue
        m = s["metrics"]
        print(f"| {name} | {s['trainable_params']:,} of {s['params']:,} | {s['memory']['peak_total_bytes'] / 2**20:.1f} MiB"
              f" | {s['peak_rss_bytes'] / 2**20:.0f} MiB | {step_time(s) * 1e3:.1f} ms | {s['steps']}"
              f" | {m['val_bits_per_char']:.4f} | {kwh(s):.3g} |")

    print("\n### Distillation on Fashion-MNIST (teacher: the example CNN)\n")
    print("| run | params | test accuracy | of the teacher's | train FLOPs | teacher forward | cache | wall s | kWh |")
    print("|---|---|---|---|---|---|---|---|---|")
    t = load("teacher-cnn")
    for name in ("teacher-cnn", "student-cnn", "student-distill", "student-distill-2", "student-distill-nocache",
                 "student-distill-t2", "student-distill-a09", "student-cnn-e12", "student-distill-e12", "student-mlp",
                 "student-mlp-distill", "student-mlp-distill-t2"):
        try:
            s = load(name)
        except FileNotFoundError:
            continue
        d = s.get("distill") or {}
        cache = f"{d.get('cache_status', '')} {d.get('cache_build_s', 0):.2f} s" if d.get("cache") else "-"
        teacher = f"{d['teacher_forward_s']:.2f} s, {d['teacher_forward_batches']} batches" if d else "-"
        print(f"| {name} | {s['params']:,} ({t['params'] / s['params']:.1f}x smaller) | {100 * s['metrics']['test_accuracy']:.2f}%"
              f" | {100 * s['metrics']['test_accuracy'] / t['metrics']['test_accuracy']:.1f}% | {s['flops']:.3g} | {teacher} | {cache}"
              f" | {s['wall_s']:.1f} | {kwh(s):.3g} |")


main()
