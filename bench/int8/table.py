"""The int8-mixed tables of bench/RESULTS.md from bench/int8/run.sh's run directories: step time
medians of the alternated rounds (ms per step, and the ratio to bf16-mixed) and the final quality.
Usage: table.py RUNS_DIR ROUNDS"""
import json
import os
import statistics
import sys

runs, rounds = sys.argv[1], int(sys.argv[2])
modes = ["fp32", "bf16-mixed", "int8-mixed"]


def summary(name):
    path = os.path.join(runs, name, "summary.json")
    return json.load(open(path)) if os.path.exists(path) else None


# The fastest round beside the median: on a machine shared with other work, a round can lose most
# of its time to waiting for a core, and the fastest is the one nearest the machine's own speed.
print("\n| model | mode | step ms (median of %d) | fastest | rounds | median vs bf16-mixed | fastest vs bf16-mixed |" % rounds)
print("|---|---|---:|---:|---|---:|---:|")
for model in ["mlp", "gpt"]:
    medians = {}
    for mode in modes:
        times = []
        for r in range(1, rounds + 1):
            s = summary("%s-step-%s-%d" % (model, mode, r))
            if s and s.get("steps"):
                times.append(1000 * s["train_compute_s"] / s["steps"])
        medians[mode] = statistics.median(times) if times else None
        medians[mode + "/min"] = min(times) if times else None
        cells = ", ".join("%.1f" % t for t in times)
        medians[mode + "/cells"] = cells
    for mode in modes:
        m, b = medians[mode], medians["bf16-mixed"]
        f, fb = medians[mode + "/min"], medians["bf16-mixed/min"]
        ratio = "%.2fx" % (b / m) if m and b else "-"
        fastest_ratio = "%.2fx" % (fb / f) if f and fb else "-"
        print("| %s | %s | %s | %s | %s | %s | %s |" % (model, mode, "%.2f" % m if m else "-", "%.2f" % f if f else "-",
                                                  medians[mode + "/cells"], ratio, fastest_ratio))

print("\n| model | mode | steps | test accuracy / val bits/char | test loss | train compute s |")
print("|---|---|---:|---:|---:|---:|")
for model in ["mlp", "gpt"]:
    for mode in modes:
        s = summary("%s-full-%s" % (model, mode))
        if not s:
            print("| %s | %s | - | - | - | - |" % (model, mode))
            continue
        m = s["metrics"]
        quality = m.get("test_accuracy", m.get("val_bits_per_char", m.get("test_bits_per_char")))
        loss = m.get("test_loss", m.get("val_loss"))
        print("| %s | %s | %d | %.4f | %.4f | %.1f |" % (model, mode, s["steps"], quality, loss, s["train_compute_s"]))
