"""Wall time of a 16-point sweep with local worker processes: ``--workers 2`` against ``--workers 1``.

Usage::

    python benchmarks/sweep.py                 # 16 points: 8 seeds x 2 bandwidths of kl_kde
    python benchmarks/sweep.py --steps 100     # shorter points (smoke run)
    python benchmarks/sweep.py --check         # exit 1 unless workers 2 takes <= 0.6 x workers 1

Each point is a small particle run (N = 256 particles in 2-D, two_modes
target, ``steps`` Euler steps, a record every 20 steps with the ``mode_mass``
and ``mmd2`` metrics), about 1-2 s on one core.  Both sweeps start from an
empty folder, so both pay the worker start-up (an interpreter, the imports,
the numba cache load) once per worker process; with two workers each runs
single-threaded (``NUMBA_NUM_THREADS=1``), with one worker numba may use
every core.  The ratio is ``t(workers=2) / t(workers=1)``; the target is
``<= 0.6`` on a machine with at least 2 free cores.  Timings on a loaded
machine mean little: the script prints the load average and a calibration
(the same ratio for pure-Python spins, ~0.5 on two idle cores) next to them.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

SCENARIO = """
name = "bench_sweep"
[target]
kind = "two_modes"
separation = 3.0
weights = [0.5, 0.5]
std = 0.2
dim = 2
n = {n}
[init]
kind = "two_modes"
separation = 3.0
weights = [0.2, 0.8]
std = 0.2
dim = 2
n = {n}
[[flow]]
name = "kl_kde"
bandwidth = [0.5, 1.0]
[run]
steps = {steps}
step_size = 0.2
record_every = 20
seeds = [0, 1, 2, 3, 4, 5, 6, 7]
[metrics]
names = ["mode_mass", "mmd2"]
"""


def run(workers: int, steps: int, n: int, root: pathlib.Path) -> tuple[float, object]:
    from wgfsim import scenario, sweep

    sc = scenario.loads(SCENARIO.format(steps=steps, n=n), source="<benchmarks/sweep.py>")
    out = root / f"workers{workers}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = sweep.run_sweep(sc, out, workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    if result.failed:
        raise SystemExit(result.summary())
    return seconds, result


def _spin(n: int) -> int:
    s = 0
    for i in range(n):
        s += i
    return s


def calibrate(workers: int, n: int = 4_000_000, tasks: int = 4) -> float:
    """The machine's own ratio for pure-Python CPU work: ``tasks`` spins on ``workers`` processes vs one process.

    About ``1 / workers`` on idle cores; near 1 when other processes already
    occupy the cores (then no sweep can be faster either).
    """
    import multiprocessing

    t0 = time.perf_counter()
    for _ in range(tasks):
        _spin(n)
    serial = time.perf_counter() - t0
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_spin, [1000] * workers)  # start the processes outside the timing
        t0 = time.perf_counter()
        pool.map(_spin, [n] * tasks)
        parallel = time.perf_counter() - t0
    return parallel / serial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="Euler steps per point (default 400)")
    parser.add_argument("--n", type=int, default=256, help="particles and target samples per point (default 256)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel sweep (default 2)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the ratio exceeds 0.6")
    parser.add_argument("--keep", metavar="DIR", help="write the sweeps here and keep them (default: a temporary folder)")
    args = parser.parse_args()

    root = pathlib.Path(args.keep) if args.keep else pathlib.Path(tempfile.mkdtemp(prefix="wgfsim-bench-sweep-"))
    try:
        cal_before = calibrate(args.workers)
        t1, r1 = run(1, args.steps, args.n, root)
        tw, rw = run(args.workers, args.steps, args.n, root)
        cal_after = calibrate(args.workers)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    per_point = sorted(o.seconds for o in r1.finished)
    ratio = tw / t1
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"cpu count {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"16 points, {args.steps} steps, N = {args.n}: median {per_point[len(per_point) // 2]:.2f} s per point "
          f"(first {r1.finished[0].seconds:.2f} s with start-up)")
    print(f"workers 1: {t1:.2f} s   (numba threads per task: {sorted({o.threads for o in r1.finished}, key=str)})")
    print(f"workers {args.workers}: {tw:.2f} s   (numba threads per task: {sorted({o.threads for o in rw.finished}, key=str)})")
    print(f"ratio workers {args.workers} / workers 1 = {ratio:.3f}  (target <= 0.6)")
    print(f"machine calibration, pure-Python spins on {args.workers} processes / 1 process: "
          f"{cal_before:.3f} before, {cal_after:.3f} after (~{1 / args.workers:.2f} on idle cores)")
    return 1 if args.check and ratio > 0.6 else 0


if __name__ == "__main__":
    sys.exit(main())
