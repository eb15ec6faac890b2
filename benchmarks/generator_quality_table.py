"""Summarise the JSON files of ``generator_quality.py`` and ``demo_torch.py`` into one markdown table.

Usage::

    python benchmarks/generator_quality_table.py outputs/quality/*.json

Rows group the files by configuration (target, network, EMA, schedule) and
give the seed mean and spread of MMD^2 at bandwidth 0.05 (each seed's value
is itself the mean over its evaluation sets) and at the median bandwidth,
and the ratio of the former to the two-sample noise floor.  The floor is the
expectation of the biased V-statistic between two independent samples of
the target of sizes ``n`` and ``m`` (Gretton et al. 2012, eq. 5)::

    E MMD_b^2 = (1/n + 1/m) (k(0) - E k(X, X'))        with k(0) = 1

with ``E k(X, X')`` by Monte Carlo over 4 x 4000^2 pairs (relative error
below 2 %, so the floor's is below 0.05 %): exact up to that, unlike the
floor measured on a few sample pairs, which wanders by 10-20 %.
"""

from __future__ import annotations

import collections
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def expected_kernel(kind_opts: dict, bandwidth: float) -> float:
    from wgfsim import targets

    t, rng, vals = targets.make(**kind_opts), np.random.default_rng(5), []
    for _ in range(4):
        a, b = t.sample(4000, rng), t.sample(4000, rng)
        for i in range(0, 4000, 500):  # (500, 4000) blocks of the kernel matrix
            d2 = ((a[i:i + 500, None, :] - b[None, :, :]) ** 2).sum(-1)
            vals.append(np.exp(-d2 / (2 * bandwidth**2)).mean())
    return float(np.mean(vals))


def label(args: dict) -> str:
    if "architecture" not in args:
        return "demo (torch): mlp, torch init, depth 3"
    extra = []
    if args.get("ema"):
        extra.append(f"EMA {args['ema']}")
    if args.get("schedule", "constant") != "constant":
        extra.append(args["schedule"])
    return f"wgfsim: {args['architecture']}, {args['init']} init, depth {args['depth']}" + (", " + ", ".join(extra) if extra else "")


def main(paths):
    from generator_quality import BANDWIDTH, TARGETS

    groups = collections.defaultdict(list)
    for p in paths:
        d = json.loads(pathlib.Path(p).read_text())
        groups[(d["args"]["target"], label(d["args"]))].append(d)
    floors = {}
    print("| target | network | seeds | MMD^2 (bw 0.05), seed mean +- sd | / floor | MMD^2 (median bw) | step (ms, median) | wall (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (target, name), runs in sorted(groups.items()):
        n = runs[0]["args"]["eval_n"]
        if target not in floors:
            floors[target] = (2.0 / n) * (1.0 - expected_kernel(TARGETS[target], BANDWIDTH))
        narrow = np.array([r["score"]["mmd2_bw005_mean"] for r in runs])
        median = np.array([r["score"]["mmd2_median_mean"] for r in runs])
        sd = f" +- {narrow.std(ddof=1):.2e}" if len(runs) > 1 else ""
        seeds = ",".join(str(r["args"]["seed"]) for r in sorted(runs, key=lambda r: r["args"]["seed"]))
        print(f"| {target} | {name} | {seeds} | {narrow.mean():.2e}{sd} | **{narrow.mean() / floors[target]:.2f}** | "
              f"{median.mean():.1e} | {np.median([r['step_ms_median'] for r in runs]):.0f} | "
              f"{np.mean([r['wall_s'] for r in runs]):.0f} |")
    for target, f in floors.items():
        print(f"\nnoise floor, {target}, bandwidth {BANDWIDTH}, n = m = {n}: {f:.3e}")


if __name__ == "__main__":
    main(sys.argv[1:])
