"""Block-sparse log-sum-exp / barycentre reduction: skip the pairs that cannot matter (docs/math.md#primitive).

At small ``eps`` almost every weight ``exp(g_j - c(x_i, y_j)/eps)`` of a row is
below rounding relative to the row's largest one.  Both point sets are cut
into blocks by a k-d split (along the widest coordinate, at a median): rows
into blocks of ``ROW_LEAF`` points with their bounding boxes, columns into
blocks of ``COL_LEAF``.  For a row block ``A`` and a column block ``B``::

    U(A, B) = max_{j in B} ( g_j - c(box_A, y_j) / eps )

with ``c(box_A, y_j)`` the least cost from ``y_j`` to the box of ``A``, bounds
every logit of the block pair from above (the offsets enter point by point,
so Sinkhorn potentials that vary inside a block loosen nothing).  Row ``i``
of ``A`` visits the column blocks in decreasing order of ``U`` and stops at
the first one with::

    U(A, B) < m_i - log(M / tol)

where ``m_i`` is its running maximum logit: every pair left has a weight
below ``tol / M`` of the row's largest, so together they carry less than
``tol`` of the row's sum.  The result equals the dense reduction up to a
relative ``tol`` in that sum (``~tol`` absolute in ``lse``, ``~tol`` times the
largest displacement in the shift).  ``tol = 0`` turns pruning off.

Cost: the bounds take one pass over the columns per row block (1/ROW_LEAF of
the dense work); memory is O(N + M) (one row block's bounds per thread; the
trees of the last few point sets are kept, keyed by content, since Sinkhorn
reduces over the same points hundreds of times with new offsets).
The dense-pair kernel of :mod:`wgfsim.primitives.cpu` runs instead when
pruning cannot save much: small problems, a span of logits below the
threshold, a forecast (the share of pairs near their row maximum on a few
sampled rows, then the block rule for the centres of a few sampled row
blocks) above ``DENSE_ABOVE``; and for non-finite inputs, whose NaN rows it produces.
"""

from __future__ import annotations

import hashlib
import math
import os

import numba
import numpy as np

from . import cpu
from . import current_prune_tol

__all__ = ["lse_shift", "distance_sums", "kd_blocks", "PRUNES"]

# the numba backend's kernels module (wgfsim.backend): the pruned reduction here, the distance sums of cpu.py;
# PRUNES tells wgfsim.primitives to pass the run's tolerance (wgfsim.primitives.current_prune_tol)
PRUNES = True
distance_sums = cpu.distance_sums
# points per block: smaller blocks bound more tightly, larger ones cost less per visit
# (rows only set the bound's box, so they can be finer than the columns)
ROW_LEAF = 32
COL_LEAF = 64
# rows, then row blocks, sampled by the forecasts that decide between pruned and dense
SAMPLED_ROWS = 32
ESTIMATE_BLOCKS = 32
# below this many pairs the tree costs more than it can save (WGFSIM_PRUNE_MIN_PAIRS overrides it,
# e.g. 0 to run a test suite's small problems through the pruned path)
MIN_PAIRS = int(os.environ.get("WGFSIM_PRUNE_MIN_PAIRS", 1 << 18))
# prune only if the static estimate keeps at most this fraction of the pairs
DENSE_ABOVE = 0.6

