"""KL-KDE Wasserstein gradient flow (``kl_kde_wgf``): Gretton et al. eq. 24 and 58.

The exact WGF of ``F(q) = KL(q * k || p * k)`` (Gaussian kernel ``k`` of
bandwidth ``sigma``) is the Gaussian smoothing of the KL-KDE drift::

    v(x) = E_{z ~ N(x, sigma^2 I)} [ B[p](z) - B[q](z) ]

with ``B`` the mean shift of :mod:`wgfsim.flows.kl_kde` (``B = sigma^2 grad log(nu*k)``).
The expectation is estimated by ``n_mc`` fresh Gaussian draws per particle
(``quadrature="monte_carlo"``, seeded by the context's RNG) or by a tensor
Gauss-Hermite rule with ``n_nodes`` nodes per axis (``quadrature="gauss_hermite"``,
deterministic, for d <= 3).  Several bandwidths sum their fields and energies.

Energy: ``KL(q_s || p_s) = sum_i a_i E_{z ~ N(x_i, sigma^2)} [log q_s(z) - log p_s(z)]``
with the same draws or nodes; the Gaussian normalisers cancel.

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .. import primitives
from ..backend import array_namespace
from . import Flow, register
from ._common import log_weights, one_of, positive_floats, positive_int, set_frozen, weights

QUADRATURES = ("monte_carlo", "gauss_hermite")


@dataclass(frozen=True)
class Params:
    bandwidth: float | tuple = 1.0
    n_mc: int = 16
    quadrature: str = "monte_carlo"
    n_nodes: int = 5

    def __post_init__(self):
        set_frozen(
            self,
            bandwidth=positive_floats("kl_kde_wgf", "bandwidth", self.bandwidth),
            n_mc=positive_int("kl_kde_wgf", "n_mc", self.n_mc),
            quadrature=one_of("kl_kde_wgf", "quadrature", self.quadrature, QUADRATURES),
            n_nodes=positive_int("kl_kde_wgf", "n_nodes", self.n_nodes),
        )


def gauss_hermite(d: int, n_nodes: int):
    """Tensor Gauss-Hermite rule for E over N(0, I_d): nodes (n_nodes^d, d), weights summing to 1."""
    if d > 3:
        raise ValueError(f"kl_kde_wgf: quadrature='gauss_hermite' is for d <= 3 (n_nodes^d points), got d={d}; use 'monte_carlo'")
    t, w = np.polynomial.hermite_e.hermegauss(n_nodes)  # weight exp(-t^2/2)
    w = w / w.sum()
    nodes = np.array(list(itertools.product(t, repeat=d)))  # (R, d)
    wts = np.prod(np.array(list(itertools.product(w, repeat=d))), axis=1)  # (R,)
    return nodes, wts


def _draws(x, params: Params, ctx):
    """Standard-normal offsets (R, d) and their weights (R,) on x's device and dtype."""
    xp = array_namespace(x)
    d = x.shape[1]
    if params.quadrature == "gauss_hermite":
        nodes, wts = gauss_hermite(d, params.n_nodes)
    else:
        nodes = ctx.rng.standard_normal((params.n_mc, d))
        wts = np.full(params.n_mc, 1.0 / params.n_mc)
    return xp.asarray(nodes, dtype=x.dtype), xp.asarray(wts, dtype=x.dtype)


def _smoothing_points(x, xi, sigma):
    """z_ir = x_i + sigma xi_r as (N*R, d), particle-major (an N x R array: R is small)."""
    xp = array_namespace(x)
    n, r = x.shape[0], xi.shape[0]
    return xp.repeat(x, r, axis=0) + sigma * xp.tile(xi, (n, 1))


def velocity(x, y, a, b, params: Params, ctx):
    xp = array_namespace(x)
    n, d = x.shape
    la = log_weights(a, n, x)  # (N,)
    lb = log_weights(b, y.shape[0], x)  # (M,)
    v = xp.zeros_like(x)
    for sigma in params.bandwidth:
        xi, w = _draws(x, params, ctx)  # (R, d), (R,)
        z = _smoothing_points(x, xi, sigma)  # (N*R, d)
        eps = sigma * sigma
        bp = primitives.lse_shift(z, y, lb, eps=eps, backend=ctx.backend)[1]  # (N*R, d)
        bq = primitives.lse_shift(z, x, la, eps=eps, backend=ctx.backend)[1]  # (N*R, d)
        # B[nu](z) is a shift from z; B[p](z) - B[q](z) is the same from any base point
        diff = xp.reshape(bp - bq, (n, xi.shape[0], d))  # (N, R, d)
        v = v + xp.sum(diff * w[None, :, None], axis=1)
    return v


def energy(x, y, a, b, params: Params, ctx):
    xp = array_namespace(x)
    n = x.shape[0]
    la = log_weights(a, n, x)
    lb = log_weights(b, y.shape[0], x)
    aw = weights(a, n, x)
    total = 0.0
    for sigma in params.bandwidth:
        xi, w = _draws(x, params, ctx)
        z = _smoothing_points(x, xi, sigma)  # (N*R, d)
        eps = sigma * sigma
        log_ratio = primitives.lse(z, x, la, eps=eps, backend=ctx.backend) - primitives.lse(z, y, lb, eps=eps, backend=ctx.backend)
        log_ratio = xp.reshape(log_ratio, (n, xi.shape[0]))  # (N, R)
        total += float(xp.sum(aw * xp.sum(log_ratio * w[None, :], axis=1)))
    return total


FLOW = register(
    Flow(
        name="kl_kde_wgf",
        Params=Params,
        velocity=velocity,
        energy=energy,
        energy_name="KL(q_s || p_s)",
        summary="exact WGF of KL between Gaussian KDEs: smoothed KL-KDE drift (Gretton et al. eq. 24, 58)",
    )
)
