"""KL-KDE Wasserstein gradient flow (``kl_kde_wgf``): Gretton et al. eq. 24 and 58.

The exact WGF of ``F(q) = KL(q * k || p * k)`` (Gaussian kernel ``k`` of
bandwidth ``sigma``) is the Gaussian smoothing of the KL-KDE drift::

    v(x) = E_{z ~ N(x, sigma^2 I)} [ B[p](z) - B[q](z) ]

with ``B`` the mean shift of :mod:`wgfsim.flows.kl_kde` (``B = sigma^2 grad log(nu*k)``).
The expectation is estimated by ``n_mc`` fresh Gaussian offsets per call,
shared by all particles (``quadrature="monte_carlo"``, seeded by the
context's RNG; the evaluation below needs them shared) or by a tensor
Gauss-Hermite rule with ``n_nodes`` nodes per axis (``quadrature="gauss_hermite"``,
deterministic, for d <= 3).  Several bandwidths sum their fields and energies.

Energy: ``KL(q_s || p_s) = sum_i a_i E_{z ~ N(x_i, sigma^2)} [log q_s(z) - log p_s(z)]``
with the same draws or nodes; the Gaussian normalisers cancel.

Evaluation at ``z = x_i + sigma xi_r``: expanding the logits,

    -|z - y_j|^2 / (2 sigma^2) = -|x_i - y_j|^2 / (2 sigma^2) + <xi_r, y_j - c> / sigma + (terms free of j)

for any centre ``c``, so the softmax over j at ``z`` is the primitive's at
the row ``x_i`` with column offsets ``<xi_r, y_j - c>/sigma``, and its shift
is returned from ``x_i``: ``B[p](z) - B[q](z) = shift_p(x_i) - shift_q(x_i)``.
Forming ``z`` itself would cost every digit of ``x - y`` once ``sigma``
exceeds ``|x - y| / u`` (u the unit roundoff) and leave the difference of two
``O(sigma)`` shifts, an error growing like ``u sigma``, where the field tends
to its large-bandwidth limit ``v -> mean_b(y) - mean_a(x)`` (Gaussian closure:
``v = mu_p - mu_q + [S_p (x - mu_p) - S_q (x - mu_q)] / sigma^2 + O(sigma^-4)``,
docs/math.md#gaussian-closure).  One primitive call per node ``r`` and measure.

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import math

import itertools
from dataclasses import dataclass

import numpy as np

from .. import primitives
from ..backend import array_namespace
from ._registry import Flow, largest_bandwidth, register
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


def _memory(d: int, params: Params) -> dict:
    """Bytes of the offsets and weights (R (d + 1), R = n_mc or n_nodes^d) and, for Gauss-Hermite, the
    ``n_nodes x n_nodes`` companion matrix whose eigenvalues are the nodes."""
    if params.quadrature == "gauss_hermite":
        return {"kl_kde_wgf Gauss-Hermite nodes": 8.0 * (params.n_nodes ** min(d, 3) * (d + 1)
                                                        + 2 * params.n_nodes ** 2)}
    return {"kl_kde_wgf Monte-Carlo offsets": 8.0 * 2 * params.n_mc * (d + 1)}


def _centre(x):
    """A point near the particles (their mean, (d,)), subtracted from the offsets to keep them small."""
    xp = array_namespace(x)
    return xp.mean(x, axis=0)


def _smoothed(x, cols, log_w, xi, sigma, c, backend, with_shift=True):
    """The primitive at the smoothing points ``z_ir = x_i + sigma xi_r``, node by node.

    For each node r: ``lse_i = LSE_j(log_w_j + <xi_r, cols_j - c>/sigma - |x_i - cols_j|^2/(2 sigma^2))``
    (N,), which is ``log sum_j w_j k(z_ir, cols_j) + |xi_r|^2/2 + <xi_r, x_i - c>/sigma``,
    and ``shift_i = bary(z_ir) - x_i`` (N, d).  Yields ``(lse, shift)`` for r = 0..R-1.
    """
    eps = sigma * sigma
    centred = cols - c[None, :]  # (K, d)
    for r in range(xi.shape[0]):
        offsets = log_w + (centred @ xi[r]) / sigma  # (K,)
        if with_shift:
            yield primitives.lse_shift(x, cols, offsets, eps=eps, backend=backend)
        else:
            yield primitives.lse(x, cols, offsets, eps=eps, backend=backend), None


def velocity(x, y, a, b, params: Params, ctx):
    xp = array_namespace(x)
    n = x.shape[0]
    la = log_weights(a, n, x)  # (N,)
    lb = log_weights(b, y.shape[0], x)  # (M,)
    c = _centre(x)
    v = xp.zeros_like(x)
    for sigma in params.bandwidth:
        xi, w = _draws(x, params, ctx)  # (R, d), (R,)
        pulls = _smoothed(x, y, lb, xi, sigma, c, ctx.backend)
        pushes = _smoothed(x, x, la, xi, sigma, c, ctx.backend)
        for r, ((_, bp), (_, bq)) in enumerate(zip(pulls, pushes)):
            # B[p](z) - B[q](z), both shifts taken from x_i: no O(sigma) terms to cancel
            v = v + w[r] * (bp - bq)
    return v


def energy(x, y, a, b, params: Params, ctx):
    xp = array_namespace(x)
    n = x.shape[0]
    la = log_weights(a, n, x)
    lb = log_weights(b, y.shape[0], x)
    aw = weights(a, n, x)
    c = _centre(x)
    total = 0.0
    for sigma in params.bandwidth:
        xi, w = _draws(x, params, ctx)
        ps = _smoothed(x, y, lb, xi, sigma, c, ctx.backend, with_shift=False)
        qs = _smoothed(x, x, la, xi, sigma, c, ctx.backend, with_shift=False)
        for r, ((lse_p, _), (lse_q, _)) in enumerate(zip(ps, qs)):
            # log q_s(z) - log p_s(z): the terms free of j are the same for both (same centre c)
            total += float(w[r]) * float(xp.sum(aw * (lse_q - lse_p)))
    return total


FLOW = register(
    Flow(
        name="kl_kde_wgf",
        Params=Params,
        velocity=velocity,
        energy=energy,
        energy_name="KL(q_s || p_s)",
        summary="exact WGF of KL between Gaussian KDEs: smoothed KL-KDE drift (Gretton et al. eq. 24, 58)",
        length_scale=largest_bandwidth,
        options_at_scale=lambda s: {"bandwidth": s},
        hyper="bandwidth",
        doc="docs/flows/kl_kde_wgf.md",
        # the kernel smoothed once more by the noise sigma xi: E exp(-(s - sigma xi)^2 / (2 sigma^2)) ~ exp(-s^2 / (4 sigma^2))
        gap_decay=lambda p: ("gaussian", math.sqrt(2.0) * largest_bandwidth(p)),
        pairs=lambda n, m, d, p: float(len(p.bandwidth) * (p.n_mc if p.quadrature == "monte_carlo" else p.n_nodes ** d)
                                       * (n * m + n * n)),
        memory=lambda n, m, d, p: _memory(d, p),
        no_two_atom="a smoothed field: its two-atom value is an integral over the noise, with no closed form",
        examples=(dict(bandwidth=0.7, n_mc=4), dict(bandwidth=0.7, quadrature="gauss_hermite", n_nodes=3)),
    )
)