_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(cache=True)
def kd_blocks(x, leaf):
    """Order the points of x (N, d) into blocks of ``leaf`` (the last may be shorter) by a k-d split.

    Returns ``perm`` (N,) (block order: point ``perm[k]`` goes to position k),
    ``starts`` (B + 1,) block boundaries, ``lo``, ``hi`` (B, d) the blocks' boxes.
    Each split cuts the widest coordinate of a range at a multiple of ``leaf``
    nearest its median, so every block but the last is full.
    """
    n, d = x.shape
    perm = np.arange(n)
    nblocks = (n + leaf - 1) // leaf
    starts = np.empty(nblocks + 1, dtype=np.int64)
    stack_lo = np.empty(2 * nblocks + 64, dtype=np.int64)
    stack_hi = np.empty(2 * nblocks + 64, dtype=np.int64)
    top = 0
    stack_lo[0], stack_hi[0] = 0, n
    top = 1
    nb = 0
    while top > 0:
        top -= 1
        a, b = stack_lo[top], stack_hi[top]
        if b - a <= leaf:
            starts[nb] = a
            nb += 1
            continue
        widest, width = 0, -1.0
        for k in range(d):
            mn, mx = np.inf, -np.inf
            for q in range(a, b):
                v = x[perm[q], k]
                mn = min(mn, v)
                mx = max(mx, v)
            if mx - mn > width:
                widest, width = k, mx - mn
        keys = np.empty(b - a)
        for q in range(a, b):
            keys[q - a] = x[perm[q], widest]
        perm[a:b] = perm[a:b][np.argsort(keys)]
        half_blocks = ((b - a + leaf - 1) // leaf + 1) // 2
        mid = a + half_blocks * leaf
        # depth first, left range on top: blocks come out left to right
        stack_lo[top], stack_hi[top] = mid, b
        stack_lo[top + 1], stack_hi[top + 1] = a, mid
        top += 2
    starts[nb] = n
    lo = np.empty((nb, d), dtype=x.dtype)
    hi = np.empty((nb, d), dtype=x.dtype)
    for q in range(nb):
        for k in range(d):
            mn, mx = np.inf, -np.inf
            for r in range(starts[q], starts[q + 1]):
                v = x[perm[r], k]
                mn = min(mn, v)
                mx = max(mx, v)
            lo[q, k] = mn
            hi[q, k] = mx
    return perm, starts, lo, hi


# the bounds' max-reductions vectorise only without NaNs, which lse_shift rules out before they run
_BOUND_FAST = {"nnan", "nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(inline="always", fastmath=_BOUND_FAST)
def _row_block_bounds(a, rlo, rhi, ys, g, cstarts, inv_eps, sqeuclidean, ub):
    """Bounds for row block ``a`` against every column block ``b``, one pass over the columns.

    ``ub[b] = max_{j in b} (g_j - c(box_a, y_j)/eps)`` with ``c(box_a, y_j)``
    the least cost from ``y_j`` to the box of the rows: every logit of the
    block pair is below it.  Returns ``L_a = max_j (g_j - c(z_a, y_j)/eps)``,
    the maximum logit of the box's centre ``z_a``: what a typical row of the
    block reaches (a forecast, not a bound).  The offsets enter point by point,
    so potentials that vary within a column block loosen nothing.
    """
    D = len(ys)
    lo0, hi0 = np.float64(rlo[a, 0]), np.float64(rhi[a, 0])
    lo1, hi1 = np.float64(rlo[a, min(1, D - 1)]), np.float64(rhi[a, min(1, D - 1)])
    lo2, hi2 = np.float64(rlo[a, min(2, D - 1)]), np.float64(rhi[a, min(2, D - 1)])
    low = -np.inf
    for b in range(cstarts.shape[0] - 1):
        jb, je = cstarts[b], cstarts[b + 1]
        gb = g[jb:je]
        y0 = ys[0][jb:je]
        y1 = ys[min(1, D - 1)][jb:je]
        y2 = ys[min(2, D - 1)][jb:je]
        best = -np.inf
        for jj in range(je - jb):
            near2 = 0.0
            far2 = 0.0
            if D <= 3:
                v = np.float64(y0[jj])
                t = max(max(lo0 - v, v - hi0), 0.0)
                near2 += t * t
                t = v - 0.5 * (lo0 + hi0)
                far2 += t * t
                if D >= 2:
                    v = np.float64(y1[jj])
                    t = max(max(lo1 - v, v - hi1), 0.0)
                    near2 += t * t
                    t = v - 0.5 * (lo1 + hi1)
                    far2 += t * t
                if D >= 3:
                    v = np.float64(y2[jj])
                    t = max(max(lo2 - v, v - hi2), 0.0)
                    near2 += t * t
                    t = v - 0.5 * (lo2 + hi2)
                    far2 += t * t
            else:
                for k in range(D):
                    v = np.float64(ys[k][jb + jj])
                    t = max(max(rlo[a, k] - v, v - rhi[a, k]), 0.0)
                    near2 += t * t
                    t = v - 0.5 * (rlo[a, k] + rhi[a, k])
                    far2 += t * t
            gj = np.float64(gb[jj])
            if sqeuclidean:
                best = max(best, gj - 0.5 * near2 * inv_eps)
                low = max(low, gj - 0.5 * far2 * inv_eps)
            else:
                best = max(best, gj - math.sqrt(near2) * inv_eps)
                low = max(low, gj - math.sqrt(far2) * inv_eps)
        ub[b] = best
    return low


@numba.njit(fastmath=_FAST, cache=True)
def _kept_estimate(ys, g, rstarts, rlo, rhi, cstarts, inv_eps, sqeuclidean, thr, every):
    """Pairs that the rule ``ub[b] >= L_a - thr`` keeps, over every ``every``-th row block, and the rows seen.

    A forecast of the pruned work (``L_a`` is the block centre's maximum logit)
    at a cost of 1/(ROW_LEAF * every) of the dense work.
    """
    na, nb = rlo.shape[0], cstarts.shape[0] - 1
    picks = np.arange(0, na, every)
    kept = np.zeros(picks.shape[0], dtype=np.int64)
    rows = np.zeros(picks.shape[0], dtype=np.int64)
    for q in range(picks.shape[0]):  # serial: too little work for a parallel region on a busy machine
        a = picks[q]
        ub = np.empty(nb)
        low = _row_block_bounds(a, rlo, rhi, ys, g, cstarts, inv_eps, sqeuclidean, ub)
        cols = 0
        for b in range(nb):
            if ub[b] >= low - thr:
                cols += cstarts[b + 1] - cstarts[b]
        rows[q] = rstarts[a + 1] - rstarts[a]
        kept[q] = cols * rows[q]
    return kept.sum(), rows.sum()


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def _pruned_kernel(x, ys, g, inv_eps, sqeuclidean, diag_col, unit, with_shift,
                   rstarts, rlo, rhi, cstarts, thr, lse_out, shift_out, visited, schedule):
    """Rows of each row block visit column blocks by decreasing bound until the bound drops below the cut.

    ``diag_col[i]``: the column masked in row i (-1 for none), in the blocks' order.
    ``schedule``: the row blocks in the order the threads take them (mixed, so that each
    thread's share holds dense and sparse regions alike: prange hands out equal ranges).
    """
    na, nb = rlo.shape[0], cstarts.shape[0] - 1
    for p in numba.prange(na):
        a = schedule[p]
        ub = np.empty(nb)
        _row_block_bounds(a, rlo, rhi, ys, g, cstarts, inv_eps, sqeuclidean, ub)
        order = np.argsort(-ub)
        logit = np.empty(cpu.BLOCK, dtype=x.dtype)
        aux = np.empty(cpu.BLOCK, dtype=x.dtype)
        acc = np.zeros(x.shape[1], dtype=np.float64)
        pairs = 0
        for i in range(rstarts[a], rstarts[a + 1]):
            acc[:] = 0.0
            state = cpu.empty_state(x[i, 0])
            diag = diag_col[i]
            for q in range(nb):
                b = order[q]
                if ub[b] < np.float64(state[0]) - thr:
                    break  # this block and every later one: each weight below tol/M of the row's largest
                jb, je = cstarts[b], cstarts[b + 1]
                pairs += je - jb
                state = cpu.block_update(i, x, ys, g, jb, je, inv_eps, sqeuclidean, diag, unit, with_shift,
                                         state, acc, logit, aux)
            cpu.finish_row(i, state, acc, with_shift, lse_out, shift_out)
        visited[a] = pairs


@numba.njit(fastmath=_BOUND_FAST, cache=True)
def _sampled_share(x, ys, g, rows, inv_eps, sqeuclidean, thr):
    """Share of pairs within ``thr`` of their row's maximum logit, over the sampled ``rows``: what pruning
    could skip at best (a forecast made before any tree is built)."""
    m = g.shape[0]
    logit = np.empty(m)
    kept = 0
    for i in rows:
        mx = -np.inf
        for j in range(m):
            d2 = 0.0
            for k in range(len(ys)):
                t = np.float64(ys[k][j]) - np.float64(x[i, k])
                d2 += t * t
            c = 0.5 * d2 if sqeuclidean else math.sqrt(d2)
            lg = np.float64(g[j]) - c * inv_eps
            logit[j] = lg
            mx = max(mx, lg)
        for j in range(m):
            kept += logit[j] >= mx - thr
    return kept / (rows.shape[0] * m)


def _schedule(na):
    """Row blocks in a fixed well-mixed order (neighbours in the tree are neighbours in space)."""
    return np.argsort((np.arange(na) * 0.6180339887498949) % 1.0, kind="stable")


_TREES = {}
_TREES_KEPT = 8


def _tree(points, leaf):
    """:func:`kd_blocks` of ``points``, remembered by content: Sinkhorn reduces over the same points
    hundreds of times with new offsets only."""
    key = (hashlib.blake2b(memoryview(points), digest_size=16).digest(), points.shape, points.dtype.str, leaf)
    hit = _TREES.get(key)
    if hit is None:
        hit = kd_blocks(points, leaf)
        if len(_TREES) >= _TREES_KEPT:
            _TREES.pop(next(iter(_TREES)))
        _TREES[key] = hit
    return hit


def _cost_range_over_eps(x, y, g, eps, cost):
    """An upper bound of ``max logit - min logit`` over all pairs, from the bounding box of x and y."""
    lo = np.minimum(x.min(axis=0), y.min(axis=0)).astype(np.float64)
    hi = np.maximum(x.max(axis=0), y.max(axis=0)).astype(np.float64)
    far2 = float(np.sum((hi - lo) ** 2))
    c = 0.5 * far2 if cost == "sqeuclidean" else math.sqrt(far2)
    span = 0.0
    if g is not None:
        gf = g[np.isfinite(g)]
        span = float(gf.max() - gf.min()) if gf.size else 0.0
    return c / eps + span


def lse_shift(x, y, g, eps, cost="sqeuclidean", exclude_diagonal=False, unit=False, with_shift=True,
              tol=None, stats=None):
    """Block-sparse :func:`wgfsim.primitives.lse_shift` on the CPU (NumPy in, NumPy out).

    Same arguments and results as :func:`wgfsim.primitives.cpu.lse_shift_dense`,
    plus ``tol`` (relative share of each row's sum that may be skipped; 0 =
    dense; ``None``: the tolerance in force, :func:`wgfsim.primitives.current_prune_tol`) and ``stats``, a dict that receives ``pairs`` (visited) and
    ``path`` (``"pruned"`` or why the dense kernel ran).
    """
    n, d = x.shape
    m = y.shape[0]

    def dense(why):
        if stats is not None:
            stats.update(path=why, pairs=n * m)
        return cpu.lse_shift_dense(x, y, g, eps, cost, exclude_diagonal, unit, with_shift)

    tol = current_prune_tol(tol)
    if not tol > 0:
        return dense("off")
    if n * m < MIN_PAIRS or d == 0:
        return dense("small")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (g is not None and (np.isnan(g).any() or np.isposinf(g).any())):
        return dense("non-finite")
    # each skipped weight is below tol/M of the row's largest
    thr = math.log(m / tol)
    if _cost_range_over_eps(x, y, g, eps, cost) < thr:
        return dense("nothing-to-skip")
    xc, ysd, gc, inv_eps = cpu.as_inputs(x, y, g, eps)
    sq = cost == "sqeuclidean"
    sample = np.linspace(0, n - 1, min(n, SAMPLED_ROWS)).astype(np.int64)
    if _sampled_share(xc, ysd, gc, sample, float(inv_eps), sq, thr) > DENSE_ABOVE:
        return dense("little-to-skip")
    yc = np.ascontiguousarray(y, dtype=xc.dtype)
    rperm, rstarts, rlo, rhi = _tree(xc, ROW_LEAF)
    cperm, cstarts, _, _ = _tree(yc, COL_LEAF)
    gs = gc[cperm]
    ysT = np.ascontiguousarray(yc[cperm].T)
    ys = tuple(ysT[k] for k in range(d))
    every = max(1, rlo.shape[0] // ESTIMATE_BLOCKS)
    kept, rows = _kept_estimate(ys, gs, rstarts, rlo, rhi, cstarts, float(inv_eps), sq, thr, every)
    if kept > DENSE_ABOVE * rows * m:
        return dense("little-to-skip")
    if exclude_diagonal:
        # row k of the blocks is point rperm[k]; its own column sits where cperm holds it
        where = np.empty(m, dtype=np.int64)
        where[cperm] = np.arange(m)
        diag_col = where[rperm]
    else:
        diag_col = np.full(n, -1, dtype=np.int64)
    xs = np.ascontiguousarray(xc[rperm])
    lse = np.empty(n, dtype=xc.dtype)
    shift = np.empty((n, d), dtype=xc.dtype) if with_shift else np.empty((0, d), dtype=xc.dtype)
    visited = np.zeros(rlo.shape[0], dtype=np.int64)
    _pruned_kernel(xs, ys, gs, inv_eps, sq, diag_col, bool(unit), bool(with_shift),
                   rstarts, rlo, rhi, cstarts, float(thr), lse, shift, visited, _schedule(rlo.shape[0]))
    if stats is not None:
        stats.update(path="pruned", pairs=int(visited.sum()))
    out_lse = np.empty(n, dtype=x.dtype)
    out_lse[rperm] = lse
    out_shift = None
    if with_shift:
        out_shift = np.empty((n, d), dtype=x.dtype)
        out_shift[rperm] = shift
    return out_lse, out_shift
