"""MMD flow (``mmd``): Arbel et al. 2019; Gretton et al. eq. 50-52.

Witness ``f(z) = sum_i a_i k(z, x_i) - sum_j b_j k(z, y_j)`` and velocity
``v = -sigma^2 grad f`` (``-h grad f`` for the Laplace kernel), i.e. for the
Gaussian kernel the *unnormalised* mean-shift difference::

    v(x) = sum_j b_j k(x, y_j) (y_j - x) - sum_i a_i k(x, x_i) (x_i - x)

and for the Laplace kernel the same with unit vectors ``(y - x)/|y - x|``
(zero at ``y == x``).  Each unnormalised sum is ``exp(lse) * shift`` of one
primitive call with ``g = log b``.  Several bandwidths sum their fields and
energies; ``bandwidth="median"`` re-estimates one each call (median heuristic
on the pooled particles and targets).

Energy: ``MMD^2 = a'K_xx a - 2 a'K_xy b + b'K_yy b`` (so ``v_i = -sigma^2/(2 a_i) dMMD^2/dx_i``).

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import math

from dataclasses import dataclass

from .. import primitives
from ..backend import array_namespace
from .. import analytic
from ._registry import Flow, kernel_gap_decay, kernel_pairs, largest_bandwidth, register
from ._common import KERNELS, bandwidths, log_weights, one_of, positive_floats, set_frozen, weights


@dataclass(frozen=True)
class Params:
    bandwidth: float | tuple | str = 1.0
    kernel: str = "gaussian"

    def __post_init__(self):
        set_frozen(
            self,
            bandwidth=positive_floats("mmd", "bandwidth", self.bandwidth, allow_median=True),
            kernel=one_of("mmd", "kernel", self.kernel, KERNELS),
        )


def kernel_pull(x, y, log_w, eps, cost, backend):
    """``sum_j w_j k(x_i, y_j) u(y_j - x_i)`` (N, d), u the cost's negative gradient direction."""
    xp = array_namespace(x)
    lse_, shift = primitives.lse_shift(x, y, log_w, eps=eps, cost=cost, unit=(cost == "euclidean"), backend=backend)
    return xp.exp(lse_)[:, None] * shift


def field_at(z, x, y, la, lb, params: Params, backend):
    """The MMD field (N_z, d) at evaluation points ``z`` for the particles ``x`` and targets ``y``."""
    cost, temperature = KERNELS[params.kernel]
    v = 0.0
    for s in bandwidths(params.bandwidth, x, y):
        eps = temperature(s)
        v = v + kernel_pull(z, y, lb, eps, cost, backend) - kernel_pull(z, x, la, eps, cost, backend)
    return v


def velocity(x, y, a, b, params: Params, ctx):
    return field_at(x, x, y, log_weights(a, x.shape[0], x), log_weights(b, y.shape[0], x), params, ctx.backend)


def mmd2(x, y, a, b, bandwidth, kernel="gaussian", backend="auto"):
    """``MMD^2(q, p)`` summed over ``bandwidth`` (a tuple), through the primitive."""
    xp = array_namespace(x)
    cost, temperature = KERNELS[kernel]
    la, lb = log_weights(a, x.shape[0], x), log_weights(b, y.shape[0], x)
    aw, bw = weights(a, x.shape[0], x), weights(b, y.shape[0], x)

    def mean_kernel(u, v, wu, lv, eps):  # sum_i wu_i sum_j wv_j k(u_i, v_j)
        return float(xp.sum(wu * xp.exp(primitives.lse(u, v, lv, eps=eps, cost=cost, backend=backend))))

    total = 0.0
    for s in bandwidth:
        eps = temperature(s)
        total += mean_kernel(x, x, aw, la, eps) - 2.0 * mean_kernel(x, y, aw, lb, eps) + mean_kernel(y, y, bw, lb, eps)
    return total


def energy(x, y, a, b, params: Params, ctx):
    return mmd2(x, y, a, b, bandwidths(params.bandwidth, x, y), params.kernel, ctx.backend)


def _field_at(z, x, y, a, b, params: Params, ctx):
    """The MMD field (K, d) at points ``z`` for the particles ``(x, a)`` and targets ``(y, b)``."""
    return field_at(z, x, y, log_weights(a, x.shape[0], x), log_weights(b, y.shape[0], x), params, ctx.backend)


def two_atom(D, pi, alpha, params: Params) -> float:
    """The two-atom closed form at the overcrowded atom (docs/math.md#two-atoms), summed over bandwidths."""
    if params.kernel != "gaussian" or isinstance(params.bandwidth, str):
        return math.nan
    return float(sum(analytic.two_atom_mmd(D, s, pi, alpha) for s in params.bandwidth))


FLOW = register(
    Flow(
        name="mmd",
        Params=Params,
        velocity=velocity,
        energy=energy,
        energy_name="MMD^2",
        summary="MMD flow -sigma^2 grad(witness) (Arbel et al. 2019; Gretton et al. eq. 50-52)",
        field_at=_field_at,
        length_scale=largest_bandwidth,
        options_at_scale=lambda s: {"bandwidth": s},
        hyper="bandwidth",
        two_atom=two_atom,
        doc="docs/flows/mmd.md",
        gap_decay=kernel_gap_decay,
        field_at_is_velocity=True,
        pairs=kernel_pairs,
        examples=(dict(bandwidth=[0.5, 1.0]), dict(kernel="laplace")),
    )
)
