"""Markdown tables of bench/data_select/run.sh: the pruning sweep (test accuracy, steps, time, total
time with the scoring run, vs the full run) and active learning (labels to the target per strategy,
mean and sd over seeds, and the accuracy curve). Usage: table.py prune RUNS FRACTIONS... | active WORK STRATEGIES..."""
import json
import os
import statistics
import sys


def summary(runs, name):
    path = os.path.join(runs, name, "summary.json")
    return json.load(open(path)) if os.path.exists(path) else None


def prune(runs, fractions):
    full = summary(runs, "full")
    scoring = summary(runs, "scoring")
    if not full:
        print("no full run")
        return
    base = full["metrics"]["test_accuracy"]
    score_s = scoring["wall_s"] if scoring else float("nan")
    print(f"full run: test accuracy {100 * base:.2f}%, {full['steps']} steps, {full['flops']:.3g} training FLOPs, "
          f"{full['wall_s']:.1f} s; scoring run {score_s:.1f} s ({scoring['epochs'] if scoring else '?'} epochs, "
          f"{scoring['flops'] / full['flops'] if scoring else float('nan'):.2f} of the full run's FLOPs)\n")
    print("| kept | score, keep | test acc | vs full (points) | steps | training FLOPs with scoring / full | "
          "run time | total time with scoring / full |")
    print("|---|---|---|---|---|---|---|---|")
    smallest = {}
    for f in fractions:
        for how in ("el2n-hardest", "forgetting-hardest", "el2n-random"):
            s = summary(runs, f"prune-{how}-{f}")
            if not s:
                continue
            acc = s["metrics"]["test_accuracy"]
            p = s["techniques"]["data_pruning"]
            scored = how.endswith("hardest")  # random needs no scores (the file is only read for its split)
            total = p["total_with_scoring"]["wall_s"] if scored else s["wall_s"]
            flops = s["flops"] + (p["scoring_cost"]["flops"] if scored else 0)
            label = how.replace("-", ", ") + ("" if scored else " (no scoring needed)")
            print(f"| {float(f):.0%} ({p['kept']}) | {label} | {100 * acc:.2f}% | {100 * (acc - base):+.2f} | {s['steps']} | "
                  f"{flops / full['flops']:.2f} | {s['wall_s']:.1f} s | {total / full['wall_s']:.2f} |")
            if acc >= base - 0.003 and (how not in smallest or float(f) < smallest[how]):
                smallest[how] = float(f)
    print()
    for how in ("el2n-hardest", "forgetting-hardest", "el2n-random"):
        print(f"- smallest kept fraction within 0.3 points of the full run, {how}: "
              f"{'%.0f%%' % (100 * smallest[how]) if how in smallest else 'none of those tried'}")


def active(work, strategies):
    rows = []
    curves = {}
    for s in strategies:
        path = os.path.join(work, f"al-{s}.json")
        if not os.path.exists(path):
            continue
        a = json.load(open(path))
        reached = [x["labels_to_target"] for x in a["seeds"] if x["labels_to_target"] is not None]
        n = len(a["seeds"])
        text = (f"{statistics.mean(reached):.0f} ± {statistics.stdev(reached) if len(reached) > 1 else 0:.0f}"
                if len(reached) == n else f"not reached by {n - len(reached)} of {n} seeds")
        rows.append((s, text, a["wall_s"], n))
        curves[s] = [(r["labels"], statistics.mean(x["rounds"][i]["test_accuracy"] for x in a["seeds"]))
                     for i, r in enumerate(a["seeds"][0]["rounds"])]
        target = a.get("target_accuracy")
    if not rows:
        print("no active-learning results")
        return
    print(f"\n| strategy | labels to {100 * target:.0f}% test accuracy (mean ± sd, seeds) | time of all rounds |")
    print("|---|---|---|")
    for s, text, wall, n in rows:
        print(f"| {s} | {text} ({n}) | {wall:.0f} s |")
    labels = [l for l, _ in next(iter(curves.values()))]
    print("\n| labels | " + " | ".join(curves) + " |")
    print("|---|" + "---|" * len(curves))
    for i, l in enumerate(labels):
        print(f"| {l} | " + " | ".join(f"{100 * c[i][1]:.2f}%" if i < len(c) else "" for c in curves.values()) + " |")


if __name__ == "__main__":
    if sys.argv[1] == "prune":
        prune(sys.argv[2], sys.argv[3:])
    else:
        active(sys.argv[2], sys.argv[3:])
