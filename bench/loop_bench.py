#!/usr/bin/env python3
"""Times the training loop itself: `frugal train` on the three examples, per-step wall time in the
steady state, for two or more frugal binaries run alternately, and the per-round ratio new/old.
`bench/micro/step_bench` times forward, backward and the optimizer called directly; this script
runs the whole loop (batch loading, logging, schedule, meters, budget and checkpoint checks), so a
loop that got slower shows here and not there. Limits: only as quiet as the machine: with other
jobs on the 2 cores (a load average of 4-8), one binary against itself gave per-round ratios from
0.57 to 1.41, so a 2% question needs idle cores; the examples' models only; evaluation and
checkpoints are pushed out of the timed window, so their cost is not measured.

What is timed. Each run is a fresh `frugal train` process on a copy of an example job with
`train.epochs` removed and `train.steps` = N (the MLP and CNN files set epochs, and the job loader
refuses both), `train.log_every` = N / 15, `train.eval_every` = 1e9 (so only the final evaluation
happens; the GPT's `train.eval_tokens` = 8192 to make that one short), `checkpoint.enabled = false`,
`run.threads = 2`, `precision.mode`, `--quiet` and a fresh `--out` (a run shorter than the job's
schedule.warmup_steps, which frugal refuses, gets steps / 4 of warmup). From its
metrics.jsonl, the train rows (`"kind": "train"`, `step`, `time_s`) give
    ms/step = (time_s of the last train row before the final step - time_s of the 2nd train row)
              / (steps between them)
which leaves out start-up (data loading, model set-up), the first 2 x log_every steps and the
final evaluation, whatever order the loop logs and evaluates in at the last step.

How it runs. All runs share one working directory (--workdir, default /tmp/frugal-loop-bench),
so the GPT's KJV text is made once (frugal caches it in runs/cache/ relative to the cwd). First
one short warm-up run per config and binary (not timed: builds the cache, pages the binaries and
data in, and fails early on a bad binary), then --rounds rounds; in each round every config runs
once per binary, configs in an order rotated each round and binaries alternating (A, B, A, B, ...
in even rounds, B, A, ... in odd ones), so machine drift hits all alike. The first --binary is the
baseline: each other binary's ratio is its ms/step over the baseline's in the same round and config;
the table gives the median over rounds of each binary's ms/step and of the ratios, and their
min / max (the spread: with the same binary twice it is the noise floor). Each run's record (also
the median of the per-interval ms/step, the load average, the command) is appended to
<workdir>/session-*/records.jsonl as it finishes; with --json the progress goes to stderr and
stdout gets one JSON object (machine, records, table).

The binary looks for the instance catalog at <binary dir>/../catalog/instances.toml; for a binary
without one there (a copy somewhere), FRUGAL_CATALOG is set to this repository's catalog, unless
the environment already sets it. Job files are this repository's examples (--examples-dir).

Usage:
  bench/loop_bench.py --binary old=/work/frugal-base/frugal --binary new=build/frugal --rounds 5
  bench/loop_bench.py --binary a=B --binary b=B --rounds 3                  # noise floor
  bench/loop_bench.py ... --models gpt --precisions bf16-mixed --steps gpt=200 --json
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

JOBS = {"mlp": "fashion-mnist-mlp.toml", "cnn": "fashion-mnist-cnn.toml", "gpt": "kjv-gpt.toml"}
# Steps per run: 10-25 s of training each on a quiet 2-core AMD EPYC (Zen 4), from the step times
# of bench/RESULTS.md's peer runs (MLP ~1.1 / 0.8 ms fp32 / bf16-mixed, CNN ~18 / 12 ms, GPT ~195 /
# 130 ms). Each exceeds its example's schedule.warmup_steps, so the schedule is the example's.
DEFAULT_STEPS = {"mlp": 12000, "cnn": 1000, "gpt": 120}
PRECISIONS = ("fp32", "bf16-mixed")
ROWS = 15  # train rows per run: log_every = steps // ROWS


def parse_pairs(items, what):
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            sys.exit(f"{what} {item!r}: expected NAME=VALUE")
        if name in out:
            sys.exit(f"{what} {name!r} given twice")
        out[name] = value
    return out


def job_without_epochs(source, target):
    """Copies a job file leaving out [train]'s `epochs` and `steps` lines (steps comes from --set);
    returns [schedule]'s warmup_steps (0 if unset)."""
    section, kept, warmup = "", [], 0
    with open(source) as f:
        for line in f:
            stripped = line.strip()
            if stripped.startswith("[") and not stripped.startswith("[["):
                section = stripped.strip("[]").strip()
            key = stripped.split("=", 1)[0].strip() if "=" in stripped and not stripped.startswith("#") else ""
            if section == "train" and key in ("epochs", "steps"):
                continue
            if section == "schedule" and key == "warmup_steps":
                warmup = int(stripped.split("=", 1)[1].split("#")[0])
            kept.append(line)
    with open(target, "w") as f:
        f.write(f"# {source} without train.epochs / train.steps, for bench/loop_bench.py\n")
        f.writelines(kept)
    return warmup


