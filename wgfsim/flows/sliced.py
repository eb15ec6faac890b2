"""Sliced Wasserstein flow (``sliced``): Cozzi-Santambrogio 2025; Gretton et al. eq. 53.

For ``L`` directions ``theta_l`` uniform on the sphere (fresh each call, drawn
from the context's RNG)::

    v(x) = (1/L) sum_l ( T_l(<theta_l, x>) - <theta_l, x> ) theta_l

``T_l`` is the monotone 1-D map from the projected particles to the projected
targets: the particle of rank ``r`` (0-based, ties broken by index) sits at
quantile ``u = (r + 1/2)/N`` and goes to the linear interpolation of the
sorted projected targets at ``u`` (nodes ``(j + 1/2)/M``, constant beyond the
end nodes).  Cost ``O(L (N log N + M log M))``.  On the CPU the directions
run in parallel threads and each projection is computed once; the ranks come
from sorting 64-bit integers (the bits of the float32-rounded projection,
then the index) with NumPy's vectorised integer sort, and only runs of equal
rounded values are then ordered by exact value (stably, so ties stay by
index: the one place where the order changes the result).  On the GPU
``xp.argsort`` (a radix sort).

Energy: ``SW_2^2 = (1/L) sum_l (1/N) sum_i (T_l(<theta_l, x_i>) - <theta_l, x_i>)^2``
for the same directions, so ``v_i = -(N/2) dSW_2^2/dx_i`` where the ranks are
locally constant.

Shapes: x (N, d), y (M, d) -> v (N, d).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import math
from dataclasses import dataclass

import numba
import numpy as np

from ..backend import array_namespace
from ._registry import Flow, kernel_gap_decay, register, transport_gap_decay
from ._common import positive_int, set_frozen


@dataclass(frozen=True)
class Params:
    n_projections: int = 100

    def __post_init__(self):
        set_frozen(self, n_projections=positive_int("sliced", "n_projections", self.n_projections))


def directions(rng: np.random.Generator, n: int, d: int, xp=np, dtype=np.float64):
    """``n`` directions uniform on the unit sphere of R^d, (n, d)."""
    theta = rng.standard_normal((n, d))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    return xp.asarray(theta, dtype=dtype)


def monotone_map(px, py):
    """``T_l(px_li)`` (L, N) for projected particles px (L, N) and targets py (L, M), row by row.

    Rows are the directions, so every sort runs over contiguous memory.
    """
    xp = array_namespace(px)
    n, m = px.shape[1], py.shape[1]
    order = xp.argsort(px, axis=1, stable=True)  # (L, N): ties broken by index
    ranks = xp.empty_like(order)
    xp.put_along_axis(ranks, order, xp.broadcast_to(xp.arange(n)[None, :], order.shape), axis=1)  # inverse permutation
    # interpolation position among the target nodes (j + 1/2)/M, clamped at both ends
    pos = (ranks.astype(px.dtype) + 0.5) * (m / n) - 0.5  # (L, N)
    j0 = xp.clip(xp.floor(pos), 0, m - 1).astype(xp.int64)
    j1 = xp.minimum(j0 + 1, m - 1)
    frac = xp.clip(pos - j0.astype(px.dtype), 0.0, 1.0)
    qy = xp.sort(py, axis=1)  # (L, M)
    lo = xp.take_along_axis(qy, j0, axis=1)
    hi = xp.take_along_axis(qy, j1, axis=1)
    return lo + frac * (hi - lo)


def _projected_gaps(x, y, params: Params, ctx):
    xp = array_namespace(x)
    theta = directions(ctx.rng, params.n_projections, x.shape[1], xp, x.dtype)  # (L, d)
    px = theta @ x.T  # (L, N)
    py = theta @ y.T  # (L, M)
    return monotone_map(px, py) - px, theta  # (L, N), (L, d)


@numba.njit(nogil=True, fastmath=True, cache=True)
def _accumulate(theta_l, order, sorted_px, qy, v):
    """``v[order[r]] += (T(r) - px_(r)) theta_l`` over ranks r; returns ``sum_r (T(r) - px_(r))^2``.

    ``T(r)`` interpolates the sorted projected targets ``qy`` (M,) at quantile
    ``(r + 1/2)/N``: position ``(r + 1/2) M/N - 1/2`` among the nodes, clamped
    at both ends (as in :func:`monotone_map`).
    """
    n = order.shape[0]
    m = qy.shape[0]
    d = theta_l.shape[0]
    half = sorted_px[0] * 0 + 0.5  # in the points' type, as monotone_map computes it
    ratio = half * 0 + m / n
    sq = 0.0
    for r in range(n):
        pos = (r + half) * ratio - half
        j0 = min(max(int(math.floor(pos)), 0), m - 1)
        j1 = min(j0 + 1, m - 1)
        frac = min(max(pos - j0, 0.0), 1.0)
        lo = qy[j0]
        gap = lo + frac * (qy[j1] - lo) - sorted_px[r]
        sq += np.float64(gap) * np.float64(gap)
        i = order[r]
        for k in range(d):
            v[i, k] += gap * theta_l[k]
    return sq


@numba.njit(nogil=True, fastmath=True, cache=True)
def _project(x, theta_l):
    """``x @ theta_l`` (N,) without BLAS, whose own threads would compete with the direction threads."""
    n, d = x.shape
    out = np.empty(n, dtype=x.dtype)
    for i in range(n):
        s = x[i, 0] * theta_l[0]
        for k in range(1, d):
            s += x[i, k] * theta_l[k]
        out[i] = s
    return out


@numba.njit(nogil=True, cache=True)
def _sort_keys(px):
    """``(monotone bits of float32(px_i)) << 32 | i`` (N,) uint64: sorting these integers orders the
    particles by their rounded projection, ties by index (NumPy sorts integers with SIMD, far
    faster than its argsort)."""
    n = px.shape[0]
    bits = px.astype(np.float32).view(np.uint32)
    keys = np.empty(n, dtype=np.uint64)
    for i in range(n):
        u = np.uint64(bits[i])
        u = (~u & np.uint64(0xFFFFFFFF)) if u >> np.uint64(31) else (u | np.uint64(0x80000000))
        keys[i] = (u << np.uint64(32)) | np.uint64(i)
    return keys


@numba.njit(nogil=True, cache=True)
def _order_from_keys(keys, px):
    """The stable argsort of px and px in that order, from the sorted keys of :func:`_sort_keys`.

    Projections that round to the same float32 form runs in index order; a stable
    insertion sort by the exact value inside each run finishes the job.
    """
    n = keys.shape[0]
    order = np.empty(n, dtype=np.int64)
    sorted_px = np.empty(n, dtype=px.dtype)
    for r in range(n):
        i = np.int64(keys[r] & np.uint64(0xFFFFFFFF))
        order[r] = i
        sorted_px[r] = px[i]
    r = 0
    while r < n - 1:
        if (keys[r + 1] >> np.uint64(32)) != (keys[r] >> np.uint64(32)):
            r += 1
            continue
        e = r + 1
        while e < n - 1 and (keys[e + 1] >> np.uint64(32)) == (keys[r] >> np.uint64(32)):
            e += 1
        for q in range(r + 1, e + 1):  # insertion sort of [r, e] by value, stable
            v, i = sorted_px[q], order[q]
            p = q - 1
            while p >= r and sorted_px[p] > v:
                sorted_px[p + 1] = sorted_px[p]
                order[p + 1] = order[p]
                p -= 1
            sorted_px[p + 1] = v
            order[p + 1] = i
        r = e + 1
    return order, sorted_px


# below this many projected points per call, one thread does it all (a pool costs ~0.1 ms per task)
_THREADS_MIN = 1 << 15


def _cpu_velocity(x, y, theta):
    """Velocity (N, d) and SW_2^2 for NumPy arrays: directions spread over threads, one pass each.

    Per direction: project once (without BLAS), rank by the integer-key sort
    of :func:`_sort_keys` (ties by index), one sort of the projected targets,
    and the gaps added to a per-thread sum of the velocity; memory
    O((N + M) x threads), never (L, N).
    """
    n, d = x.shape
    m = y.shape[0]
    n_dir = theta.shape[0]
    workers = max(1, min(numba.get_num_threads(), n_dir)) if n_dir * (n + m) >= _THREADS_MIN else 1

    def part(w):
        v = np.zeros((n, d), dtype=x.dtype)
        sq = 0.0
        for l in range(w, n_dir, workers):
            px = _project(x, theta[l])  # (N,)
            keys = _sort_keys(px)
            keys.sort()
            order, sorted_px = _order_from_keys(keys, px)
            qy = np.sort(_project(y, theta[l]))  # (M,)
            sq += _accumulate(theta[l], order, sorted_px, qy, v)
        return v, sq

    if workers == 1:
        parts = [part(0)]
    else:
        # NumPy's sorts and the nogil kernels release the GIL: the threads run in parallel
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(part, range(workers)))
    v = parts[0][0]
    for other, _ in parts[1:]:
        v += other
    return v / n_dir, sum(sq for _, sq in parts) / (n_dir * n)


def _on_cpu(x):
    return isinstance(x, np.ndarray)


def velocity(x, y, a, b, params: Params, ctx):
    if _on_cpu(x):
        theta = directions(ctx.rng, params.n_projections, x.shape[1], np, x.dtype)
        return _cpu_velocity(x, y, theta)[0]
    gaps, theta = _projected_gaps(x, y, params, ctx)
    return gaps.T @ theta / params.n_projections


def energy(x, y, a, b, params: Params, ctx):
    if _on_cpu(x):
        theta = directions(ctx.rng, params.n_projections, x.shape[1], np, x.dtype)
        return float(_cpu_velocity(x, y, theta)[1])
    xp = array_namespace(x)
    gaps, _ = _projected_gaps(x, y, params, ctx)
    return float(xp.mean(gaps * gaps))


FLOW = register(
    Flow(
        name="sliced",
        Params=Params,
        velocity=velocity,
        energy=energy,
        weights=False,
        energy_name="SW_2^2",
        summary="sliced Wasserstein flow (Cozzi-Santambrogio 2025; Gretton et al. eq. 53)",
        hyper="n_projections",
        doc="docs/flows/sliced.md",
        study_options=lambda dim: {"n_projections": 1 if dim == 1 else 100},  # in 1-D one direction is exact
        gap_decay=transport_gap_decay,
        # the projections (L x (N + M)) and the directions (L x d)
        memory=lambda n, m, d, p: {"sliced projections": 8.0 * p.n_projections * (n + m + d)},
        pairs=lambda n, m, d, p: float(p.n_projections * (n + m)),
        no_two_atom="in 1-D it is w2_exact's field; in d > 1 its value averages over directions (no closed form)",
        examples=(dict(n_projections=16),),
    )
)
