"""Markdown tables of bench/data_select/run.sh: the pruning sweep (test accuracy, steps, time, total
time with the scoring run, vs the full run) and active learning (labels to the target per strategy,
mean and sd over seeds, and the accuracy curve). Usage: table.py prune RUNS "SEEDS" FRACTIONS... | active WORK STRATEGIES..."""
import json
import os
import statistics
import sys


def summary(runs, name):
    path = os.path.join(runs, name, "summary.json")
    return json.load(open(path)) if os.path.exists(path) else None


def mean(values):
    return sum(values) / len(values)


def prune(runs, seeds, fractions):
    seeds = seeds.split()
    fulls = [summary(runs, f"full-s{seed}") for seed in seeds]
    scorings = [summary(runs, f"scoring-s{seed}") for seed in seeds]
    if not all(fulls) or not all(scorings):
        print("missing full or scoring runs")
        return
    base = mean([f["metrics"]["test_accuracy"] for f in fulls])
    full_flops, full_s = mean([f["flops"] for f in fulls]), mean([f["wall_s"] for f in fulls])
    print(f"full runs (seeds {', '.join(seeds)}): test accuracy {', '.join('%.2f%%' % (100 * f['metrics']['test_accuracy']) for f in fulls)}"
          f" (mean {100 * base:.2f}%), {fulls[0]['steps']} steps, {full_flops:.3g} training FLOPs, {full_s:.1f} s; "
          f"scoring runs {mean([s['wall_s'] for s in scorings]):.1f} s ({scorings[0]['epochs']} epochs, "
          f"{mean([s['flops'] for s in scorings]) / full_flops:.2f} of a full run's FLOPs)\n")
    print("| kept | score, keep | test acc (mean; per seed) | vs full (points) | steps | training FLOPs with scoring / full | "
          "run time | total time with scoring / full |")
    print("|---|---|---|---|---|---|---|---|")
    smallest = {}
    for f in fractions:
        for how in ("el2n-hardest", "forgetting-hardest", "el2n-random"):
            runs_of = [summary(runs, f"prune-{how}-{f}-s{seed}") for seed in seeds]
            if not all(runs_of):
                continue
            accs = [s["metrics"]["test_accuracy"] for s in runs_of]
            acc = mean(accs)
            p = runs_of[0]["techniques"]["data_pruning"]
            scored = how.endswith("hardest")  # random needs no scores (the file is only read for its split)
            total = mean([s["techniques"]["data_pruning"]["total_with_scoring"]["wall_s"] if scored else s["wall_s"] for s in runs_of])
            flops = mean([s["flops"] + (s["techniques"]["data_pruning"]["scoring_cost"]["flops"] if scored else 0) for s in runs_of])
            label = how.replace("-", ", ") + ("" if scored else " (no scoring needed)")
            print(f"| {float(f):.0%} ({p['kept']}) | {label} | {100 * acc:.2f}% ({', '.join('%.2f' % (100 * a) for a in accs)}) | "
                  f"{100 * (acc - base):+.2f} | {runs_of[0]['steps']} | {flops / full_flops:.2f} | "
                  f"{mean([s['wall_s'] for s in runs_of]):.1f} s | {total / full_s:.2f} |")
            if acc >= base - 0.003 and (how not in smallest or float(f) < smallest[how]):
                smallest[how] = float(f)
    print()
    for how in ("el2n-hardest", "forgetting-hardest", "el2n-random"):
        print(f"- smallest kept fraction within 0.3 points of the full run (seed means), {how}: "
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
        prune(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        active(sys.argv[2], sys.argv[3:])
