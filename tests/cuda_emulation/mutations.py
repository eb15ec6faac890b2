"""Mutation check of the emulated kernel tests: inject plausible bugs into a copy of the CUDA source, expect failures.

Usage::

    python tests/cuda_emulation/mutations.py            # every mutant; exit status 1 if one survives
    python tests/cuda_emulation/mutations.py --only kahan-removed lazy-threshold

For each mutant the script writes the modified source to a temporary file,
checks that it still compiles (a mutant that does not compile proves
nothing), then runs the emulated tests of the default suite
(``tests/test_primitives.py`` and ``tests/test_gpu.py``, ``-m "not slow"``,
``-k emulated``, stopping at the first failure) with ``WGFSIM_CUDA_SOURCE``
pointing at it.  A mutant is *caught* when that run fails (a test fails, or
the process dies of a signal: an out-of-bounds access can crash the
emulation).  The unmodified source runs first and must pass.  A JSON summary
is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "wgfsim" / "primitives" / "cuda" / "lse_shift.cu"

# name -> (what it breaks, text of the source, its replacement); each text occurs exactly once
MUTANTS = {
    "tile-bound-off-by-one": (
        "the last tile's padding columns take a real offset (col <= cols)",
        "tile[col].v[D] = col < cols ? N_::offset(g[j0 + col]) : ninf;",
        "tile[col].v[D] = col <= cols ? N_::offset(g[j0 + col]) : ninf;",
    ),
    "first-barrier-missing": (
        "a thread refills the tile while others still read it",
        "    __syncthreads();  // the previous tile is consumed by every thread\n",
        "",
    ),
    "second-barrier-missing": (
        "a thread reads the tile before the others have written it",
        "      tile[col].v[D] = col < cols ? N_::offset(g[j0 + col]) : ninf;\n    __syncthreads();\n",
        "      tile[col].v[D] = col < cols ? N_::offset(g[j0 + col]) : ninf;\n",
    ),
    "tile-sum-not-rescaled": (
        "when the running maximum rises, the current tile's sum keeps the old scale",
        "            ts[r] *= f;\n",
        "",
    ),
    "generic-mask-off-by-one": (
        "the generic kernel counts the clamped column m (a duplicate of m - 1)",
        "const bool masked = (j >= m) || (EXCL && j == row);",
        "const bool masked = (j > m) || (EXCL && j == row);",
    ),
    "kahan-removed": (
        "tile sums folded by plain addition",
        "  const T yv = v - comp;\n  const T t = sum + yv;\n  comp = (t - sum) - yv;\n  sum = t;\n",
        "  sum += v;\n",
    ),
    "lazy-threshold-3e38": (
        "a lazy block accepted up to 3e38 (weighted displacements overflow)",
        "done = bs <= T(18446744073709551616.0);",
        "done = bs <= T(3e38);",
    ),
    "row-offset-32-bit": (
        "row * D taken in int32 for the shift output",
        "shift_out[(long long)row * D + q] = empty",
        "shift_out[row * D + q] = empty",
    ),
    "row-stride-rows-per-thread": (
        "a thread's R rows are consecutive instead of blockDim apart (overlap, gaps)",
        "rows[r] = base + r * blockDim.x;",
        "rows[r] = base + r;",
    ),
    "combine-range-weight-dropped": (
        "the combine step adds the ranges' sums without rescaling them to the common maximum",
        "kahan_add(total, ct, N_::ex(p[k * stride] - top) * p[k * stride + 1]);",
        "kahan_add(total, ct, p[k * stride + 1]);",
    ),
    "column-ranges-drop-tail": (
        "tiles per column range rounded down: the last tiles belong to no range",
        "const int per = (tiles + (int)gridDim.y - 1) / (int)gridDim.y;",
        "const int per = tiles / (int)gridDim.y;",
    ),
    "rsqrt-zero-guard-removed": (
        "coincident points: 0 * rsqrt(0) = NaN distance",
        "inv = v >= 1.17549435e-38f ? r : 0.0f;",
        "inv = r;",
    ),
    "nan-as-empty-row": (
        "a NaN sum read as an empty row (-inf, 0)",
        "    const bool empty = total == T(0);\n    lse_out[row] = empty ? ninf : N_::lse(mx[r], total);",
        "    const bool empty = !(total > T(0));\n    lse_out[row] = empty ? ninf : N_::lse(mx[r], total);",
    ),
    "generic-row-chunk-offset": (
        "the generic kernel loads the first chunk of x_i for every chunk",
        "xc[q] = q0 + q < d ? xi[q0 + q] : T(0);",
        "xc[q] = q0 + q < d ? xi[q] : T(0);",
    ),
    "float32-offset-overflow-unchecked": (
        "offsets beyond FLT_MAX / log2 e become +-inf silently",
        "    return (fabsf(s) == __int_as_float(0x7f800000) && fabsf(g) != __int_as_float(0x7f800000)) ? __int_as_float(0x7fc00000) : s;",
        "    return s;",
    ),
}

TESTS = ["tests/test_primitives.py", "tests/test_gpu.py"]


def mutate(text: str, name: str) -> str:
    _, old, new = MUTANTS[name]
    count = text.count(old)
    if count != 1:
        raise SystemExit(f"mutant {name}: its text occurs {count} times in {SOURCE} (expected once); update MUTANTS")
    return text.replace(old, new)


def compiles(path: Path) -> str | None:
    """None if a representative set of instances of the source at ``path`` compiles, else the error."""
    env = dict(os.environ, WGFSIM_CUDA_SOURCE=str(path))
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "import numpy as np\n"
        "from cuda_emulation.loader import Emulator\n"
        "from wgfsim.primitives import gpu\n"
        "Emulator().prepare(gpu.instance_names(np.float32, 2) + gpu.instance_names(np.float64, 17))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    return None if res.returncode == 0 else (res.stderr[-2000:] or "failed")


def run_tests(path: Path, timeout: float) -> tuple[str, str]:
    """('caught' | 'survived' | 'crashed' | 'timeout', the last line of pytest's output)."""
    env = dict(os.environ, WGFSIM_CUDA_SOURCE=str(path))
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", "-k", "emulated", *TESTS]
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    last = lines[-1] if lines else res.stderr[-300:]
    failed = [ln for ln in res.stdout.splitlines() if ln.startswith("FAILED")]
    if res.returncode == 0:
        return "survived", last
    if res.returncode == 1:
        return "caught", (failed[0] if failed else last)
    if res.returncode < 0:  # killed by a signal: the emulated kernel touched memory it does not own
        return "crashed", f"signal {-res.returncode}: {last}"
    return "error", f"pytest exit status {res.returncode}: {last}"  # collection or usage error: proves nothing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(MUTANTS), help="run only these mutants")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per mutant's test run")
    args = ap.parse_args(argv)
    names = args.only or list(MUTANTS)
    text = SOURCE.read_text()
    results = {}
    status, detail = run_tests(SOURCE, args.timeout)
    if status != "survived":
        raise SystemExit(f"the unmodified kernels do not pass the emulated tests ({status}): {detail}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.cu"
            path.write_text(mutate(text, name))
            t0 = time.perf_counter()
            err = compiles(path)
            if err is not None:
                results[name] = {"status": "does not compile", "detail": err}
            else:
                status, detail = run_tests(path, args.timeout)
                results[name] = {"status": status, "detail": detail}
            results[name]["bug"] = MUTANTS[name][0]
            results[name]["seconds"] = round(time.perf_counter() - t0, 1)
            print(f"{name}: {results[name]['status']} ({results[name]['seconds']} s) {results[name]['detail']}", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))
    ok = all(r["status"] in ("caught", "crashed") for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
