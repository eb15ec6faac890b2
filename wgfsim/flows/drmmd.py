"""DrMMD flow (``drmmd``): Chen et al., JMLR 26(235) 2025; Gretton et al. Section 4.2 (docs/math.md#drmmd).

The de-regularised MMD, with ``Sigma_p`` the uncentred covariance operator of the target::

    DrMMD(q || p) = (1 + lambda) < mu_q - mu_p, (Sigma_p + lambda I)^-1 (mu_q - mu_p) >_H

Its witness ``h* = (Sigma_p + lambda I)^-1 (mu_q - mu_p)`` has a closed form
on the samples: with ``f(Y) = K_yx a - K_yy b`` (M,) and ``B = diag(b)``::

    h*(Y) = (lambda I + K_yy B)^-1 f(Y),     gamma = B h*(Y)                    (M,)
    h*(z) = (1/lambda) [sum_i a_i k(z, x_i) - sum_j (b_j + gamma_j) k(z, y_j)]

so the velocity (first variation ``2 (1 + lambda) h*``, times ``sigma^2``) is
the ``mmd`` field with the target weights ``b`` replaced by ``b + gamma``::

    v(z) = (2 (1 + lambda)/lambda) [sum_j (b_j + gamma_j) k(z, y_j)(y_j - z) - sum_i a_i k(z, x_i)(x_i - z)]

``b + gamma`` can be negative: its positive and negative parts are two
passes of the fused primitive (``g = log c+``, ``g = log c-``).  The linear
system is solved in the symmetric form ``(lambda I + D K_yy D) w = D f(Y)``,
``D = diag(sqrt b)``, ``gamma = D w``: by Cholesky for ``M <= max_dense``,
else by conjugate gradients with kernel products through the primitive.

Energy: ``DrMMD = ((1 + lambda)/lambda) [MMD^2 - f(Y)' gamma]``.  Several
bandwidths: one solve with the summed kernel, fields summed as in ``mmd``
(``lambda -> infinity`` gives twice the ``mmd`` field).

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend import array_namespace, to_numpy
from ._registry import Flow, kernel_gap_decay, register, transport_gap_decay
from ._common import KERNELS, bandwidths, log_weights, one_of, positive_floats, positive_int, set_frozen
from .kale import SOLVERS, TargetKernel, length_scale, positive_float, single_gaussian, spd_solve
from .mmd import kernel_pull


@dataclass(frozen=True)
class Params:
    lambda_: float = 1.0  # the regularisation lambda of the paper (``lambda`` is a Python keyword)
    bandwidth: float | tuple | str = 1.0
    kernel: str = "gaussian"
    solver: str = "auto"  # "dense" (Cholesky), "cg" (matrix-free), "auto": dense up to max_dense targets
    max_dense: int = 4096
    cg_tol: float = 1e-13  # relative residual of the conjugate-gradient solve

    def __post_init__(self):
        set_frozen(
            self,
            lambda_=positive_float("drmmd", "lambda_", self.lambda_),
            bandwidth=positive_floats("drmmd", "bandwidth", self.bandwidth, allow_median=True),
            kernel=one_of("drmmd", "kernel", self.kernel, KERNELS),
            solver=one_of("drmmd", "solver", self.solver, SOLVERS),
            max_dense=positive_int("drmmd", "max_dense", self.max_dense),
            cg_tol=positive_float("drmmd", "cg_tol", self.cg_tol),
        )


@dataclass
class Solution:
    """``gamma`` (M,), ``f = f(Y)`` (M,), and the pieces of ``MMD^2`` the value needs."""

    gamma: object
    f: object
    b: object
    k_b: object  # K_yy b (M,)
    c: object  # K_yx a (M,)


def solve(x, y, a, b, params: Params, ctx) -> tuple[TargetKernel, Solution]:
    """``gamma = B (lambda I + K_yy B)^-1 f(Y)`` for particles ``(x, a)`` and targets ``(y, b)``, float64."""
    xp = array_namespace(x)
    f64 = xp.float64
    n, m = x.shape[0], y.shape[0]
    K = TargetKernel("drmmd", y, params, x, params.solver, params.max_dense, ctx.backend)
    la = xp.astype(log_weights(a, n, x), f64)  # (N,)
    lb = xp.astype(log_weights(b, m, x), f64)  # (M,)
    c = K.sums(K.y, xp.astype(x, f64), la)  # (M,) K_yx a
    k_b = K.sums(K.y, K.y, lb)  # (M,) K_yy b
    f = c - k_b  # (M,) (mu_q - mu_p)(Y)
    bw = xp.exp(lb)
    d = K.host(xp.sqrt(bw))
    w = spd_solve(K, d, params.lambda_, 1.0, d * K.host(f), tol=params.cg_tol)  # (M,)
    gamma = xp.asarray(d * w, dtype=f64)  # (M,)
    return K, Solution(gamma=gamma, f=f, b=bw, k_b=k_b, c=c)


def signed_pull(z, y, coef, eps, cost, backend):
    """``sum_j c_j k(z, y_j) u(y_j - z)`` (K, d) for signed ``c`` (M,): one primitive pass per sign."""
    xp = array_namespace(z)
    out = 0.0
    with np.errstate(divide="ignore"):
        for part, sign in ((xp.where(coef > 0, coef, 0.0), 1.0), (xp.where(coef < 0, -coef, 0.0), -1.0)):
            if bool(xp.any(part > 0)):
                out = out + sign * kernel_pull(z, y, xp.log(part), eps, cost, backend)
    return out if not isinstance(out, float) else xp.zeros_like(z)


def field_at(z, x, y, a, b, params: Params, ctx):
    """The DrMMD field (K, d) at points ``z`` (K, d) for the particles ``(x, a)`` and targets ``(y, b)``."""
    xp = array_namespace(x)
    _, sol = solve(x, y, a, b, params, ctx)
    la = log_weights(a, x.shape[0], x)
    coef = xp.astype(sol.b + sol.gamma, x.dtype)  # (M,) b + gamma, signed
    cost, temperature = KERNELS[params.kernel]
    v = 0.0
    for s in bandwidths(params.bandwidth, x, y):
        eps = temperature(s)
        v = v + signed_pull(z, y, coef, eps, cost, ctx.backend) - kernel_pull(z, x, la, eps, cost, ctx.backend)
    lam = params.lambda_
    return (2.0 * (1.0 + lam) / lam) * v


def velocity(x, y, a, b, params: Params, ctx):
    return field_at(x, x, y, a, b, params, ctx)


def energy(x, y, a, b, params: Params, ctx):
    """``((1 + lambda)/lambda) [MMD^2 - f(Y)' gamma]`` with ``MMD^2 = a'K_xx a - 2 b'K_yx a + b'K_yy b``."""
    xp = array_namespace(x)
    K, sol = solve(x, y, a, b, params, ctx)
    x64 = xp.astype(x, xp.float64)
    la = xp.astype(log_weights(a, x.shape[0], x), xp.float64)
    akka = float(xp.sum(xp.exp(la) * K.sums(x64, x64, la)))
    mmd2 = akka - 2.0 * float(xp.sum(sol.b * sol.c)) + float(xp.sum(sol.b * sol.k_b))
    lam = params.lambda_
    return ((1.0 + lam) / lam) * (mmd2 - float(xp.sum(sol.f * sol.gamma)))


def two_atom(D, pi, alpha, params) -> float:
    """DrMMD velocity (first axis) at the overcrowded atom of atoms at ``-D``, ``+D`` (docs/math.md#two-atoms).

    ``D`` is the half-separation, as in :mod:`wgfsim.analytic`.  Target masses
    ``(pi, 1-pi)``, particle masses ``(alpha, 1-alpha)`` on (left, right),
    ``kappa = exp(-2 D^2 / sigma^2)``, ``alpha <= pi`` (``alpha > pi`` mirrors
    it).  With ``delta = alpha - pi`` and
    ``Delta = (lambda + pi)(lambda + 1 - pi) - kappa^2 pi (1 - pi)``::

        u = h*(-D) = delta (1 - kappa) (lambda + 1 - pi + kappa (1 - pi)) / Delta
        v(+D) = -4 D kappa ((1 + lambda)/lambda) (pi (1 + u) - alpha)

    NaN unless the kernel is one Gaussian bandwidth.
    """
    if not single_gaussian(params):
        return math.nan
    if alpha > pi:
        return -two_atom(D, 1.0 - pi, 1.0 - alpha, params)
    sigma, lam = length_scale(params), params.lambda_
    kappa = math.exp(-2.0 * D * D / (sigma * sigma))
    big_delta = (lam + pi) * (lam + 1.0 - pi) - kappa * kappa * pi * (1.0 - pi)
    u = (alpha - pi) * (1.0 - kappa) * (lam + 1.0 - pi + kappa * (1.0 - pi)) / big_delta
    return -4.0 * D * kappa * ((1.0 + lam) / lam) * (pi * (1.0 + u) - alpha)


FLOW = register(
    Flow(
        name="drmmd",
        Params=Params,
        velocity=velocity,
        energy=energy,
        energy_name="DrMMD",
        summary="DrMMD flow: the mmd field with targets b + gamma, closed-form witness (Chen et al. 2025; Gretton et al. Sec. 4.2)",
        field_at=field_at,
        length_scale=length_scale,
        options_at_scale=lambda s: {"bandwidth": s},
        hyper="bandwidth",
        two_atom=two_atom,
        doc="docs/flows/drmmd.md",
        gap_decay=kernel_gap_decay,
        # the steps at which halving moved no half-time by more than 6 % (docs/results.md, critic flows)
        study_step=lambda p: 0.25 * p.lambda_ ** 0.4,
        field_at_is_velocity=True,
        # three dense (N + M)^2 Gram matrices below max_dense, matrix-free above
        memory=lambda n, m, d, p: ({"drmmd Gram matrices": 3.0 * 8 * (n + m) ** 2}
                                   if p.solver in ("auto", "dense") and n + m <= p.max_dense else {}),
        pairs=lambda n, m, d, p: float((n + m) ** 2 * 4),
        examples=(dict(bandwidth=0.8), dict(bandwidth=[0.5, 1.0], solver="cg"), dict(kernel="laplace")),
    )
)
