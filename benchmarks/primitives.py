"""Throughput and memory of ``lse_bary`` on the CPU: dense NumPy reference vs fused Numba kernel.

Usage::

    python benchmarks/primitives.py            # the table of docs/benchmarks.md
    python benchmarks/primitives.py --quick    # small sizes, a smoke run

Each configuration runs in a fresh subprocess so that its peak resident
memory (``ru_maxrss``) is its own; the figure reported is the peak minus the
process's resident size after imports and data generation, i.e. what the
reduction itself needed.  Throughput is pairs (N x M) per second of wall time,
best of ``repeats`` after one warm-up call (which compiles or loads the cached
kernel).  2-D points, eps = 0.1, sqeuclidean cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def child(backend: str, n: int, dtype: str, repeats: int) -> dict:
    import numpy as np

    from wgfsim.primitives import lse_bary

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)).astype(dtype)
    y = rng.normal(size=(n, 2)).astype(dtype)
    lse_bary(x[:1024], y[:1024], eps=0.1, backend=backend)  # compile or load the kernel, start the threads
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        lse_bary(x, y, eps=0.1, backend=backend)
        best = min(best, time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"backend": backend, "n": n, "dtype": dtype, "seconds": best, "pairs_per_s": n * n / best, "extra_mb": (peak - base) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--child", nargs=4, metavar=("BACKEND", "N", "DTYPE", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, n, dtype, repeats = args.child
        print(json.dumps(child(backend, int(n), dtype, int(repeats))))
        return
    configs = [("numpy", 10_000), ("numba", 10_000), ("numba", 100_000)]
    if args.quick:
        configs = [("numpy", 2_000), ("numba", 2_000), ("numba", 10_000)]
    rows = []
    for backend, n in configs:
        for dtype in ("float64", "float32"):
            repeats = 1 if n * n > 5e9 else 3
            out = subprocess.run(
                [sys.executable, __file__, "--child", backend, str(n), dtype, str(repeats)],
                check=True, capture_output=True, text=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cores = os.cpu_count()
    print(f"lse_bary, 2-D, eps=0.1, sqeuclidean; {platform.processor() or platform.machine()}, {cores} cores, "
          f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', cores)}")
    print("| backend | N = M | dtype | time (s) | pairs/s | extra peak memory (MB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['backend']} | {r['n']:.0e} | {r['dtype']} | {r['seconds']:.3f} | {r['pairs_per_s']:.3g} | {r['extra_mb']:.1f} |")
    dense = {r["dtype"]: r["pairs_per_s"] for r in rows if r["backend"] == "numpy"}
    for r in rows:
        if r["backend"] == "numba":
            print(f"speed-up of numba over dense at N={r['n']:.0e} {r['dtype']}: {r['pairs_per_s'] / dense[r['dtype']]:.1f}x")


if __name__ == "__main__":
    main()
