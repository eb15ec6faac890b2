"""GPU benchmarks of wgfsim: the fused kernel, a dense CuPy baseline, Sinkhorn, sliced, a particle run.

Usage::

    python benchmarks/gpu.py            # everything: device, parity, the targets table, JSON under outputs/
                                        # (full sizes: N = M = 1e6 for the kernel; a few minutes on an H100)
    python benchmarks/gpu.py --quick    # every size / 10, 100 Euler steps: a smoke test in seconds
    python benchmarks/gpu.py --sweep    # also time alternative launch shapes of the 2-D float32 kernel

First a parity table: every kernel family (d in {1, 2, 3, 17, 0}, float32 and
float64, both costs, exclude_diagonal, unit, -inf offsets, a column split)
against the dense float64 reference, with the float32 and float64 contracts
(1e-4 and 1e-10, normwise); a failing row is reported and the exit status
is 1 at the end.  Then one Markdown table headed by the device name, driver,
date and versions; the whole record is also written as JSON to
``outputs/gpu-benchmark-<date>.json`` (``--json`` to choose the path).  Each
row is the median wall time over ``--repeats`` runs after one warm-up (the
device is synchronised before and after each run, so compilation, host
overhead and Sinkhorn's per-iteration convergence checks are in the time the
user sees), and a rate:

* ``lse_bary`` pairs/s = N * M / time, float32, d = 2, at N = M = 1e5 and 1e6
  (``lse`` alone too: the Sinkhorn iteration's call);
* the dense CuPy path at N = M = 1e4: the N x M logits materialised with CuPy
  ops (this script is the one place outside ``dense.py`` allowed to do so),
  against the fused kernel at the same size;
* ``sinkhorn`` velocity, N = M = 1e5, eps = 0.01, exactly 100 iterations (tol 1e-30), cold start;
* ``sliced`` velocity, N = M = 1e6, 100 directions;
* a particle run: 1000 Euler steps ``x <- x + h * field(x, y)`` of a bound
  ``wgfsim.Field`` at N = M = 1e5.

Targets (H100, float32, 2-D): lse_bary >= 2.0e12 pairs/s at 1e6; Sinkhorn
velocity <= 1.4 s; sliced <= 0.4 s.  They are judged only at full size.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

try:
    import cupy as cp
except ImportError:  # a benchmark of the GPU backend cannot fall back to anything
    sys.exit('benchmarks/gpu.py: CuPy is not installed (pip install "wgfsim[gpu]")')

import wgfsim
from wgfsim import primitives
from wgfsim.backend import cupy_status
from wgfsim.primitives import dense, gpu

TARGETS = {  # row key -> (comparison, value, unit) on H100, float32, 2-D, full size
    "lse_bary 1e6": (">=", 2.0e12, "pairs/s"),
    "sinkhorn": ("<=", 1.4, "s"),
    "sliced": ("<=", 0.4, "s"),
}


def sync():
    cp.cuda.Device().synchronize()


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds, device synchronised around each call."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def samples(rng, n, dtype=np.float32):
    """Particles ~ N(0, I_2) and targets ~ a two-mode mixture, on the device."""
    x = rng.standard_normal((n, 2))  # (n, 2)
    y = rng.standard_normal((n, 2)) * 0.5  # (n, 2)
    y[:, 0] += np.where(rng.random(n) < 0.5, -2.0, 2.0)
    return cp.asarray(x, dtype=dtype), cp.asarray(y, dtype=dtype)


def dense_lse_bary(x, y, eps):
    """The (N, M) logits materialised with CuPy ops: the baseline the fused kernel replaces."""
    diff = y[None, :, :] - x[:, None, :]  # (N, M, d)
    logits = -0.5 * cp.sum(diff * diff, axis=2) / eps  # (N, M)
    mx = cp.max(logits, axis=1, keepdims=True)  # (N, 1)
    w = cp.exp(logits - mx)  # (N, M)
    s = cp.sum(w, axis=1)  # (N,)
    return mx[:, 0] + cp.log(s), (w @ y) / s[:, None]  # (N,), (N, d)


def spot_check(x, y, eps, rows=256):
    """Max relative error of the fused float32 kernel against the float64 reference on a few rows."""
    lse, bary = primitives.lse_bary(x[:rows], y, eps=eps)
    xh, yh = cp.asnumpy(x[:rows]).astype(np.float64), cp.asnumpy(y).astype(np.float64)
    ref_lse, ref_shift = dense.lse_shift(xh, yh, None, eps)
    e_lse = np.abs(cp.asnumpy(lse) - ref_lse).max() / np.abs(ref_lse).max()
    e_bary = np.abs(cp.asnumpy(bary) - (xh + ref_shift)).max() / np.abs(xh + ref_shift).max()
    return max(e_lse, e_bary)


def parity(rng):
    """Every kernel family against ``dense.lse_shift`` (float64 truth on the dtype-rounded inputs).

    Returns rows ``(case, dtype, max normwise error of lse, of shift, tolerance, ok)``.
    """
    rows = []
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):
        for d in (1, 2, 3, 17, 0):
            for cost, exclude, unit in itertools.product(("sqeuclidean", "euclidean"), (False, True), (False, True)):
                n, m = 301, (301 if exclude else 2999)
                x = rng.standard_normal((n, d))
                y = x if exclude else rng.standard_normal((m, d)) + 0.3
                g = rng.standard_normal(len(y))
                g[::7] = -np.inf
                eps = 0.5 * max(d, 1)
                xr, yr, gr = (a.astype(dtype).astype(np.float64) for a in (x, y, g))
                ref_lse, ref_shift = dense.lse_shift(xr, yr, gr, eps, cost, exclude, unit)
                for splits in (None, 3) if d in (2, 17) else (None,):
                    lse, shift = gpu.lse_shift(cp.asarray(x, dtype), cp.asarray(y, dtype), cp.asarray(g, dtype), eps, cost, exclude, unit, True, splits=splits)
                    e_lse = _normwise(cp.asnumpy(lse), ref_lse)
                    e_shift = _normwise(cp.asnumpy(shift), ref_shift, 1.0 if unit else np.abs(yr).max(initial=1.0))
                    case = f"d={d} {cost} excl={exclude} unit={unit}" + (f" splits={splits}" if splits else "")
                    rows.append((case, np.dtype(dtype).name, e_lse, e_shift, tol, bool(e_lse <= tol and e_shift <= tol)))
    return rows


def _normwise(got, ref, scale=None):
    """max |got - ref| / (|ref| + scale) over finite entries; inf if the -inf/NaN patterns differ."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    finite = np.isfinite(ref)
    if not np.array_equal(np.isfinite(got), finite) or not np.array_equal(got[~finite], ref[~finite]):
        return float("inf")
    if not finite.any():
        return 0.0
    scale = np.abs(ref[finite]).max() if scale is None else scale
    return float(np.max(np.abs(got[finite] - ref[finite]) / (np.abs(ref[finite]) + scale)))


