"""Sliced Wasserstein flow (``sliced``): Cozzi-Santambrogio 2025; Gretton et al. eq. 53.

For ``L`` directions ``theta_l`` uniform on the sphere (fresh each call, drawn
from the context's RNG)::

    v(x) = (1/L) sum_l ( T_l(<theta_l, x>) - <theta_l, x> ) theta_l

``T_l`` is the monotone 1-D map from the projected particles to the projected
targets: the particle of rank ``r`` (0-based, ties broken by index) sits at
quantile ``u = (r + 1/2)/N`` and goes to the linear interpolation of the
sorted projected targets at ``u`` (nodes ``(j + 1/2)/M``, constant beyond the
end nodes).  Cost ``O(L (N log N + M log M))``; sorting is ``xp.argsort``
(a radix sort on the GPU).

Energy: ``SW_2^2 = (1/L) sum_l (1/N) sum_i (T_l(<theta_l, x_i>) - <theta_l, x_i>)^2``
for the same directions, so ``v_i = -(N/2) dSW_2^2/dx_i`` where the ranks are
locally constant.

Shapes: x (N, d), y (M, d) -> v (N, d).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import array_namespace
from . import Flow, register
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


def velocity(x, y, a, b, params: Params, ctx):
    gaps, theta = _projected_gaps(x, y, params, ctx)
    return gaps.T @ theta / params.n_projections


def energy(x, y, a, b, params: Params, ctx):
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
    )
)
