"""Fused Numba CPU kernel for the log-sum-exp / barycentre reduction (docs/math.md#primitive).

For each row ``i`` the columns are visited in blocks of at most ``BLOCK``.
Per block, two passes over a small per-thread buffer:

1. distances, logits ``l_ij = g_j - c(x_i, y_j)/eps`` and a count of the
   logits above the running maximum (an integer reduction, which vectorises);
   only if that count is non-zero is the block maximum taken and the
   accumulators rescaled (once per block, the FlashAttention trick);
2. the weights ``w_ij = exp(l_ij - max)``, their sum and, for d <= 3, the
   weighted displacements ``sum_j w_ij (y_j - x_i)`` in the same loop.

Memory is O(N + M): nothing of size N x M is ever formed.  Rows run in
parallel (``prange``).

Precision: float64 inputs compute in float64.  float32 inputs compute the
distances, logits and weights in float32 (8 lanes on AVX2, 16 on AVX-512);
each block's partial sums (at most ``BLOCK`` terms, all in [0, 1]) are
float32 and are added into float64 per-row accumulators, so the rounding
error stays that of a 256-term float32 sum, ~1e-6 relative at worst.

The exponential is a branch-free polynomial whose power of two is built with
integer arithmetic from the bits of ``t log2(e) + 1.5 * 2^52`` (the
magic-number rounding), so no float <-> integer conversion instruction is
needed: AVX2 has no packed float64 <-> int64 conversion, and the scalar
ones stopped the weight loop from vectorising.

The block routine :func:`block_update` is shared with the block-sparse
driver of :mod:`wgfsim.primitives.prune`, which visits only the column blocks
that can matter.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

__all__ = ["lse_shift_dense", "distance_sums", "BLOCK", "block_update", "empty_state", "finish_row", "nan_rows", "as_inputs"]

BLOCK = 256
# fastmath without 'nnan'/'ninf': -inf is the sentinel of an empty maximum and of masked pairs
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
# the exponential's own flags: no 'reassoc', which would fold (a + magic) - magic into a
_EXP_FAST = {"nsz", "contract"}


@intrinsic
def _pow2_from_magic(typingctx, kf):
    """``2^n`` from ``kf = 1.5 * 2^p + n`` (p = 52 for float64, 23 for float32), by integer ops only.

    The bits of ``kf`` are those of ``1.5 * 2^p`` plus ``n``; adding the
    exponent bias and shifting left by ``p`` leaves ``n + bias`` in the
    exponent field (the high bits of ``1.5 * 2^p`` are shifted out).
    """
    if kf == types.float64:
        width, bias, shift = 64, 1023, 52
    elif kf == types.float32:
        width, bias, shift = 32, 127, 23
    else:
        return None

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        bits = builder.bitcast(args[0], ity)
        bits = builder.shl(builder.add(bits, ir.Constant(ity, bias)), ir.Constant(ity, shift))
        return builder.bitcast(bits, args[0].type)

    return kf(kf), codegen


def exp_weight(t):
    """``exp(t)`` for ``t <= 0`` (exactly 0 below the underflow floor and for ``-inf``)."""
    raise NotImplementedError  # replaced by the typed overloads below inside jitted code


@overload(exp_weight, jit_options={"fastmath": _EXP_FAST})
def _exp_weight_overload(t):
    if t == types.float64:
        # exp(-700) ~ 1e-304: below that a term cannot change a float64 sum whose largest term is 1
        floor, log2e, magic = -700.0, 1.4426950408889634, 6755399441055744.0
        ln2_hi, ln2_lo = 0.6931471803691238, 1.9082149292705877e-10

        def impl(t):
            tc = t if t > floor else floor
            kf = tc * log2e + magic
            n = kf - magic  # round(tc / ln 2), exactly, by the addition's rounding
            r = tc - n * ln2_hi - n * ln2_lo  # Cody-Waite: |r| <= ln(2)/2
            # Taylor polynomial of degree 13: truncation error below 1e-17 on |r| <= ln(2)/2
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
            w = p * _pow2_from_magic(kf)
            return w if t > floor else 0.0

        return impl
    if t == types.float32:
        # exp(-87) ~ 1.6e-38, the smallest normal float32 power of two the construction allows
        floor, log2e, magic = np.float32(-87.0), np.float32(1.4426950408889634), np.float32(12582912.0)
        ln2_hi, ln2_lo = np.float32(0.693359375), np.float32(-2.12194440e-4)
        c0, c1, c2, c3, c4, c5, c6, c7 = (np.float32(1.0 / math.factorial(k)) for k in range(8))
        zero = np.float32(0.0)

        def impl(t):
            tc = t if t > floor else floor
            kf = tc * log2e + magic
            n = kf - magic
            r = tc - n * ln2_hi - n * ln2_lo
            # Taylor polynomial of degree 7: truncation error ~5e-9, below float32 rounding
            p = c7
            p = p * r + c6
            p = p * r + c5
            p = p * r + c4
            p = p * r + c3
            p = p * r + c2
            p = p * r + c1
            p = p * r + c0
            w = p * _pow2_from_magic(kf)
            return w if t > floor else zero

        return impl
    return None


def like(ref, value):
    """``value`` as a scalar of ``ref``'s floating type (constants must not promote float32 to float64)."""
    raise NotImplementedError