def fmt_rate(v, unit):
    return f"{v:.3g} {unit}"


class Table:
    def __init__(self, full: bool):
        self.rows = []
        self.full = full

    def add(self, key, what, size, seconds, rate=None, unit="pairs/s", note=""):
        target, status = "", ""
        if key in TARGETS:
            op, val, tunit = TARGETS[key]
            target = f"{op} {val:.3g} {tunit}"
            measured = rate if tunit != "s" else seconds
            ok = measured >= val if op == ">=" else measured <= val
            status = ("PASS" if ok else "FAIL") if self.full else "n/a (not full size)"
        self.rows.append((what, size, f"{seconds * 1e3:.2f} ms" if seconds < 10 else f"{seconds:.2f} s",
                          fmt_rate(rate, unit) if rate is not None else "", target, status, note))
        print(f"  {what} [{size}]: {self.rows[-1][2]} {self.rows[-1][3]} {status}", file=sys.stderr, flush=True)

    def print(self, header):
        print(header)
        cols = ("benchmark", "size", "median time", "rate", "target (H100)", "status", "note")
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in self.rows:
            print("| " + " | ".join(str(c) for c in r) + " |")


def environment() -> dict:
    """Device, driver and library versions of this run."""
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    rt = cp.cuda.runtime.runtimeGetVersion()
    drv = cp.cuda.runtime.driverGetVersion()
    try:  # the NVIDIA driver release (e.g. 550.54.15); the CUDA driver API version is below
        release = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        release = "unknown"
    return {
        "device": name,
        "multiprocessors": int(props.get("multiProcessorCount", 0)),
        "compute_capability": f"{props.get('major', '?')}.{props.get('minor', '?')}",
        "driver": release,
        "cuda_driver_api": f"{drv // 1000}.{drv % 1000 // 10}",
        "cuda_runtime": f"{rt // 1000}.{rt % 1000 // 10}",
        "cupy": cp.__version__,
        "wgfsim": wgfsim.__version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def header(args, env):
    return (
        f"# wgfsim GPU benchmark\n\n"
        f"- device: {env['device']} ({env['multiprocessors']} SMs, compute capability {env['compute_capability']})\n"
        f"- date: {env['date']}\n"
        f"- driver {env['driver']} (CUDA driver API {env['cuda_driver_api']}), CUDA runtime {env['cuda_runtime']}, "
        f"CuPy {env['cupy']}, wgfsim {env['wgfsim']}\n"
        f"- float32, d = 2, scale {args.scale:g}, median of {args.repeats} after a warm-up\n"
    )


def bench_kernel(table, rng, args):
    eps = 0.1
    for n_full, key in ((10**5, "lse_bary 1e5"), (10**6, "lse_bary 1e6")):
        n = args.size(n_full)
        x, y = samples(rng, n)
        err = spot_check(x, y, eps)
        t = median_time(lambda: primitives.lse_bary(x, y, eps=eps), args.repeats)
        table.add(key, "lse_bary (fused)", f"N=M={n:.0e}", t, n * n / t, note=f"max rel err vs float64 {err:.1e}")
        t = median_time(lambda: primitives.lse(x, y, eps=eps), args.repeats)
        table.add(key.replace("lse_bary", "lse"), "lse only (fused)", f"N=M={n:.0e}", t, n * n / t)


def bench_dense(table, rng, args):
    n = args.size(10**4)
    x, y = samples(rng, n)
    eps = 0.1
    t_dense = median_time(lambda: dense_lse_bary(x, y, eps), args.repeats)
    table.add("dense", "lse_bary dense CuPy (N x M logits)", f"N=M={n:.0e}", t_dense, n * n / t_dense)
    t_fused = median_time(lambda: primitives.lse_bary(x, y, eps=eps), args.repeats)
    lse_d, bary_d = dense_lse_bary(x, y, eps)
    lse_f, bary_f = primitives.lse_bary(x, y, eps=eps)
    diff = float(cp.max(cp.abs(bary_d - bary_f)))
    table.add("fused-small", "lse_bary fused, same size", f"N=M={n:.0e}", t_fused, n * n / t_fused,
              note=f"{t_dense / t_fused:.3g}x faster than dense; max |bary diff| {diff:.1e}")


def bench_sinkhorn(table, rng, args):
    n = args.size(10**5)
    x, y = samples(rng, n)

    def run():
        return wgfsim.velocity("sinkhorn", x, y, backend="cupy", epsilon=0.01, max_iter=100, tol=1e-30)

    t = median_time(run, args.repeats)
    # one softmin, 100 iterations x (lse_cols + lse + self lse), 2 lse_shift: 303 passes over N x M pairs;
    # the error is read back every sinkhorn.CHECK_EVERY iterations (the loop's only host syncs)
    table.add("sinkhorn", "sinkhorn velocity (eps 0.01, 100 it)", f"N=M={n:.0e}", t, 303 * n * n / t,
              note="rate counts 303 fused passes")


def bench_sliced(table, rng, args):
    n = args.size(10**6)
    x, y = samples(rng, n)
    t = median_time(lambda: wgfsim.velocity("sliced", x, y, backend="cupy", n_projections=100, rng=0), args.repeats)
    table.add("sliced", "sliced velocity (100 directions)", f"N=M={n:.0e}", t, n / t, unit="points/s")


def bench_run(table, rng, args):
    n = args.size(10**5)
    steps = max(10, int(round(1000 * args.scale))) if args.scale < 1 else 1000
    x, y = samples(rng, n)
    params = dict(bandwidth=0.5) if args.run_flow in ("kl_kde", "mmd", "kl_kde_wgf") else {}
    field = wgfsim.Field(args.run_flow, backend="cupy", rng=0, **params)
    h = 0.1
    x = x + h * field(x, y)  # warm-up: compiles the kernels
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        x = x + h * field(x, y)
    sync()
    t = time.perf_counter() - t0
    finite = bool(cp.all(cp.isfinite(x)))
    table.add("run", f"particle run: {steps} Euler steps of {args.run_flow}", f"N=M={n:.0e}", t, steps / t,
              unit="steps/s", note=f"{params or 'defaults'}; finite={finite}")


def sweep(rng, args):
    """Time launch shapes of the 2-D float32 fast kernel (with shift and lse only); print a table."""
    n = args.size(10**5 if args.scale < 1 else 3 * 10**5)
    x, y = samples(rng, n)
    eps = 0.1
    saved = gpu._FAST_TUNING[("float32", 2)]
    results = []
    try:
        for lazy, rows, k, block, tile in itertools.product((False, True), (1, 2), (8, 16, 32), (128, 256), (256, 512)):
            t = gpu.FastTuning(rows=rows, k=k, tile=tile, block=block, lazy=lazy)
            gpu._FAST_TUNING[("float32", 2)] = t
            err = spot_check(x, y, eps, rows=64)  # a fast wrong shape is no candidate
            t_s = median_time(lambda: primitives.lse_bary(x, y, eps=eps), args.repeats)
            t_l = median_time(lambda: primitives.lse(x, y, eps=eps), args.repeats)
            results.append((t, n * n / t_s, n * n / t_l, err))
            print(f"  sweep {t}: {n * n / t_s:.3g} / {n * n / t_l:.3g} pairs/s, err {err:.1e}", file=sys.stderr, flush=True)
    finally:
        gpu._FAST_TUNING[("float32", 2)] = saved
    print(f"\n## launch-shape sweep, float32, d = 2, N = M = {n:.0e} (current: {saved})\n")
    print("| lazy | rows | k | block | tile | lse_bary pairs/s | lse pairs/s | max rel err |")
    print("|---|---|---|---|---|---|---|---|")
    for t, rs, rl, err in sorted(results, key=lambda r: -r[1]):
        print(f"| {t.lazy} | {t.rows} | {t.k} | {t.block} | {t.tile} | {rs:.3g} | {rl:.3g} | {err:.1e} |")
    return [dict(shape=str(t), lse_bary_pairs_per_s=rs, lse_pairs_per_s=rl, max_rel_err=err) for t, rs, rl, err in results]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="every size / 10 and 100 Euler steps (same as --scale 0.1)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every size by this (targets judged only at 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per benchmark (median reported)")
    ap.add_argument("--run-flow", default="kl_kde", help="flow of the particle run (default kl_kde, bandwidth 0.5)")
    ap.add_argument("--sweep", action="store_true", help="also time launch shapes of the 2-D float32 kernel")
    ap.add_argument("--only", nargs="*", default=None,
                    choices=["kernel", "dense", "sinkhorn", "sliced", "run"], help="run only these benchmarks")
    ap.add_argument("--json", default=None, help="where to write the JSON record (default outputs/gpu-benchmark-<date>.json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.scale = min(args.scale, 0.1)
    args.size = lambda n: max(64, int(round(n * args.scale)))
    ok, why = cupy_status()
    if not ok:
        sys.exit(f"benchmarks/gpu.py: {why}")
    rng = np.random.default_rng(0)
    env = environment()
    print(header(args, env))
    print("parity...", file=sys.stderr, flush=True)
    checks = parity(rng)
    print("## parity against the dense float64 reference\n")
    print("| case | dtype | lse error | shift error | tolerance | ok |\n|---|---|---|---|---|---|")
    for case, dt, e1, e2, tol, ok in checks:
        print(f"| {case} | {dt} | {e1:.1e} | {e2:.1e} | {tol:.0e} | {'yes' if ok else 'NO'} |")
    failed = sum(not row[-1] for row in checks)
    print(f"\n{len(checks) - failed} of {len(checks)} parity cases within tolerance\n")
    table = Table(full=args.scale == 1.0)
    benches = {"kernel": bench_kernel, "dense": bench_dense, "sinkhorn": bench_sinkhorn, "sliced": bench_sliced, "run": bench_run}
    for name, fn in benches.items():
        if args.only is None or name in args.only:
            print(f"{name}...", file=sys.stderr, flush=True)
            fn(table, rng, args)
    table.print("## targets and timings\n")
    record = {
        "environment": env,
        "scale": args.scale,
        "repeats": args.repeats,
        "parity": [dict(zip(("case", "dtype", "lse_error", "shift_error", "tolerance", "ok"), row)) for row in checks],
        "benchmarks": [dict(zip(("benchmark", "size", "median_time", "rate", "target", "status", "note"), row)) for row in table.rows],
    }
    if args.sweep:
        record["sweep"] = sweep(rng, args)
    path = Path(args.json) if args.json else Path("outputs") / f"gpu-benchmark-{env['date'][:19].replace(':', '')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"\nwritten: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