def binary_env(path):
    """The environment a binary runs in: FRUGAL_CATALOG set when it would not find a catalog itself."""
    env = dict(os.environ)
    own = os.path.join(os.path.dirname(os.path.realpath(path)), "..", "catalog", "instances.toml")
    if not env.get("FRUGAL_CATALOG") and not os.path.isfile(own):
        env["FRUGAL_CATALOG"] = os.path.join(REPO, "catalog", "instances.toml")
    return env


def ms_per_step(metrics_path):
    """ms/step of the steady state in one run's metrics.jsonl, and the rows it was taken from."""
    rows = []
    with open(metrics_path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    train = [r for r in rows if r.get("kind") == "train"]
    if not train:
        raise ValueError(f"{metrics_path}: no train rows")
    final = max(r["step"] for r in train)
    # Rows logged after an evaluation started are out, as is the final step's row.
    first_eval = min((i for i, r in enumerate(rows) if r.get("kind") == "eval"), default=len(rows))
    steady = [r for r in rows[:first_eval] if r.get("kind") == "train" and r["step"] < final]
    if len(steady) < 3:
        raise ValueError(f"{metrics_path}: {len(steady)} train rows before the final step; need 3 (lower log_every)")
    start, end = steady[1], steady[-1]
    window = 1000 * (end["time_s"] - start["time_s"]) / (end["step"] - start["step"])
    # Also the median of the intervals' ms/step: less moved by a burst of load on a shared machine.
    intervals = [1000 * (b["time_s"] - a["time_s"]) / (b["step"] - a["step"]) for a, b in zip(steady[1:], steady[2:])]
    return {"ms_per_step": window, "interval_median_ms_per_step": statistics.median(intervals),
            "from_step": start["step"], "to_step": end["step"], "train_rows": len(train)}


def run_one(binary, env, job, sets, out_dir, workdir):
    command = [binary, "train", job, "--quiet", "--out", out_dir]
    for s in sets:
        command += ["--set", s]
    began = time.monotonic()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.monotonic() - began
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        sys.exit(f"failed (exit {done.returncode}): {' '.join(command)}\n  cwd {workdir}\n{tail}")
    return command, wall


def config_sets(model, precision, steps, warmup):
    """The --set list of a run; a schedule whose warmup is not shorter than the run (which frugal
    refuses) gets steps / 4 of warmup: the learning rate's value does not change a step's cost.
    The GPT's final evaluation reads 8192 tokens, not the example's 100000: it is not timed and
    would only lengthen each run."""
    log_every = max(1, steps // ROWS)
    sets = [f"train.steps={steps}", f"train.log_every={log_every}", "train.eval_every=1000000000",
            "checkpoint.enabled=false", "run.threads=2", f'precision.mode="{precision}"']
    if model == "gpt":
        sets.append("train.eval_tokens=8192")
    if steps <= warmup:
        sets.append(f"schedule.warmup_steps={max(1, steps // 4)}")
    return sets


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def summarize(records, names, configs):
    base = names[0]
    table = []
    for config in configs:
        mine = [r for r in records if r["config"] == config]
        row = {"config": config, "runs": {}, "ms_per_step": {}, "ratio": {}}
        by_round = {}
        for r in mine:
            by_round.setdefault(r["round"], {})[r["binary"]] = r["ms_per_step"]
        for name in names:
            values = [r["ms_per_step"] for r in mine if r["binary"] == name]
            row["runs"][name] = len(values)
            row["ms_per_step"][name] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        for name in names[1:]:
            ratios = [rnd[name] / rnd[base] for rnd in by_round.values() if name in rnd and base in rnd]
            row["ratio"][name] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                                  "rounds": ratios}
        table.append(row)
    return table


def print_table(header, table, names):
    base = names[0]
    print(header)
    cols = ["config"] + [f"{n} ms/step" for n in names]
    for n in names[1:]:
        cols += [f"{n}/{base} median", "min", "max"]
    print("| " + " | ".join(cols) + " |")
    print("| " + " | ".join("---" for _ in cols) + " |")
    for row in table:
        cells = [row["config"]] + [f"{row['ms_per_step'][n]['median']:.3f}" for n in names]
        for n in names[1:]:
            r = row["ratio"][n]
            cells += [f"{r['median']:.3f}", f"{r['min']:.3f}", f"{r['max']:.3f}"]
        print("| " + " | ".join(cells) + " |")
    for n in names[1:]:
        print(f"rounds' ratios {n}/{base}: " + "; ".join(
            f"{row['config']} " + " ".join(f"{x:.3f}" for x in row["ratio"][n]["rounds"]) for row in table))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", default=[], metavar="NAME=PATH",
                    help="a frugal binary (repeatable, at least 2; the first is the baseline of the ratios)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (one run per config and binary each)")
    ap.add_argument("--models", default="mlp,cnn,gpt", help="comma-separated subset of mlp,cnn,gpt")
    ap.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated subset of fp32,bf16-mixed")
    ap.add_argument("--steps", action="append", default=[], metavar="MODEL=N",
                    help=f"steps per run (default {', '.join(f'{k}={v}' for k, v in DEFAULT_STEPS.items())})")
    ap.add_argument("--warmup-steps", type=int, default=20, help="steps of each warm-up run (0 = no warm-up)")
    ap.add_argument("--workdir", default="/tmp/frugal-loop-bench",
                    help="cwd of every run (holds runs/cache with the KJV text, the job copies and run dirs)")
    ap.add_argument("--examples-dir", default=os.path.join(REPO, "examples"), help="where the example jobs are")
    ap.add_argument("--keep", action="store_true", help="keep each run's directory (default: deleted once read)")
    ap.add_argument("--json", action="store_true", help="print one JSON object (machine, records, table) instead")
    args = ap.parse_args()

    binaries = parse_pairs(args.binary, "--binary")
    if len(binaries) < 2:
        ap.error("give at least two --binary NAME=PATH (the same path twice measures the noise)")
    for name, path in binaries.items():
        path = os.path.abspath(path)
        if not os.access(path, os.X_OK):
            sys.exit(f"--binary {name}={path}: not an executable file")
        binaries[name] = path
    names = list(binaries)
    steps = dict(DEFAULT_STEPS)
    for model, value in parse_pairs(args.steps, "--steps").items():
        if model not in steps:
            sys.exit(f"--steps {model}: expected one of {', '.join(steps)}")
        steps[model] = int(value)
    models = [m for m in args.models.split(",") if m]
    precisions = [p for p in args.precisions.split(",") if p]
    for m in models:
        if m not in JOBS:
            sys.exit(f"--models {m}: expected one of {', '.join(JOBS)}")
    for p in precisions:
        if p not in PRECISIONS:
            sys.exit(f"--precisions {p}: expected one of {', '.join(PRECISIONS)}")
    configs = [f"{m} {p}" for m in models for p in precisions]
    log = sys.stderr if args.json else sys.stdout

    os.makedirs(args.workdir, exist_ok=True)
    workdir = os.path.abspath(args.workdir)
    session = tempfile.mkdtemp(prefix="session-", dir=workdir)
    jobs, warmups = {}, {}
    for m in models:
        jobs[m] = os.path.join(session, JOBS[m])
        warmups[m] = job_without_epochs(os.path.join(args.examples_dir, JOBS[m]), jobs[m])
    envs = {name: binary_env(path) for name, path in binaries.items()}

    machine = {"cpu": cpu_model(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "host": platform.node(), "cores": os.cpu_count(), "load_before": os.getloadavg(),
               "binaries": binaries, "frugal_catalog": {n: e.get("FRUGAL_CATALOG") for n, e in envs.items()},
               "steps": {m: steps[m] for m in models}, "rounds": args.rounds, "workdir": workdir}
    print(f"# loop_bench: {machine['cpu']}, {machine['cores']} cores, {machine['date']}, "
          f"load {machine['load_before'][0]:.2f}", file=log)
    for name, path in binaries.items():
        print(f"#   {name} = {path}", file=log)
    print(f"#   steps {', '.join(f'{m} {steps[m]}' for m in models)}; cwd {workdir}; session {session}", file=log)
    if machine["load_before"][0] > 1.0:
        print(f"# warning: load average {machine['load_before'][0]:.1f} before the first run: other work shares the "
              f"cores, expect ratios far from 1 even for identical binaries", file=log)

    def out_dir(tag):
        return os.path.join(session, "runs", tag)

    if args.warmup_steps > 0:
        for config in configs:
            model, precision = config.split()
            for name in names:
                tag = f"warmup-{model}-{precision}-{name}"
                sets = config_sets(model, precision, args.warmup_steps, warmups[model])
                _, wall = run_one(binaries[name], envs[name], jobs[model], sets, out_dir(tag), workdir)
                print(f"warm-up {config} {name}: {wall:.1f} s", file=log, flush=True)
                if not args.keep:
                    shutil.rmtree(out_dir(tag), ignore_errors=True)

    records = []
    records_path = os.path.join(session, "records.jsonl")
    for rnd in range(args.rounds):
        order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
        for config in order:
            model, precision = config.split()
            shift = rnd % len(names)
            for name in names[shift:] + names[:shift]:
                tag = f"r{rnd}-{model}-{precision}-{name}"
                sets = config_sets(model, precision, steps[model], warmups[model])
                command, wall = run_one(binaries[name], envs[name], jobs[model], sets, out_dir(tag), workdir)
                timing = ms_per_step(os.path.join(out_dir(tag), "metrics.jsonl"))
                record = {"round": rnd, "config": config, "binary": name, **timing, "wall_s": wall,
                          "load_1min": os.getloadavg()[0], "command": command}
                records.append(record)
                with open(records_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"round {rnd + 1}/{args.rounds} {config:15s} {name}: {timing['ms_per_step']:8.3f} ms/step "
                      f"(steps {timing['from_step']}-{timing['to_step']}; median interval "
                      f"{timing['interval_median_ms_per_step']:.3f}; run {wall:.1f} s; load {record['load_1min']:.1f})",
                      file=log, flush=True)
                if not args.keep:
                    shutil.rmtree(out_dir(tag), ignore_errors=True)

    machine["load_after"] = os.getloadavg()
    table = summarize(records, names, configs) if records else []
    if args.json:
        print(json.dumps({"machine": machine, "records": records, "table": table}))
        return
    header = (f"\nloop_bench {machine['date']} on {machine['cpu']} ({machine['cores']} cores), {args.rounds} rounds, "
              f"steps {', '.join(f'{m} {steps[m]}' for m in models)}, load {machine['load_before'][0]:.2f} -> "
              f"{machine['load_after'][0]:.2f}\n")
    if table:
        print_table(header, table, names)
    print(f"records: {records_path}")


if __name__ == "__main__":
    main()
