"""KL-KDE drift (``kl_kde``): Deng et al. eq. 8-10; Gretton et al. eq. 14-16.

Mean shift towards a weighted sample ``nu`` at temperature ``eps``::

    B_eps[nu](x) = sum_j nu_j k(x, y_j) (y_j - x) / sum_j nu_j k(x, y_j)

and the drift ``v(x) = B[p](x) - B[q](x)``.  For the Gaussian kernel
``B = sigma^2 grad log(nu * k)`` (Tweedie), so ``v = sigma^2 (grad log p_sigma -
grad log q_sigma)``, a scaled difference of Parzen-smoothed scores.  Several
bandwidths sum their fields.  ``exclude_self`` drops ``i == j`` in ``B[q]``
(Deng et al.'s "ignore self").  Not a gradient flow (no energy).

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import math

from dataclasses import dataclass

from .. import primitives
from .. import analytic
from ._registry import Flow, kernel_gap_decay, kernel_pairs, largest_bandwidth, register
from ._common import KERNELS, bandwidths, boolean, log_weights, one_of, positive_floats, set_frozen


@dataclass(frozen=True)
class Params:
    bandwidth: float | tuple | str = 1.0
    kernel: str = "gaussian"
    exclude_self: bool = False

    def __post_init__(self):
        set_frozen(
            self,
            bandwidth=positive_floats("kl_kde", "bandwidth", self.bandwidth, allow_median=True),
            kernel=one_of("kl_kde", "kernel", self.kernel, KERNELS),
            exclude_self=boolean("kl_kde", "exclude_self", self.exclude_self),
        )


def mean_shift(x, y, log_nu, eps, cost, backend, exclude_diagonal=False):
    """``B_eps[nu](x)`` (N, d): the mean shift of docs/math.md#kl-kde, one primitive call."""
    return primitives.lse_shift(x, y, log_nu, eps=eps, cost=cost, exclude_diagonal=exclude_diagonal, backend=backend)[1]


def field_at(z, x, y, la, lb, params: Params, backend, exclude_self=False):
    """``sum over bandwidths of B[p](z) - B[q](z)`` (N_z, d); ``exclude_self`` needs ``z is x``."""
    cost, temperature = KERNELS[params.kernel]
    v = 0.0
    for s in bandwidths(params.bandwidth, x, y):
        eps = temperature(s)
        v = v + mean_shift(z, y, lb, eps, cost, backend) - mean_shift(z, x, la, eps, cost, backend, exclude_diagonal=exclude_self)
    return v


def velocity(x, y, a, b, params: Params, ctx):
    la = log_weights(a, x.shape[0], x)  # (N,)
    lb = log_weights(b, y.shape[0], x)  # (M,)
    return field_at(x, x, y, la, lb, params, ctx.backend, exclude_self=params.exclude_self)


def _field_at(z, x, y, a, b, params: Params, ctx):
    """``B[p](z) - B[q](z)`` (K, d) at points ``z`` that are not particles (no self pair to exclude)."""
    return field_at(z, x, y, log_weights(a, x.shape[0], x), log_weights(b, y.shape[0], x), params, ctx.backend)


def two_atom(D, pi, alpha, params: Params) -> float:
    """The two-atom closed form at the overcrowded atom (docs/math.md#two-atoms), summed over bandwidths.

    Gaussian kernel: ``kappa = exp(-2 D^2 / sigma^2)``; Laplace kernel: ``kappa = exp(-2 D / h)``
    (:func:`wgfsim.analytic.two_atom_kl_kde_laplace`).  NaN with ``exclude_self`` (the value then
    depends on the numbers of particles) and for the data-dependent ``"median"``.
    """
    if params.exclude_self or isinstance(params.bandwidth, str):
        return math.nan
    form = analytic.two_atom_kl_kde if params.kernel == "gaussian" else analytic.two_atom_kl_kde_laplace
    return float(sum(form(D, s, pi, alpha) for s in params.bandwidth))


FLOW = register(
    Flow(
        name="kl_kde",
        Params=Params,
        velocity=velocity,
        summary="KL-KDE drift B[p] - B[q] (Deng et al. eq. 8-10; Gretton et al. eq. 14-16)",
        field_at=_field_at,
        length_scale=largest_bandwidth,
        options_at_scale=lambda s: {"bandwidth": s},
        hyper="bandwidth",
        two_atom=two_atom,
        doc="docs/flows/kl_kde.md",
        gap_decay=kernel_gap_decay,
        field_at_is_velocity=True,
        pairs=kernel_pairs,
        examples=(dict(bandwidth=[0.5, 1.0]), dict(kernel="laplace", exclude_self=True), dict(bandwidth="median")),
    )
)
