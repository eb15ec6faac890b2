"""Fused Numba CPU kernel for the log-sum-exp / barycentre reduction.

One pass over the columns per row, in blocks of ``_BLOCK`` columns: the
block's logits go to a small per-thread buffer, the running maximum is raised
to the block maximum (rescaling the accumulators once per block, the
FlashAttention trick), then ``exp(logit - max)`` is accumulated.  Memory is
O(N + M): nothing of size N x M is ever formed.  Rows run in parallel
(``prange``); float32 and float64 inputs both accumulate in float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["lse_shift"]

_BLOCK = 256
# exp(-700) ~ 1e-304: below that a term cannot change a float64 sum whose largest term is 1
_EXP_FLOOR = -700.0
# fastmath without 'nnan'/'ninf': -inf is the sentinel of an empty maximum and of masked pairs
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(inline="always", fastmath=_FAST)
def _exp_nonpositive(t):
    """exp(t) for t <= 0, vectorisable: Cody-Waite reduction and a degree-13 polynomial.

    LLVM cannot vectorise calls to libm's exp without a vector math library;
    this branch-free version lets the whole block loop vectorise.
    """
    t = max(t, _EXP_FLOOR)
    n = math.floor(t * 1.4426950408889634 + 0.5)
    r = t - n * 0.6931471803691238 - n * 1.9082149292705877e-10
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p, n


@numba.njit(inline="always", fastmath=_FAST)
def _row(i, x, yT, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out):
    """Reduce row i over all columns (the body shared by the parallel and serial drivers)."""
    d = x.shape[1]
    m = yT.shape[1]
    # every inner loop runs over the block's columns with stride 1, so LLVM
    # vectorises it whatever d is
    logit = np.empty(_BLOCK, dtype=np.float64)  # (B,) logits, then weights
    aux = np.empty(_BLOCK, dtype=np.float64)  # (B,) squared distances, then 1/|y - x|
    bits = np.empty(_BLOCK, dtype=np.int64)  # (B,) bits of the power-of-two factors
    pow2 = bits.view(np.float64)  # (B,) the same bits read as 2^n
    acc = np.zeros(d, dtype=np.float64)  # (d,)
    mx = -np.inf
    s = 0.0
    for jb in range(0, m, _BLOCK):
        nb = min(_BLOCK, m - jb)
        # pass 1: squared distances, logits and their maximum
        for jj in range(nb):
            aux[jj] = 0.0
        # 1-D views indexed by the loop counter alone: numba then emits no negative-index
        # wraparound, which would otherwise stop LLVM from vectorising these loops
        gb = g[jb:jb + nb]
        for k in range(d):
            xik = np.float64(x[i, k])
            yk = yT[k, jb:jb + nb]
            for jj in range(nb):
                t = yk[jj] - xik
                aux[jj] += t * t
        if sqeuclidean:
            for jj in range(nb):
                logit[jj] = gb[jj] - 0.5 * aux[jj] * inv_eps
        else:
            for jj in range(nb):
                logit[jj] = gb[jj] - math.sqrt(aux[jj]) * inv_eps
        diag = i - jb if (exclude_diagonal and jb <= i < jb + nb) else -1
        if diag >= 0:
            logit[diag] = -np.inf
        # the running maximum rarely grows after the first blocks: count the logits above it
        # (an integer reduction, which vectorises where a NaN-aware float max does not) and
        # only then take the block maximum
        above = 0
        for jj in range(nb):
            above += logit[jj] > mx
        if above == 0:
            bmax = mx
        else:
            bmax = -np.inf
            for jj in range(nb):
                if logit[jj] > bmax:
                    bmax = logit[jj]
        if bmax == -np.inf:
            continue
        if bmax > mx:
            # raise the running maximum once per block and rescale what was summed
            r = math.exp(mx - bmax) if mx > -np.inf else 0.0
            s *= r
            for k in range(d):
                acc[k] *= r
            mx = bmax
        # pass 2: weights exp(logit - max), one exp per pair
        for jj in range(nb):
            p, e = _exp_nonpositive(logit[jj] - mx)
            logit[jj] = p
            bits[jj] = (np.int64(e) + 1023) << 52
        if diag >= 0:
            bits[diag] = 0  # an exact zero weight, not exp(floor)
        bsum = 0.0
        for jj in range(nb):
            w = logit[jj] * pow2[jj]
            logit[jj] = w
            bsum += w
        s += bsum
        if not with_shift:
            continue
        # pass 3: weighted displacements y_j - x_i (or their unit vectors)
        if unit:
            for jj in range(nb):
                nrm = math.sqrt(aux[jj])
                aux[jj] = 1.0 / nrm if nrm > 0.0 else 0.0
            for jj in range(nb):
                logit[jj] *= aux[jj]
        for k in range(d):
            xik = np.float64(x[i, k])
            yk = yT[k, jb:jb + nb]
            a = 0.0
            for jj in range(nb):
                a += logit[jj] * (yk[jj] - xik)
            acc[k] += a
    if s > 0.0:
        lse_out[i] = mx + math.log(s)
        if with_shift:
            for k in range(d):
                shift_out[i, k] = acc[k] / s
    else:
        lse_out[i] = -np.inf
        if with_shift:
            for k in range(d):
                shift_out[i, k] = 0.0



@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def _kernel_parallel(x, yT, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out):
    for i in numba.prange(x.shape[0]):
        _row(i, x, yT, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out)


@numba.njit(fastmath=_FAST, cache=True)
def _kernel_serial(x, yT, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out):
    for i in range(x.shape[0]):
        _row(i, x, yT, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out)


# below this many pairs the threads' start-up costs more than the work (Sinkhorn on small N calls
# the kernel hundreds of times a step)
PARALLEL_MIN_PAIRS = 1 << 17

def lse_shift(x, y, g, eps, cost="sqeuclidean", exclude_diagonal=False, unit=False, with_shift=True):
    """Numba implementation of :func:`wgfsim.primitives.lse_shift` (NumPy in, NumPy out)."""
    dtype = x.dtype
    n, d = x.shape
    m = y.shape[0]
    x = np.ascontiguousarray(x)
    yT = np.ascontiguousarray(y.T)  # (d, M): each coordinate contiguous over columns
    g = np.zeros(m, dtype=np.float64) if g is None else np.ascontiguousarray(g, dtype=np.float64)
    lse = np.empty(n, dtype=np.float64)
    shift = np.empty((n, d), dtype=np.float64) if with_shift else np.empty((0, d), dtype=np.float64)
    kernel = _kernel_parallel if n * m >= PARALLEL_MIN_PAIRS else _kernel_serial
    kernel(x, yT, g, 1.0 / float(eps), cost == "sqeuclidean", bool(exclude_diagonal), bool(unit), bool(with_shift), lse, shift)
    return lse.astype(dtype, copy=False), (shift.astype(dtype, copy=False) if with_shift else None)


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def _distance_sums_kernel(x, yT, out):
    n, d = x.shape
    m = yT.shape[1]
    for i in numba.prange(n):
        s = 0.0
        for j in range(m):
            d2 = 0.0
            for k in range(d):
                t = yT[k, j] - x[i, k]
                d2 += t * t
            s += math.sqrt(d2)
        out[i] = s


def distance_sums(x, y, exclude_diagonal=False):
    """Numba row sums ``sum_j |x_i - y_j|`` (N,), O(N + M) memory."""
    out = np.empty(x.shape[0], dtype=np.float64)
    _distance_sums_kernel(np.ascontiguousarray(x), np.ascontiguousarray(y.T), out)
    return out.astype(x.dtype, copy=False)
