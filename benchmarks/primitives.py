"""CPU speed of the primitive, of pruned Sinkhorn and of the sliced flow, and the kernel's generated code.

Usage::

    python benchmarks/primitives.py              # throughput and memory table (one process per configuration)
    python benchmarks/primitives.py --ratios     # new kernel vs the previous one, interleaved in one process
    python benchmarks/primitives.py --asm        # packed arithmetic and no float<->int conversions in the kernel
    python benchmarks/primitives.py --sinkhorn   # pruned vs every-pair Sinkhorn velocity (eps 0.01 and 1)
    python benchmarks/primitives.py --sliced     # sliced velocity, 1e6 points x 100 directions, vs the previous code
    python benchmarks/primitives.py --all --quick  # every part at small sizes (a smoke run)

Table mode: each configuration runs in a fresh subprocess so that its peak
resident memory (``ru_maxrss``) is its own; throughput is pairs (N x M) per
second of wall time, best of ``repeats`` after one warm-up call.  2-D points,
eps = 0.1, sqeuclidean cost.

The comparison modes time old and new code alternately in one process, so a
busy machine slows both alike: their ratios are the figures that carry over.
"The previous kernel" is ``wgfsim/primitives/cpu.py`` at git revision
``BASELINE_REV`` (read with ``git show``; skipped where git or the revision is
missing); "the previous sliced code" is the array-namespace path that
``wgfsim.flows.sliced`` keeps for the GPU.  Every mode prints ``uptime``.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = "9537059"


def load_average() -> str:
    return "load average %.2f, %.2f, %.2f" % os.getloadavg()


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', os.cpu_count())}"


def baseline_kernel():
    """The previous Numba kernel module (``lse_shift(x, y, g, eps)``), or None."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE_REV}:wgfsim/primitives/cpu.py"],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp(prefix="wgfsim_baseline_")) / "wgfsim_cpu_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("wgfsim_cpu_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def interleaved(fns: dict, repeats: int) -> dict:
    """Best wall time of each callable, the callables taking turns (one warm-up call each first)."""
    for f in fns.values():
        f()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------- table (as before)
def child(backend: str, n: int, dtype: str, repeats: int) -> dict:
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


def table(quick: bool) -> None:
    configs = [("numpy", 10_000), ("numba", 10_000), ("numba", 100_000)]
    if quick:
        configs = [("numpy", 2_000), ("numba", 2_000), ("numba", 10_000)]
    rows = []
    for backend, n in configs:
        for dtype in ("float64", "float32"):
            repeats = 1 if n * n > 5e9 else 3
            out = subprocess.run([sys.executable, __file__, "--child", backend, str(n), dtype, str(repeats)],
                                 check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"lse_bary, 2-D, eps=0.1, sqeuclidean; {machine()}; {load_average()}")
    print("| backend | N = M | dtype | time (s) | pairs/s | extra peak memory (MB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['backend']} | {r['n']:.0e} | {r['dtype']} | {r['seconds']:.3f} | {r['pairs_per_s']:.3g} | {r['extra_mb']:.1f} |")


# ---------------------------------------------------------------- kernel ratios
def ratios(quick: bool) -> None:
    from wgfsim.primitives import cpu

    old = baseline_kernel()
    sizes = [2_000, 10_000] if quick else [10_000, 100_000]
    print(f"lse_shift (every pair), 2-D, eps=0.1, sqeuclidean, with the shift; {machine()}; {load_average()} at the start")
    print("| N = M | kernel | time (s) | pairs/s | vs previous float64 |")
    print("| --- | --- | --- | --- | --- |")
    for n in sizes:
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        fns = {}
        if old is not None:
            fns["previous float64"] = lambda: old.lse_shift(x, y, None, 0.1)
            fns["previous float32"] = lambda: old.lse_shift(x32, y32, None, 0.1)
        fns["new float64"] = lambda: cpu.lse_shift_dense(x, y, None, 0.1)
        fns["new float32"] = lambda: cpu.lse_shift_dense(x32, y32, None, 0.1)
        best = interleaved(fns, 1 if n * n > 5e9 else 3)
        ref = best.get("previous float64")
        for k, t in best.items():
            ratio = f"{ref / t:.2f}x" if ref else "n/a"
            print(f"| {n:.0e} | {k} | {t:.3f} | {n * n / t:.3g} | {ratio} |")
        # the same answers: new float64 against the previous float64, new float32 against float64
        a, b = cpu.lse_shift_dense(x, y, None, 0.1), cpu.lse_shift_dense(x32, y32, None, 0.1)
        if old is not None:
            o = old.lse_shift(x, y, None, 0.1)
            print(f"|  | max rel. difference new vs previous float64: lse {np.abs(a[0] - o[0]).max() / np.abs(o[0]).max():.1e}, "
                  f"shift {np.abs(a[1] - o[1]).max() / np.abs(o[1]).max():.1e} | | | |")
        print(f"|  | max rel. difference float32 vs float64: lse {np.abs(b[0] - a[0]).max() / np.abs(a[0]).max():.1e}, "
              f"shift {np.abs(b[1] - a[1]).max() / np.abs(a[1]).max():.1e} | | | |")
    print(load_average(), "at the end")


