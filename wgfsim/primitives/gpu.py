"""Fused CUDA kernels for the log-sum-exp / mean-shift reduction (CuPy ``RawModule``, NVRTC).

The GPU twin of :mod:`wgfsim.primitives.cpu`, with the same semantics.  For
points ``x`` (N, d), ``y`` (M, d), column offsets ``g`` (M,) (zeros if None)
and the logits ``l_ij = g_j - c(x_i, y_j)/eps`` of a cost (``sqeuclidean``:
``|x - y|^2 / 2``, ``euclidean``: ``|x - y|``)::

    lse_i   = log sum_j exp(l_ij)                                      (N,)
    shift_i = sum_j exp(l_ij - lse_i) u(y_j - x_i)                     (N, d)
    u(v)    = v, or v/|v| with ``unit=True`` (0 where y_j == x_i)
    distance_sums(x, y)_i = sum_j |x_i - y_j|                          (N,)

``exclude_diagonal`` drops the pairs i == j (y is x).  A row with no
admissible column (all masked, or every offset -inf) gets ``lse = -inf`` and
``shift = 0``; a NaN in a point or an offset gives NaN (in every row, for a
column's y_j or g_j), never an empty row.  Points in R^0 (d = 0) have every
cost 0: ``lse_i = log sum_j exp(g_j)``.  Outputs are arrays of x's dtype
(float64 for non-float input) of the runtime: CuPy arrays on a GPU.

Algorithm (``cuda/lse_shift.cu``, one pass over the columns per row, O(N + M)
memory, nothing N x M ever exists):

* A block of ``block`` threads owns ``rows * block`` consecutive rows (each
  thread ``rows`` of them).  Columns stream through shared memory ``tile`` at
  a time, coordinates and offset packed per column so one broadcast load
  serves all of a thread's rows.
* Within a tile, ``k`` columns at a time: the ``k`` logits go to registers and
  their maximum ``tm`` is taken; if ``tm`` exceeds the running maximum ``m``
  the running sums are rescaled once by ``exp(m - tm)`` (the FlashAttention
  trick); then each pair costs one exponential ``exp(l - m)``, added to the
  sum and (times the displacement) to the d shift accumulators.  ``m`` only
  grows, every weight is ``<= 1`` and the largest is exactly 1, so nothing
  overflows and the result is finite for any finite input (distances of 1e3
  at eps = 1e-4 give logits of -5e9 and still a finite lse).  A tuning entry
  with ``lazy=True`` skips the per-pair maximum: weights are taken against the
  current ``m`` directly and a block is redone exactly only if its sum exceeds
  2^64 (weights may then exceed 1, never overflow); same results to rounding.
* Specialised kernels for 1 <= d <= ``_FAST_MAX_D`` (d a template constant, the
  point and displacements in registers); above it (and for d = 0) a generic
  kernel reads columns from global memory (L1 broadcast) with d a run-time
  loop, the row ``slice`` coordinates at a time in registers, and sums the
  displacements in registers ``slice`` coordinates per launch.
* Column split: when the rows alone make fewer than two blocks per
  multiprocessor, the fast kernel's grid gets a second dimension of
  ``splits`` column ranges (each at least ``_MIN_TILES_PER_SPLIT`` tiles);
  every block writes partial (reference, sum, displacement sum) triples and
  ``lse_shift_combine`` merges them (:func:`column_splits`).

Numerics:

* float32 (the GPU default) computes and accumulates in float32.  Logits are
  carried in base 2 (``log2 e`` folded into the cost scale and the offsets) so
  a weight is a single ``ex2.approx`` (relative error < 2^-22; square roots use
  ``sqrt.approx``/``rsqrt.approx``, < 2^-22 as well).  Sums are blocked: plain
  within a register block of k columns and a tile of 256, Kahan-compensated
  across tiles, so the summation error is a few times (k + 256/k) u ~ 1e-6
  whatever M (checked at M = 2e5), inside the 1e-4 contract without float64
  accumulators (which run at 1/2 rate on an H100 and 1/64 on consumer GPUs).
  The remaining float32 error is the input rounding of the logits, ``|l| u``:
  well-scaled logits (|l| <~ 100) keep 1e-4 relative; extreme ones stay
  finite and saturate to the nearest point.  Out of float32's range: offsets
  with ``|g| > FLT_MAX / log2 e ~ 2.36e38`` give NaN (they overflow in base
  2); ``eps`` whose cost scale ``1/eps`` exceeds ``_MAX_FLOAT32_SCALE`` is
  refused (logits of ordinary distances would overflow to -inf and rows
  would lose their nearest point); use float64 arrays for either.
* float64 uses the natural base with libdevice ``exp``/``log`` (about 1 ulp)
  and the same blocked sums; it matches the dense reference to ~1e-12.
* Unlike ``cpu.py`` (float64 accumulators for float32 input) the float32
  results are therefore float32 computations end to end; both meet the same
  tolerances against ``dense.py``.

Kernels are compiled by NVRTC (no host toolchain), one ``RawModule`` per
template instance (dtype, d or generic, cost, exclude_diagonal, unit, with
shift, tuning), named through ``name_expressions`` and cached per device with
:func:`functools.cache`; CuPy >= 14 (the ``gpu`` extra's pin) also caches
modules compiled with ``name_expressions`` on disk, so a new process only
pays the load (CuPy 13 recompiles them in every process, ~1-2 s each).

Runtimes: the host code here (launch shapes, splits, workspace) is written
against a small *runtime* (``kernel(name)``, ``ascontiguousarray``,
``empty``, ``zeros``, ``sm_count``); :class:`CupyRuntime` is the GPU, and
the test suite's CPU emulation of the kernels (g++ against a shim of the
CUDA built-ins) is another, so the same launches are checked without a GPU.

Index ranges: rows and columns are int32 in the kernels (at most
``_MAX_POINTS`` each); every product that can pass 2^31 (``row * d``,
``column * d``, partial-triple offsets) is taken in 64 bits, and nothing of
size N x M is ever indexed, so N = M = 1e6 (or 2e9) is within range.  Launch shapes live in ``_FAST_TUNING`` /
``_GENERIC_TUNING``: chosen from ``ptxas -v`` register counts on sm_90
(float32: no spills but 4 bytes in one d = 7 instance); ``benchmarks/gpu.py
--sweep`` measures the alternatives, ``lazy`` included, on a real device.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["lse_shift", "distance_sums", "CupyRuntime", "source_path", "column_splits", "instance_names"]

_SOURCE = Path(__file__).with_name("cuda") / "lse_shift.cu"
# C++17 for `if constexpr`.  No fast-math (the Kahan compensation must not be reassociated
# away); CuPy adds -ftz=true itself, harmless here (see the subnormal notes in the .cu).
_OPTIONS = ("-std=c++17",)

# d up to this uses the template-specialised kernels (point, displacements and sums in registers)
_FAST_MAX_D = 8
# the column index space is int32 in the kernels; keep a tile of headroom
_MAX_POINTS = 2**31 - 2**16
# float32 cost scale log2(e) / eps (x 1/2 for sqeuclidean) above which eps is refused: at
# 1e30 a squared distance of 3.4e8 (distance 1.8e4) already overflows a float32 logit
_MAX_FLOAT32_SCALE = 1e30
# a column range of a split covers at least this many tiles (the combine step stays small)
_MIN_TILES_PER_SPLIT = 4
_MAX_SPLITS = 64
_COMBINE_BLOCK = 128

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# logits are carried in base 2 in float32 (one ex2 per pair), natural base in float64
_LOG_SCALE = {np.dtype(np.float32): 1.0 / math.log(2.0), np.dtype(np.float64): 1.0}


def source_path() -> Path:
    """The kernel source file (what NVRTC, and the CPU emulation, compile)."""
    return _SOURCE


@dataclass(frozen=True)
class FastTuning:
    """Launch shape of ``lse_shift_fast``.

    ``rows`` per thread, ``k`` columns per register block, ``tile`` columns per
    shared-memory tile, ``block`` threads; ``lazy`` skips the per-pair maximum
    (exponentials against the current reference, a block redone exactly only
    if its sum exceeds 2^64; see ``cuda/lse_shift.cu``).
    """

    rows: int
    k: int
    tile: int = 256
    block: int = 128
    lazy: bool = False


@dataclass(frozen=True)
class GenericTuning:
    """Launch shape of ``lse_shift_generic``: columns per register block, coordinates per chunk and per launch, per tile, threads."""

    k: int
    slice: int
    tile: int = 256
    block: int = 128


# (dtype, d) -> shape.  ptxas -v on sm_90 (CUDA 13.0), all 2 x 2 x 2 x 2 flag sets: at
# most ~120 registers for float32 (d=2 sqeuclidean shift: 64, lse only: 39) and no
# spills except 4 bytes in one d=7 instance; float64 up to 168 registers, and
# ptxas trades a few tens of bytes of (L1-resident) spills in some instances.
# lazy=True (float32 only: float64 is exp-bound, the maximum is free there) saves
# the per-pair maximum, 11 instead of 12 instructions per pair at d=2 in PTX;
# measure it with benchmarks/gpu.py --sweep before making it the default.
_FAST_TUNING: dict[tuple[str, int], FastTuning] = {
    **{("float32", d): FastTuning(rows=1, k=16) for d in (1, 2, 3)},
    **{("float32", d): FastTuning(rows=1, k=8) for d in (4, 5, 6)},
    **{("float32", d): FastTuning(rows=1, k=4) for d in (7, 8)},
    **{("float64", d): FastTuning(rows=1, k=8) for d in (1, 2, 3)},
    **{("float64", d): FastTuning(rows=1, k=4) for d in (4, 5, 6, 7, 8)},
}
# dtype -> shape (ptxas: float32 up to 142 registers, float64 up to 255; 4-byte spills in
# the float32 lse-only and float64 shift instances; measured before x_i was chunked)
_GENERIC_TUNING: dict[str, GenericTuning] = {
    "float32": GenericTuning(k=4, slice=16),
    "float64": GenericTuning(k=4, slice=16),
}
_DISTANCE_TILE, _DISTANCE_BLOCK = 256, 128


def _b(flag: bool) -> str:
    return "true" if flag else "false"


@functools.cache
def _source() -> str:
    return _SOURCE.read_text()


class CupyRuntime:
    """The GPU: kernels compiled by NVRTC through CuPy ``RawModule``, CuPy arrays."""

    name = "cupy"

    def __init__(self):
        import cupy  # imported here: CuPy is optional

        self.xp = cupy

    def kernel(self, name: str):
        return _function(name, self.xp.cuda.Device().id)

    def ascontiguousarray(self, a, dtype):
        return self.xp.ascontiguousarray(a, dtype=dtype)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype)

    def sm_count(self) -> int:
        return _sm_count(self.xp.cuda.Device().id)


@functools.cache
def _function(name: str, device: int):
    """The compiled kernel ``name`` (a template name expression) on ``device``, compiled once."""
    import cupy

    module = cupy.RawModule(code=_source(), options=_OPTIONS, name_expressions=(name,))
    return module.get_function(name)


@functools.cache
def _sm_count(device: int) -> int:
    import cupy

    return int(cupy.cuda.runtime.getDeviceProperties(device)["multiProcessorCount"])


@functools.cache
def _cupy_runtime() -> CupyRuntime:
    return CupyRuntime()


def fast_name(dtype, d: int, sq: bool, exclude: bool, unit: bool, shift: bool, t: FastTuning) -> str:
    """Name expression of a ``lse_shift_fast`` instance."""
    return (
        f"wgf::lse_shift_fast<{_CTYPES[np.dtype(dtype)]}, {d}, {_b(sq)}, {_b(exclude)}, {_b(unit)}, {_b(shift)}, "
        f"{t.rows}, {t.k}, {t.tile}, {t.block}, {_b(t.lazy)}>"
    )


def generic_name(dtype, sq: bool, exclude: bool, unit: bool, shift: bool, t: GenericTuning) -> str:
    """Name expression of a ``lse_shift_generic`` instance."""
    return (
        f"wgf::lse_shift_generic<{_CTYPES[np.dtype(dtype)]}, {_b(sq)}, {_b(exclude)}, {_b(unit)}, {_b(shift)}, "
        f"{t.k}, {t.slice}, {t.tile}, {t.block}>"
    )


def combine_name(dtype, d: int, shift: bool) -> str:
    """Name expression of a ``lse_shift_combine`` instance (d = 0: run-time d)."""
    return f"wgf::lse_shift_combine<{_CTYPES[np.dtype(dtype)]}, {d}, {_b(shift)}>"


def distance_name(dtype, d: int) -> str:
    """Name expression of a ``distance_sums_kernel`` instance (d = 0: run-time d)."""
    return f"wgf::distance_sums_kernel<{_CTYPES[np.dtype(dtype)]}, {d}, {_DISTANCE_TILE}, {_DISTANCE_BLOCK}>"


def instance_names(dtype, d: int) -> list[str]:
    """Every kernel instance a call with ``dtype`` points in R^d can launch (all flag sets)."""
    dtype = _compute_dtype(dtype)
    names = []
    flags = [(sq, ex, un, sh) for sq in (True, False) for ex in (False, True) for un in (False, True) for sh in (False, True)]
    for sq, ex, un, sh in flags:
        if un and not sh:
            continue  # unit only changes the shift
        if 1 <= d <= _FAST_MAX_D:
            names.append(fast_name(dtype, d, sq, ex, un, sh, _FAST_TUNING[(dtype.name, d)]))
        else:
            names.append(generic_name(dtype, sq, ex, un, sh, _GENERIC_TUNING[dtype.name]))
    if 1 <= d <= _FAST_MAX_D:
        names += [combine_name(dtype, d, sh) for sh in (False, True)]
    names.append(distance_name(dtype, d if d <= _FAST_MAX_D else 0))
    return names


def _compute_dtype(dtype) -> np.dtype:
    # float32 stays float32 (bandwidth- and exp-bound kernels); anything else runs in float64
    return np.dtype(np.float32) if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float16)) else np.dtype(np.float64)


def _out_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _check_sizes(n: int, m: int) -> None:
    if n > _MAX_POINTS or m > _MAX_POINTS:
        raise ValueError(f"x and y: at most {_MAX_POINTS} points each on the GPU (int32 indices), got {n} and {m}")


def column_splits(blocks: int, m: int, tile: int, sm_count: int) -> int:
    """Column ranges per row block: enough blocks for two per multiprocessor, each range >= 4 tiles.

    ``blocks`` row blocks alone fill ``blocks / sm_count`` of the device
    (79 of an H100's 132 SMs at N = 1e4, 2 at N = 256); splitting the M
    columns in ``s`` ranges gives ``s * blocks`` blocks for one extra pass over
    ``s * N`` partial triples.
    """
    want = 2 * sm_count
    if blocks >= want:
        return 1
    by_columns = -(-m // tile) // _MIN_TILES_PER_SPLIT
    return int(max(1, min(-(-want // blocks), by_columns, _MAX_SPLITS)))


def lse_shift(x, y, g, eps, cost="sqeuclidean", exclude_diagonal=False, unit=False, with_shift=True, *, runtime=None, splits=None):
    """CUDA implementation of :func:`wgfsim.primitives.lse_shift` (runtime arrays in and out).

    Returns ``lse`` (N,) and ``shift`` (N, d) (``None`` unless ``with_shift``),
    in x's dtype.  Arguments are validated by the caller (``primitives._check``).
    ``runtime``: :class:`CupyRuntime` (default) or another kernel runtime;
    ``splits``: column ranges of the fast kernel (default :func:`column_splits`).
    """
    rt = _cupy_runtime() if runtime is None else runtime
    out_dtype = _out_dtype(x.dtype)
    dtype = _compute_dtype(x.dtype)
    n, d = x.shape
    m = y.shape[0]
    _check_sizes(n, m)
    sq = cost == "sqeuclidean"
    unit = bool(unit) and bool(with_shift)  # unit only changes the shift
    # logit_ij (scaled base) = scale*g_j - c * core_ij, core = |v|^2 (sq) or |v|
    with np.errstate(over="ignore"):
        c = dtype.type(_LOG_SCALE[dtype] * (0.5 if sq else 1.0) / float(eps))
    if not math.isfinite(float(c)) or (dtype == np.float32 and float(c) > _MAX_FLOAT32_SCALE):
        raise ValueError(f"eps: {eps!r} is too small for {dtype.name} logits (the cost scale 1/eps overflows them); use float64 arrays")
    x = rt.ascontiguousarray(x, dtype)  # (N, d)
    y = rt.ascontiguousarray(y, dtype)  # (M, d)
    g = rt.zeros((m,), dtype) if g is None else rt.ascontiguousarray(g, dtype)  # (M,)
    lse = rt.empty((n,), dtype)  # (N,)
    shift = rt.empty((n, d), dtype) if with_shift else None  # (N, d)
    shift_arg = shift if with_shift else lse  # never written when with_shift is False
    excl = bool(exclude_diagonal)
    if 1 <= d <= _FAST_MAX_D:
        t = _FAST_TUNING[(dtype.name, d)]
        fn = rt.kernel(fast_name(dtype, d, sq, excl, unit, bool(with_shift), t))
        blocks = -(-n // (t.block * t.rows))
        s = column_splits(blocks, m, t.tile, rt.sm_count()) if splits is None else int(splits)
        part = rt.empty((s, n, 2 + d), dtype) if s > 1 else lse  # (splits, N, 2 + d) partial triples
        fn((blocks, s), (t.block,), (x, y, g, np.int32(n), np.int32(m), c, lse, shift_arg, part))
        if s > 1:
            combine = rt.kernel(combine_name(dtype, d, bool(with_shift)))
            combine((-(-n // _COMBINE_BLOCK),), (_COMBINE_BLOCK,), (part, np.int32(n), np.int32(s), np.int32(d), lse, shift_arg))
    else:
        # d > _FAST_MAX_D, or d = 0 (every cost 0: one launch, no coordinate to sum)
        t = _GENERIC_TUNING[dtype.name]
        fn = rt.kernel(generic_name(dtype, sq, excl, unit, bool(with_shift), t))
        blocks = -(-n // t.block)
        # one launch per slice of `t.slice` coordinates of the shift; lse needs only one
        for k0 in range(0, d, t.slice) if (with_shift and d > 0) else (0,):
            ds = min(t.slice, d - k0) if with_shift else 0
            fn((blocks,), (t.block,), (x, y, g, np.int32(n), np.int32(m), np.int32(d), np.int32(k0), np.int32(ds), c, lse, shift_arg))
    lse = lse.astype(out_dtype, copy=False)
    return lse, (shift.astype(out_dtype, copy=False) if with_shift else None)


def distance_sums(x, y, exclude_diagonal=False, *, runtime=None):
    """CUDA row sums ``sum_j |x_i - y_j|`` (N,), x's dtype; the diagonal terms are 0 anyway."""
    rt = _cupy_runtime() if runtime is None else runtime
    out_dtype = _out_dtype(x.dtype)
    dtype = _compute_dtype(x.dtype)
    n, d = x.shape
    m = y.shape[0]
    _check_sizes(n, m)
    x = rt.ascontiguousarray(x, dtype)  # (N, d)
    y = rt.ascontiguousarray(y, dtype)  # (M, d)
    out = rt.empty((n,), dtype)  # (N,)
    fn = rt.kernel(distance_name(dtype, d if d <= _FAST_MAX_D else 0))
    fn((-(-n // _DISTANCE_BLOCK),), (_DISTANCE_BLOCK,), (x, y, np.int32(n), np.int32(m), np.int32(d), out))
    return out.astype(out_dtype, copy=False)