@overload(like)
def _like_overload(ref, value):
    if ref == types.float32:
        return lambda ref, value: np.float32(value)
    if ref == types.float64:
        return lambda ref, value: np.float64(value)
    return None


@numba.njit(inline="always", fastmath=_FAST)
def empty_state(x0):
    """Running state of one row: (maximum, sum, a0, a1, a2); the maximum in the compute type."""
    return like(x0, -np.inf), 0.0, 0.0, 0.0, 0.0


@numba.njit(inline="always", fastmath=_FAST)
def block_update(i, x, ys, g, jb, je, inv_eps, sqeuclidean, diag, unit, with_shift, state, acc, logit, aux):
    """Fold columns ``jb <= j < je`` into row ``i``'s running state (see the module docstring).

    x (N, d); ys: tuple of d contiguous (M,) coordinate arrays; g (M,);
    ``diag`` the column to mask (-1 for none); ``acc`` (d,) float64, used for
    d > 3 only; ``logit`` and ``aux`` (>= je - jb,) buffers of the compute type.
    Returns the new state (mx, s, a0, a1, a2).
    """
    mx, s, a0, a1, a2 = state
    D = len(ys)
    nb = je - jb
    # 1-D views indexed by the loop counter alone: numba then emits no negative-index
    # wraparound, which would otherwise stop LLVM from vectorising these loops
    gb = g[jb:je]
    y0 = ys[0][jb:je]
    y1 = ys[min(1, D - 1)][jb:je]
    y2 = ys[min(2, D - 1)][jb:je]
    x0 = x[i, 0]
    x1 = x[i, min(1, D - 1)]
    x2 = x[i, min(2, D - 1)]
    half_inv_eps = like(x0, 0.5) * inv_eps
    zero = like(x0, 0.0)
    # pass 1: squared distances, logits, and how many logits exceed the running maximum
    if D <= 3:
        for jj in range(nb):
            t = y0[jj] - x0
            d2 = t * t
            if D >= 2:
                t = y1[jj] - x1
                d2 += t * t
            if D >= 3:
                t = y2[jj] - x2
                d2 += t * t
            aux[jj] = d2
    else:
        for jj in range(nb):
            aux[jj] = zero
        for k in range(D):
            yk = ys[k][jb:je]
            xk = x[i, k]
            for jj in range(nb):
                t = yk[jj] - xk
                aux[jj] += t * t
    above = 0
    if sqeuclidean:
        for jj in range(nb):
            lg = gb[jj] - aux[jj] * half_inv_eps
            logit[jj] = lg
            above += lg > mx
    else:
        for jj in range(nb):
            lg = gb[jj] - math.sqrt(aux[jj]) * inv_eps
            logit[jj] = lg
            above += lg > mx
    if jb <= diag < je:
        dj = np.int64(diag) - np.int64(jb)
        above -= logit[dj] > mx
        logit[dj] = -np.inf
    if above > 0:
        bmax = mx
        for jj in range(nb):
            if logit[jj] > bmax:
                bmax = logit[jj]
        # raise the running maximum once per block and rescale what was summed
        r = math.exp(np.float64(mx) - np.float64(bmax))  # 0 when mx = -inf
        s *= r
        a0 *= r
        a1 *= r
        a2 *= r
        if D > 3:
            for k in range(D):
                acc[k] *= r
        mx = bmax
    if mx == -np.inf:
        return mx, s, a0, a1, a2
    # pass 2: weights exp(logit - max), their sum and the weighted displacements
    bs = zero
    b0 = zero
    b1 = zero
    b2 = zero
    if not with_shift:
        for jj in range(nb):
            bs += exp_weight(logit[jj] - mx)
    elif D <= 3 and not unit:
        for jj in range(nb):
            w = exp_weight(logit[jj] - mx)
            bs += w
            b0 += w * (y0[jj] - x0)
            if D >= 2:
                b1 += w * (y1[jj] - x1)
            if D >= 3:
                b2 += w * (y2[jj] - x2)
    elif D <= 3:
        for jj in range(nb):
            w = exp_weight(logit[jj] - mx)
            bs += w
            d2 = aux[jj]
            # unit displacements (y_j - x_i)/|y_j - x_i|, zero for coincident points
            u = w / math.sqrt(d2) if d2 > zero else zero
            b0 += u * (y0[jj] - x0)
            if D >= 2:
                b1 += u * (y1[jj] - x1)
            if D >= 3:
                b2 += u * (y2[jj] - x2)
    else:
        for jj in range(nb):
            w = exp_weight(logit[jj] - mx)
            bs += w
            if unit:
                d2 = aux[jj]
                w = w / math.sqrt(d2) if d2 > zero else zero
            logit[jj] = w
        for k in range(D):
            yk = ys[k][jb:je]
            xk = x[i, k]
            a = zero
            for jj in range(nb):
                a += logit[jj] * (yk[jj] - xk)
            acc[k] += np.float64(a)
    s += np.float64(bs)
    a0 += np.float64(b0)
    a1 += np.float64(b1)
    a2 += np.float64(b2)
    return mx, s, a0, a1, a2


