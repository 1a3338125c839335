#!/usr/bin/env python3
"""Data-parallel scaling on paper from what bench/dist_scaling/run.sh measured in WORK_DIR.

Per example: t1 = compute seconds per step of one process (1 thread) doing the whole global batch,
G = gradient bytes (fp32, summed every step). For N hosts at bandwidth B (bit/s) and latency a:
    ring all-reduce  c(N) = 2 (N-1)/N * G * 8 / B  +  2 (N-1) * k * a     (k = buckets of 4 MiB)
    step, no overlap       t1/N + c(N)
    step, full overlap     max(t1/N, c(N))   (the reduction hidden behind backward at best)
Speed-up t1 / step, efficiency speed-up / N. Limits: compute assumed to split evenly (grad_accum a
multiple of N, no straggler), bandwidth per host full-duplex and not shared, a = 20 us (a datacenter
TCP hop; the measured loopback / veth latencies are printed next to it).
Usage: model.py WORK_DIR
"""
import glob
import json
import math
import os
import sys

LATENCY_S = 20e-6
BUCKET_BYTES = 4 * 1048576
HOSTS = [2, 4, 8, 16, 32, 64]
GBITS = [10, 25, 100]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def lines(path):
    out = []
    if os.path.exists(path):
        for line in open(path):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def find_dist(summary):
    """The data-parallel technique's block, whatever its exact key names (bytes sent, wait seconds)."""
    if not summary:
        return None
    block = summary.get("dist") or summary.get("techniques", {}).get("data_parallel")
    if not isinstance(block, dict):
        return None
    def pick(*names):
        for n in names:
            if n in block and isinstance(block[n], (int, float)):
                return float(block[n])
        return None
    return {"world": pick("world_size", "size", "ranks"),
            "bytes": pick("bytes_sent_rank0", "bytes_sent", "bytes"),
            "wait": pick("comm_wait_s_rank0", "wait_s", "wait_seconds", "comm_wait_s"),
            "raw": block}


def transport(work):
    print("\nTransport (dist_probe, 2 ranks, alltoall; best of the repeats; per rank sending):")
    print(f"{'path':<14} {'MiB/rank':>9} {'sent MB':>8} {'best s':>9} {'Gbit/s':>7} {'1 KiB alltoall us, best / median':>34}")
    for label in ["shm", "tcp-loopback", "veth"]:
        bw = lines(os.path.join(work, f"bw-{label}.json"))
        lat = lines(os.path.join(work, f"lat-{label}.json"))
        if not bw:
            continue
        worst = min(bw, key=lambda j: j.get("send_gbit_s", 0))
        # Fastest rank's best and slowest rank's median: on a busy machine a rank that is not
        # scheduled makes the other wait, so the median can be far above the best.
        lat_us = f"{min(j['alltoall_best_s'] for j in lat) * 1e6:.1f} / {max(j['alltoall_median_s'] for j in lat) * 1e6:.1f}" if lat else "-"
        print(f"{label:<14} {worst['alltoall_mib']:>9g} {worst['alltoall_bytes_sent'] / 1e6:>8.1f} "
              f"{max(j['alltoall_best_s'] for j in bw):>9.4f} {worst['send_gbit_s']:>7.2f} {lat_us:>34}")


def main():
    work = sys.argv[1]
    transport(work)
    print(f"\nModel: c(N) = 2(N-1)/N * G*8/B + 2(N-1)*k*a, a = {LATENCY_S * 1e6:g} us, k = ceil(G / 4 MiB)")
    for name in ["mlp", "cnn", "gpt"]:
        one = load(os.path.join(work, "runs", f"{name}-1", "summary.json"))
        two = load(os.path.join(work, "runs", f"{name}-2", "summary.json"))
        if not one:
            print(f"\n{name}: no one-process summary")
            continue
        steps = one["steps"]
        t1 = one["train_compute_s"] / steps
        grad = 4 * one["trainable_params"]  # fp32 gradients, what the exact sum reduces each step
        k = max(1, math.ceil(grad / BUCKET_BYTES))
        print(f"\n{name}: {one['params']} parameters, G = {grad / 1e6:.2f} MB of gradients per step, "
              f"one process (1 thread, 2 micro-batches): {t1 * 1e3:.2f} ms compute per step over {steps} steps "
              f"(wall {one['wall_s'] / steps * 1e3:.2f} ms per step)")
        if two:
            t2 = two["train_compute_s"] / max(1, two["steps"])
            wall2 = two["wall_s"] / max(1, two["steps"])
            line = (f"  mpirun -np 2 (1 thread each, this machine), rank 0: compute {t2 * 1e3:.2f} ms per step, "
                    f"wall {wall2 * 1e3:.2f} ms per step (with set-up and the final evaluation)")
            d = find_dist(two)
            if d and d["bytes"] is not None:
                line += f", {d['bytes'] / two['steps'] / 1e6:.3f} MB sent per step by rank 0"
                line += f" (ring model: {ring_bytes(grad, 2) / 1e6:.3f} MB)"
            if d and d["wait"] is not None:
                # Time blocked in collectives: the transfer and waiting for the slower rank.
                share = d["wait"] / two["wall_s"] if two["wall_s"] else float("nan")
                line += f", blocked in collectives {d['wait'] / two['steps'] * 1e3:.2f} ms per step ({share * 100:.1f}% of wall)"
            if d is None:
                line += " (no `dist` block in the summary: bytes / wait not reported)"
            print(line)
            if d:
                print(f"  dist block: {json.dumps(d['raw'])}")
        header = f"  {'N':>3} " + " ".join(f"{str(g) + ' Gbit/s: step ms, eff':>34}" for g in GBITS)
        print(header)
        for n in HOSTS:
            cells = []
            for g in GBITS:
                c = ring_bytes(grad, n) * 8 / (g * 1e9) + 2 * (n - 1) * k * LATENCY_S
                seq, ovl = t1 / n + c, max(t1 / n, c)
                cells.append(f"{seq * 1e3:8.2f} {t1 / seq / n * 100:4.0f}% | {ovl * 1e3:7.2f} {t1 / ovl / n * 100:4.0f}%")
            print(f"  {n:>3} " + " ".join(f"{cell:>34}" for cell in cells))
        print("  (each cell: no overlap | full overlap; eff = speed-up / N)")


def ring_bytes(grad_bytes, n):
    """Bytes a rank sends in a ring all-reduce of grad_bytes over n ranks."""
    return 2 * (n - 1) / n * grad_bytes


if __name__ == "__main__":
    main()
