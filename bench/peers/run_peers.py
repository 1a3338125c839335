#!/usr/bin/env python3
"""Runs frugal (build/frugal, fp32 and bf16-mixed) and its PyTorch peers (fp32 and bf16 autocast,
optionally torch.compile) on the examples alternately, each run a fresh process measured with
os.wait4 for its own peak RSS, and prints a markdown table of medians and frugal/PyTorch ratios.
Optionally races frugal against PyTorch on the KJV GPT for the same wall time (--gpt-minutes).
Limits: timings are only as quiet as the machine; run it with nothing else on the cores.
Usage: bench/peers/run_peers.py [--runs 3] [--examples mlp,cnn,gpt] [--epochs N] [--steps N]
       [--gpt-minutes M] [--compile] [--python PY | --venv DIR] [--frugal build/frugal]"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

EXAMPLES = {
    "mlp": {"job": "examples/fashion-mnist-mlp.toml", "peer": "fashion_mnist_mlp_torch.py", "text": False},
    "cnn": {"job": "examples/fashion-mnist-cnn.toml", "peer": "fashion_mnist_cnn_torch.py", "text": False},
    "gpt": {"job": "examples/kjv-gpt.toml", "peer": "kjv_gpt_torch.py", "text": True},
}
GPT_CONTEXT, GPT_WARMUP = 128, 100  # examples/kjv-gpt.toml


# ---- which PyTorch ----

def probe(python):
    """(torch version, torch file) if `python` imports torch and numpy, else None."""
    try:
        out = subprocess.run([python, "-c", "import numpy, torch; print(torch.__version__); print(torch.__file__)"],
                             capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    version, path = out.stdout.split()[-2:]
    return version, path


def find_torch(args):
    """The Python to run the peers with and a description of where its torch comes from: --python,
    else the venv (--venv), else Debian's python3-torch, else a new venv with pip's torch."""
    candidates = []
    if args.python:
        candidates.append(args.python)
    else:
        candidates += [os.path.join(args.venv, "bin", "python"), "/usr/bin/python3"]
    for python in candidates:
        if os.path.exists(python) and (found := probe(python)):
            return python, describe_torch(python, *found)
    if args.python:
        sys.exit(f"{args.python} cannot import torch and numpy")
    print(f"no PyTorch found: creating a venv in {args.venv} (pip install torch numpy)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", args.venv], check=True)
    python = os.path.join(args.venv, "bin", "python")
    index = ["--index-url", args.pip_index_url] if args.pip_index_url else []
    subprocess.run([python, "-m", "pip", "install", "--quiet"] + index + ["torch", "numpy"], check=True)
    found = probe(python)
    if not found:
        sys.exit(f"pip installed torch into {args.venv} but it does not import")
    return python, describe_torch(python, *found)


def describe_torch(python, version, path):
    source = "Debian python3-torch" if path.startswith("/usr/lib/python3/dist-packages") else f"pip ({python})"
    return f"PyTorch {version}, {source}"


# ---- one run ----

def run_process(command, log_path, env=None):
    """Runs `command` in the repository, stdout+stderr to log_path; returns (exit code, peak RSS
    bytes of that process from wait4, wall seconds, stdout text)."""
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024, wall, open(log_path).read()


def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def overrides(example, args, gpt_minutes=None):
    """The recipe changes of a quick run, as (frugal --set list, peer argument list)."""
    sets, peer = [], []
    if EXAMPLES[example]["text"]:
        if args.steps:
            sets.append(f"train.steps={args.steps}")
            peer += ["--steps", str(args.steps)]
            if args.steps <= GPT_WARMUP:  # the schedule needs steps > warmup_steps
                warmup = max(1, args.steps // 4)
                sets.append(f"schedule.warmup_steps={warmup}")
                peer += ["--warmup", str(warmup)]
        if gpt_minutes:
            sets.append(f"train.max_minutes={gpt_minutes}")
            peer += ["--minutes", str(gpt_minutes)]
    elif args.epochs:
        sets.append(f"train.epochs={args.epochs}")
        peer += ["--epochs", str(args.epochs)]
    return sets, peer


def run_frugal(example, precision, args, workdir, tag, gpt_minutes=None):
    sets, _ = overrides(example, args, gpt_minutes)
    out = os.path.join(workdir, tag)
    command = [args.frugal, "train", EXAMPLES[example]["job"], "--json", "--quiet", "--out", out,
               "--set", f"precision.mode={precision}", "--set", f"run.store={os.path.join(workdir, 'store.db')}",
               "--set", "run.threads=2"]
    for s in sets:
        command += ["--set", s]
    code, rss, wall, text = run_process(command, out + ".log")
    summary = last_json(text)
    if code != 0 or not summary:
        raise RuntimeError(f"frugal {example} {precision} failed (exit {code}); see {out}.log")
    phases = summary["phases"]
    # Timed like the peers' train_s: batch waits, forward, backward and optimizer steps.
    train_s = phases["data_wait"] + phases["forward"] + phases["backward"] + phases["optimizer"]
    metrics = summary["metrics"]
    record = {"engine": "frugal", "setting": f"frugal {precision}", "example": example, "train_s": train_s,
              "wall_s": summary["wall_s"], "process_wall_s": wall, "peak_rss_bytes": rss,
              "own_peak_rss_bytes": summary["peak_rss_bytes"], "samples_seen": summary["samples_seen"],
              "steps": summary["steps"], "epochs": summary["epochs"], "flops_per_sample": summary["flops_per_sample"],
              "flops": summary["flops"], "stop_reason": summary.get("stop_reason")}
    record.update({k: metrics[k] for k in ("test_accuracy", "val_accuracy", "val_bits_per_char", "val_loss")
                   if k in metrics})
    return record


def run_torch(example, setting, args, workdir, tag, gpt_minutes=None):
    _, peer_args = overrides(example, args, gpt_minutes)
    command = [args.torch_python, os.path.join(HERE, EXAMPLES[example]["peer"]), "--threads", "2", "--quiet"] + peer_args
    if "bf16" in setting:
        command.append("--bf16")
    if "compile" in setting:
        command.append("--compile")
    if "channels-last" in setting:
        command.append("--channels-last")
    log = os.path.join(workdir, tag + ".log")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    code, rss, wall, text = run_process(command, log, env)
    summary = last_json(text)
    if code != 0 or not summary or summary.get("peer") != "pytorch":
        raise RuntimeError(f"{setting} {example} failed (exit {code}); see {log}")
    record = {"engine": "torch", "setting": setting, "example": example, "process_wall_s": wall,
              "peak_rss_bytes": rss}
    record.update({k: summary[k] for k in ("train_s", "wall_s", "samples_seen", "steps", "epochs", "test_accuracy",
                                           "val_accuracy", "val_bits_per_char", "val_loss", "first_step_s", "torch") if k in summary})
    return record


# ---- table ----

def speed(record, example):
    """Higher is faster: tokens/s for the GPT, epochs per second otherwise."""
    if EXAMPLES[example]["text"]:
        return record["samples_seen"] * GPT_CONTEXT / record["train_s"]
    return record["epochs"] / record["train_s"]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(records, example, flops_per_sample):
    rows = {}
    for setting in dict.fromkeys(r["setting"] for r in records):
        rs = [r for r in records if r["setting"] == setting]
        rows[setting] = {
            "runs": len(rs),
            "speed": med([speed(r, example) for r in rs]),
            "rss": med([r["peak_rss_bytes"] for r in rs]),
            "quality": med([r.get("val_bits_per_char") if EXAMPLES[example]["text"] else r.get("test_accuracy")
                            for r in rs]),
            "gflops": med([3.0 * flops_per_sample * r["samples_seen"] / r["train_s"] / 1e9 for r in rs]),
            "engine": rs[0]["engine"],
        }
    return rows


def table(example, rows):
    text = EXAMPLES[example]["text"]
    torch_rows = {s: r for s, r in rows.items() if r["engine"] == "torch"}
    best_torch = max(torch_rows, key=lambda s: torch_rows[s]["speed"]) if torch_rows else None
    unit = "tokens/s" if text else "s/epoch"
    quality = "val bits/char" if text else "test acc %"
    lines = [f"| {example} setting | runs | {unit} | speed vs {best_torch or 'torch'} | peak RSS MiB | RSS vs "
             f"{best_torch or 'torch'} | {quality} | train GFLOP/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for setting, r in rows.items():
        shown = f"{r['speed']:,.0f}" if text else f"{1.0 / r['speed']:.2f}"
        ratio = f"{r['speed'] / torch_rows[best_torch]['speed']:.2f}x" if best_torch else "-"
        rss_ratio = f"{r['rss'] / torch_rows[best_torch]['rss']:.2f}x" if best_torch else "-"
        q = r["quality"]
        q_text = "-" if q is None else (f"{q:.3f}" if text else f"{100 * q:.2f}")
        marker = " (best torch)" if setting == best_torch else ""
        lines.append(f"| {setting}{marker} | {r['runs']} | {shown} | {ratio} | {r['rss'] / 2**20:,.0f} | {rss_ratio} | "
                     f"{q_text} | {r['gflops']:.1f} |")
    return "\n".join(lines)


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor()}, {os.cpu_count()} cores visible"


# ---- main ----

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each setting (alternating); 0 = only the race")
    ap.add_argument("--examples", default="mlp,cnn,gpt", help="comma-separated: mlp, cnn, gpt")
    ap.add_argument("--epochs", type=int, default=0, help="quick mode: epochs for mlp and cnn (0 = the example's)")
    ap.add_argument("--steps", type=int, default=0, help="quick mode: steps for gpt (0 = the example's 1600)")
    ap.add_argument("--gpt-minutes", type=float, default=0,
                    help="also race frugal's best against torch's best on the GPT for this many minutes, one run each")
    ap.add_argument("--race", default="",
                    help="the race's two settings, e.g. 'frugal bf16-mixed,torch fp32' (default: each engine's faster "
                         "GPT setting in this invocation's runs; with --runs 0, frugal bf16-mixed and torch bf16)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile settings (fp32 and bf16)")
    ap.add_argument("--python", default="", help="a Python with torch and numpy (default: --venv, then Debian's)")
    ap.add_argument("--venv", default=os.path.join(REPO, "runs", "peers-venv"),
                    help="venv used (and created with pip's torch when no torch is found)")
    ap.add_argument("--pip-index-url", default="",
                    help="index for the venv's torch, e.g. https://download.pytorch.org/whl/cpu (the CPU-only wheel)")
    ap.add_argument("--frugal", default=os.path.join(REPO, "build", "frugal"))
    ap.add_argument("--records", default="", help="print the table of an earlier records.jsonl; run nothing")
    ap.add_argument("--workdir", default="", help="where runs and logs go (default: a new runs/peers-* directory)")
    args = ap.parse_args()

    args.torch_python, torch_source = find_torch(args)
    os.makedirs(os.path.join(REPO, "runs"), exist_ok=True)
    workdir = args.workdir or tempfile.mkdtemp(prefix="peers-", dir=os.path.join(REPO, "runs"))
    os.makedirs(workdir, exist_ok=True)
    examples = [e.strip() for e in args.examples.split(",") if e.strip()]
    for e in examples:
        if e not in EXAMPLES:
            sys.exit(f"--examples: unknown example '{e}' (expected mlp, cnn, gpt)")
    settings = ["frugal fp32", "frugal bf16-mixed", "torch fp32", "torch bf16"]
    if args.compile:
        settings += ["torch compile fp32", "torch compile bf16"]
    if "cnn" in examples:  # PyTorch's advice for CNNs on CPU; the other examples have no images
        settings += ["torch channels-last fp32", "torch channels-last bf16"]
    print(f"{torch_source}; frugal {args.frugal}; {machine()}; logs in {workdir}", file=sys.stderr)

    raw = open(os.path.join(workdir, "records.jsonl"), "a")
    failures = []

    def one_run(example, setting, tag, gpt_minutes=None):
        """One fresh process; its record, or None (noted in the output) when it failed."""
        try:
            if setting.startswith("frugal"):
                r = run_frugal(example, setting.split()[1], args, workdir, tag, gpt_minutes)
            else:
                r = run_torch(example, setting, args, workdir, tag, gpt_minutes)
        except RuntimeError as e:
            print(f"{tag}: {e}", file=sys.stderr)
            failures.append(str(e))
            return None
        r["tag"] = tag
        if gpt_minutes:
            r["race_minutes"] = gpt_minutes
        raw.write(json.dumps(r) + "\n")
        raw.flush()
        q = r.get("val_bits_per_char", r.get("test_accuracy"))
        print(f"{tag}: train {r['train_s']:.2f} s, peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB, "
              f"{'val bpc' if EXAMPLES[example]['text'] else 'test acc'} {q}", file=sys.stderr)
        return r

    records = []
    if args.records:  # the table of earlier runs, nothing run
        records = [json.loads(line) for line in open(args.records) if line.strip()]
        records = [r for r in records if r["example"] in examples and "race_minutes" not in r]
    for example in examples if not args.records else []:
        for run in range(args.runs):
            for setting in settings:  # alternating, so drifts in machine speed hit every setting alike
                if "channels-last" in setting and example != "cnn":
                    continue
                r = one_run(example, setting, f"{example}-{setting.replace(' ', '-')}-{run}")
                if r:
                    records.append(r)

    command = " ".join(["bench/peers/run_peers.py"] + sys.argv[1:])
    out = [f"Command: `{command}`", "",
           f"Peer: {torch_source}. Machine: {machine()}. Both engines 2 threads; medians of the runs.",
           "Speed counts training only (frugal: data_wait + forward + backward + optimizer phases; PyTorch: batch",
           "assembly + forward + backward + clipping + optimizer), not data loading or evaluation. Ratios are",
           "against the faster PyTorch setting (speed > 1x: faster than it; RSS < 1x: less memory). Peak RSS is",
           "each process's own (wait4). GFLOP/s = frugal's counted model FLOPs (3 x forward) / training time.", ""]
    best = {}
    for example in examples:
        ex_records = [r for r in records if r["example"] == example]
        frugal_records = [r for r in ex_records if r["engine"] == "frugal"]
        if not frugal_records:  # no FLOP count (and nothing to compare) without a frugal run
            continue
        flops_per_sample = frugal_records[0]["flops_per_sample"]
        rows = summarize(ex_records, example, flops_per_sample)
        out += [table(example, rows), ""]
        for engine in ("frugal", "torch"):
            candidates = {s: r for s, r in rows.items() if r["engine"] == engine}
            if candidates:
                best[(example, engine)] = max(candidates, key=lambda s: candidates[s]["speed"])

    if args.gpt_minutes:
        frugal_setting = best.get(("gpt", "frugal"), "frugal bf16-mixed")
        torch_setting = best.get(("gpt", "torch"), "torch bf16")
        if args.race:
            chosen = [x.strip() for x in args.race.split(",")]
            if len(chosen) != 2 or any(c not in settings for c in chosen):
                sys.exit(f"--race: expected two of {', '.join(settings)}, comma-separated; got '{args.race}'")
            frugal_setting, torch_setting = chosen
        race = []
        for setting in (frugal_setting, torch_setting):
            r = one_run("gpt", setting, f"race-{setting.replace(' ', '-')}", args.gpt_minutes)
            if r:
                race.append(r)
        out += [f"KJV GPT race, {args.gpt_minutes:g} minutes of wall time each (the example's recipe, one run each; "
                "settings: the faster of each engine" + (" in the table above)" if ("gpt", "frugal") in best else ")"),
                "", "| setting | steps | wall s | tokens/s (train) | val bits/char |", "| --- | --- | --- | --- | --- |"]
        for r in race:
            out.append(f"| {r['setting']} | {r['steps']} | {r['wall_s']:.0f} | {speed(r, 'gpt'):,.0f} | "
                       f"{r['val_bits_per_char']:.3f} |")
        if len(race) == 2:
            out += ["", f"Lower val bits/char: {min(race, key=lambda r: r['val_bits_per_char'])['setting']}."]
        out.append("")
    if failures:
        out += ["Failed runs (left out of the medians):"] + [f"- {f}" for f in failures] + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