@numba.njit(inline="always", fastmath=_FAST)
def finish_row(i, state, acc, with_shift, lse_out, shift_out):
    """Write ``lse_i = max + log(sum)`` and ``shift_i = acc / sum`` (-inf and 0 for an empty row)."""
    mx, s, a0, a1, a2 = state
    D = shift_out.shape[1]
    if s > 0.0:
        lse_out[i] = np.float64(mx) + math.log(s)
        if with_shift:
            if D <= 3:
                shift_out[i, 0] = a0 / s
                if D >= 2:
                    shift_out[i, 1] = a1 / s
                if D >= 3:
                    shift_out[i, 2] = a2 / s
            else:
                for k in range(D):
                    shift_out[i, k] = acc[k] / s
    else:
        lse_out[i] = -np.inf
        if with_shift:
            for k in range(D):
                shift_out[i, k] = 0.0


@numba.njit(inline="always", fastmath=_FAST)
def _row(i, x, ys, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out):
    """Reduce row i over all columns, block after block (shared by the parallel and serial drivers)."""
    m = g.shape[0]
    logit = np.empty(BLOCK, dtype=x.dtype)
    aux = np.empty(BLOCK, dtype=x.dtype)
    acc = np.zeros(x.shape[1], dtype=np.float64)
    state = empty_state(x[i, 0])
    diag = np.int64(i) if exclude_diagonal else np.int64(-1)
    for jb in range(0, m, BLOCK):
        state = block_update(i, x, ys, g, jb, min(jb + BLOCK, m), inv_eps, sqeuclidean, diag, unit, with_shift,
                             state, acc, logit, aux)
    finish_row(i, state, acc, with_shift, lse_out, shift_out)


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def _kernel_parallel(x, ys, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out):
    for i in numba.prange(x.shape[0]):
        _row(i, x, ys, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out)


@numba.njit(fastmath=_FAST, cache=True)
def _kernel_serial(x, ys, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out):
    for i in range(x.shape[0]):
        _row(i, x, ys, g, inv_eps, sqeuclidean, exclude_diagonal, unit, with_shift, lse_out, shift_out)


# below this many pairs the threads' start-up costs more than the work (Sinkhorn on small N calls
# the kernel hundreds of times a step)
PARALLEL_MIN_PAIRS = 1 << 17


def as_inputs(x, y, g, eps):
    """Kernel inputs: x (N, d) contiguous, ys (tuple of d contiguous (M,) columns), g (M,), 1/eps,
    all in the compute type (float32 for float32 inputs, float64 otherwise)."""
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    x = np.ascontiguousarray(x, dtype=dtype)
    yT = np.ascontiguousarray(np.asarray(y, dtype=dtype).T)  # (d, M): each coordinate contiguous
    ys = tuple(yT[k] for k in range(yT.shape[0]))
    m = yT.shape[1]
    g = np.zeros(m, dtype=dtype) if g is None else np.ascontiguousarray(g, dtype=dtype)
    return x, ys, g, dtype(1.0 / float(eps))


def nan_rows(x, y, g, lse, shift):
    """Rows whose reduction involves a NaN become NaN rows (a NaN column, in y or g, spoils every row).

    Checked here in O((N + M) d) instead of inside the pair loop, which then needs no NaN test.
    """
    if np.isnan(y).any() or (g is not None and np.isnan(g).any()):
        lse[:] = np.nan
        if shift is not None:
            shift[:] = np.nan
        return
    bad = np.isnan(x).any(axis=1)
    if bad.any():
        lse[bad] = np.nan
        if shift is not None:
            shift[bad] = np.nan


def lse_shift_dense(x, y, g, eps, cost="sqeuclidean", exclude_diagonal=False, unit=False, with_shift=True):
    """Every pair, row by row (the dense-pair kernel; NumPy in, NumPy out)."""
    dtype = x.dtype
    n, d = x.shape
    m = y.shape[0]
    if d == 0:
        # points of R^0: every distance is 0; one zero coordinate gives the same reduction
        lse, _ = lse_shift_dense(np.zeros((n, 1), dtype), np.zeros((m, 1), dtype), g, eps, cost, exclude_diagonal, False, False)
        return lse, (np.zeros((n, 0), dtype) if with_shift else None)
    xc, ys, gc, inv_eps = as_inputs(x, y, g, eps)
    lse = np.empty(n, dtype=xc.dtype)
    shift = np.empty((n, d), dtype=xc.dtype) if with_shift else np.empty((0, d), dtype=xc.dtype)
    kernel = _kernel_parallel if n * m >= PARALLEL_MIN_PAIRS else _kernel_serial
    kernel(xc, ys, gc, inv_eps, cost == "sqeuclidean", bool(exclude_diagonal), bool(unit), bool(with_shift), lse, shift)
    nan_rows(x, y, g, lse, shift if with_shift else None)
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
