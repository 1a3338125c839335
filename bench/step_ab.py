#!/usr/bin/env python3
"""Alternates two builds of bench/micro/step_bench (e.g. the commit before a change and after it)
and reports, per benchmark, each build's median step time and the median over rounds of the
per-round ratio B/A with its min and max. One round runs A then B (B then A in odd rounds), each
for --repetitions repetitions, so machine drift hits both alike.

Usage: bench/step_ab.py --a OLD/step_bench --b NEW/step_bench [--rounds 6] [--filter REGEX]
Run on idle cores (OMP_NUM_THREADS=2 GOMP_SPINCOUNT=30000 are set, as `frugal` runs).
"""
import argparse
import json
import os
import statistics
import subprocess

DEFAULT_FILTER = r"BM_(Mlp|Cnn)Step|BM_GptStep/bf16:[01]/recompute:0"


def run(binary, filt, repetitions):
    env = dict(os.environ, OMP_NUM_THREADS="2", GOMP_SPINCOUNT="30000")
    out = subprocess.run([binary, f"--benchmark_filter={filt}", f"--benchmark_repetitions={repetitions}",
                          "--benchmark_format=json", "--benchmark_report_aggregates_only=true"],
                         env=env, check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            times[b["run_name"]] = b["real_time"]
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--filter", default=DEFAULT_FILTER)
    args = p.parse_args()
    a_times, b_times, ratios = {}, {}, {}
    for r in range(args.rounds):
        order = [("a", args.a), ("b", args.b)] if r % 2 == 0 else [("b", args.b), ("a", args.a)]
        got = {name: run(binary, args.filter, args.repetitions) for name, binary in order}
        for bench, t in got["a"].items():
            a_times.setdefault(bench, []).append(t)
            b_times.setdefault(bench, []).append(got["b"][bench])
            ratios.setdefault(bench, []).append(got["b"][bench] / t)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    print(f"{'benchmark':40} {'A median':>10} {'B median':>10} {'B/A median':>11} {'min':>7} {'max':>7}")
    for bench in a_times:
        rs = ratios[bench]
        print(f"{bench:40} {statistics.median(a_times[bench]):10.3f} {statistics.median(b_times[bench]):10.3f} "
              f"{statistics.median(rs):11.3f} {min(rs):7.3f} {max(rs):7.3f}")


if __name__ == "__main__":
    main()