# ---------------------------------------------------------------- generated code
def generated_code() -> bool:
    """Compile the serial kernel afresh (cached code cannot be inspected) and count its instructions.

    Passes when both precisions use packed (ymm/zmm) fused multiply-adds, float32 packed single
    precision, and no float <-> integer conversion instruction appears anywhere in the kernel.
    """
    import numba

    from wgfsim.primitives import cpu

    kernel = numba.njit(fastmath=cpu._FAST)(cpu._kernel_serial.py_func)
    ok = True
    for dt in (np.float64, np.float32):
        x = np.zeros((64, 2), dt)
        ys = (np.zeros(300, dt), np.zeros(300, dt))
        kernel(x, ys, np.zeros(300, dt), dt(1.0), True, False, False, True, np.empty(64, dt), np.empty((64, 2), dt))
        asm = kernel.inspect_asm(kernel.signatures[-1])
        ops = re.findall(r"^\s+(v?[a-z0-9]+)\s+([^\n]*)", asm, re.M)
        counts = collections.Counter(op for op, _ in ops)
        wide = lambda pred: sum(1 for op, args in ops if pred(op) and ("ymm" in args or "zmm" in args))
        fma = wide(lambda op: op.startswith("vfmadd") or op.startswith("vfnmadd"))
        single = wide(lambda op: op.endswith("ps") and not op.startswith("vmov"))
        int_conv = {op: c for op, c in counts.items() if re.match(r"v?cvtt?(sd|ss|pd|ps)2(si|dq|qq|udq|uqq)|v?cvt(si|dq|qq)2(sd|ss|pd|ps)", op)}
        fp_conv = {op: c for op, c in counts.items() if re.match(r"v?cvt(sd2ss|ss2sd|pd2ps|ps2pd)", op)}
        print(f"{dt.__name__}: packed FMAs {fma}, packed single-precision ops {single}, "
              f"float<->int conversions {int_conv or 'none'}, float<->double conversions {fp_conv or 'none'}")
        ok &= fma > 0 and not int_conv and (dt is np.float64 or single > 0)
    print("generated code:", "as intended" if ok else "NOT as intended")
    return ok


# ---------------------------------------------------------------- pruned Sinkhorn
def sinkhorn(quick: bool) -> None:
    from wgfsim import flows, targets

    n, iters = (1500, 20) if quick else (5000, 100)
    rng = np.random.default_rng(0)
    toy = targets.make("eight_gaussians")
    y = toy.draw(n, rng)
    starts = {"x ~ eight_gaussians": toy.draw(n, rng), "x ~ N(0, I)": rng.normal(size=(n, 2))}
    for tol in (1e-12, 0.0):  # load the compiled kernels (pruned and dense paths) before timing
        flows.velocity("sinkhorn", starts["x ~ N(0, I)"][:800], y[:800], epsilon=0.01, max_iter=2, prune_tol=tol)
    print(f"Sinkhorn velocity, N = M = {n}, {iters} iterations, y ~ eight_gaussians; {machine()}; {load_average()} at the start")
    print("| particles | eps | pruned (s) | every pair (s) | speed-up | max abs. velocity difference / max abs. velocity |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, x in starts.items():
        for eps in (0.01, 1.0):
            def run(tol):
                return flows.velocity("sinkhorn", x, y, epsilon=eps, max_iter=iters, tol=1e-30, prune_tol=tol)

            vs, best = {}, {}
            for tol, key in ((1e-12, "pruned"), (0.0, "dense")):  # kernels are loaded by the warm-up below
                t0 = time.perf_counter()
                vs[key] = run(tol)
                best[key] = time.perf_counter() - t0
            vs["p"], vs["d"] = vs["pruned"], vs["dense"]
            diff = np.abs(vs["p"] - vs["d"]).max() / np.abs(vs["d"]).max()
            print(f"| {name} | {eps} | {best['pruned']:.2f} | {best['dense']:.2f} | {best['dense'] / best['pruned']:.2f}x | {diff:.1e} |")
    print(load_average(), "at the end")


# ---------------------------------------------------------------- sliced
def sliced(quick: bool, directions: int = 100) -> None:
    from wgfsim.flows import sliced as sl

    n, L, chunk = (100_000, 20, 10) if quick else (1_000_000, directions, 20)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) * 2 + 1
    theta = sl.directions(np.random.default_rng(1), L, 2)

    def previous():
        # the array-namespace path: (L, N) arrays, stable argsort; run `chunk` directions at a time
        v = np.zeros_like(x)
        for s in range(0, L, chunk):
            th = theta[s:s + chunk]
            px, py = th @ x.T, th @ y.T
            v += (sl.monotone_map(px, py) - px).T @ th
        return v / L

    out = {}
    best = interleaved({"previous": lambda: out.__setitem__("old", previous()),
                        "new": lambda: out.__setitem__("new", sl._cpu_velocity(x, y, theta)[0])}, 1)
    diff = np.abs(out["old"] - out["new"]).max() / np.abs(out["old"]).max()
    print(f"sliced velocity, {n:.0e} points, {L} directions, 2-D; {machine()}; {load_average()} at the end")
    print(f"previous {best['previous']:.2f} s (in chunks of {chunk} directions), new {best['new']:.2f} s: "
          f"{best['previous'] / best['new']:.2f}x; max rel. difference {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    for part in ("ratios", "asm", "sinkhorn", "sliced", "all"):
        parser.add_argument(f"--{part}", action="store_true")
    parser.add_argument("--sliced-directions", type=int, default=100, help="directions of --sliced (default 100)")
    parser.add_argument("--child", nargs=4, metavar=("BACKEND", "N", "DTYPE", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, n, dtype, repeats = args.child
        print(json.dumps(child(backend, int(n), dtype, int(repeats))))
        return
    chosen = [p for p in ("ratios", "asm", "sinkhorn", "sliced") if getattr(args, p) or args.all]
    if not chosen:
        table(args.quick)
    ok = True
    for part in chosen:
        print()
        if part == "asm":
            ok &= generated_code()
        elif part == "sliced":
            sliced(args.quick, args.sliced_directions)
        else:
            {"ratios": ratios, "sinkhorn": sinkhorn, "sliced": sliced}[part](args.quick)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
