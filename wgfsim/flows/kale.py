"""KALE flow (``kale``): Glaser, Arbel & Gretton 2021; Gretton et al. Section 4.2 (docs/math.md#kale).

The flow descends ``KALE(q || p)``, a regularised dual of ``KL(q || p)`` over
the RKHS of the kernel ``k``::

    KALE(q || p) = (1 + lambda) max_h { 1 + int h dq - int exp(h) dp - (lambda/2) |h|_H^2 }

The maximiser is ``h*(z) = (1/lambda) [sum_i a_i k(z, x_i) - sum_j beta_j k(z, y_j)]``
with ``beta`` (M,) the minimiser of the strictly convex dual::

    J(beta) = sum_j [beta_j log(beta_j / b_j) - beta_j] + |mu_q - sum_j beta_j k(., y_j)|_H^2 / (2 lambda)

whose optimality condition is ``beta_j = b_j exp(h*(y_j))``.  ``KALE = (1 + lambda)(1 + J(beta*))``.
The velocity (first variation ``(1 + lambda) h*``, times ``sigma^2``) is the
``mmd`` field with the target weights ``b`` replaced by ``beta*``::

    v(z) = ((1 + lambda)/lambda) [sum_j beta*_j k(z, y_j)(y_j - z) - sum_i a_i k(z, x_i)(x_i - z)]

The solve is Newton's method on ``J`` with an Armijo backtracking line search
(the reference's ``newton_method``, but taking the full step when it is
admissible), stored in the log domain ``beta = b exp(u)`` so that small
``lambda`` (``u = h*(Y) = O(1/lambda)``) never underflows to a zero weight:
the field passes ``g = log b + u`` to the fused primitive directly.  Each
Newton system ``(diag(1/beta) + K_yy/lambda) delta = grad J`` is solved in
the symmetric form ``(I + D K_yy D / lambda) w = D grad J``, ``D = diag(sqrt beta)``,
``delta = D w``: densely (Cholesky, ``M <= max_dense``) or by conjugate
gradients with kernel products through the primitive (memory O(N + M)).
The cold start ``beta = b`` makes the first full Newton step the ``drmmd``
coefficients ``b + gamma``; later calls warm-start from the previous
``h*`` evaluated at the current targets (the previous ``u`` when the targets
did not move).

Several bandwidths mean ONE solve with the summed kernel ``sum_s k_s``; the
field is then the sum over ``s`` of the pulls, each carrying its own
``sigma_s^2`` as in ``mmd`` (so ``lambda -> infinity`` gives the ``mmd``
field exactly).  Laplace kernel: unit vectors, ``-h grad``, as in ``mmd``.

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import primitives
from ..backend import array_namespace, to_numpy
from ..primitives import dense
from ..errors import OptionError
from ._registry import Flow, kernel_gap_decay, register, transport_gap_decay
from ._common import KERNELS, bandwidths, boolean, log_weights, one_of, positive_floats, positive_int, set_frozen
from .mmd import kernel_pull

SOLVERS = ("auto", "dense", "cg")
ARMIJO = 0.4  # sufficient decrease fraction (the reference's a)
SHRINK = 0.8  # backtracking factor (the reference's b)
PURE_NEWTON = 1e-8  # below this decrement/2, full Newton steps without a line search


def positive_float(flow: str, option: str, value, allow_zero: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        expected = "a non-negative number" if allow_zero else "a positive number"
        raise OptionError(flow, option, value, expected)
    return float(value)


@dataclass(frozen=True)
class Params:
    lambda_: float = 1.0  # the regularisation lambda of the papers (``lambda`` is a Python keyword)
    bandwidth: float | tuple | str = 1.0
    kernel: str = "gaussian"
    tol: float = 1e-20  # stop when the Newton decrement g'H^-1 g / 2 (~ sum_j beta_j (log-error_j)^2 / 2) falls below it
    max_iter: int = 100
    warm_start: bool = True
    solver: str = "auto"  # "dense" (Cholesky), "cg" (matrix-free), "auto": dense up to max_dense targets
    max_dense: int = 4096
    noise: float = 0.0  # noise injection (Arbel et al. 2019): evaluate the field at x + noise * N(0, I)

    def __post_init__(self):
        set_frozen(
            self,
            lambda_=positive_float("kale", "lambda_", self.lambda_),
            bandwidth=positive_floats("kale", "bandwidth", self.bandwidth, allow_median=True),
            kernel=one_of("kale", "kernel", self.kernel, KERNELS),
            tol=positive_float("kale", "tol", self.tol),
            max_iter=positive_int("kale", "max_iter", self.max_iter),
            warm_start=boolean("kale", "warm_start", self.warm_start),
            solver=one_of("kale", "solver", self.solver, SOLVERS),
            max_dense=positive_int("kale", "max_dense", self.max_dense),
            noise=positive_float("kale", "noise", self.noise, allow_zero=True),
        )


# ---------------------------------------------------------------- the kernel K = sum_s k_s on the targets


class TargetKernel:
    """Products with the summed kernel ``K = sum_s k_s`` in float64, dense or through the primitive.

    ``sums(z, pts, log_w)`` (K,) is ``sum_j w_j K(z, p_j)`` for positive
    weights given as logs; ``matvec(v)`` (M,) is ``K_yy v`` for signed ``v``
    (two primitive passes, or the dense matrix when ``dense``).
    """

    def __init__(self, flow: str, y, params, x, solver: str, max_dense: int, backend: str):
        m = y.shape[0]
        cost, temperature = KERNELS[params.kernel]
        self.cost, self.backend = cost, backend
        self.eps = tuple(temperature(s) for s in bandwidths(params.bandwidth, x, y))
        self.xp = array_namespace(y)
        self.y = self.xp.astype(y, self.xp.float64)
        if solver == "dense" and m > max_dense:
            raise ValueError(
                f"{flow}: M = {m} targets exceeds max_dense={max_dense} (the dense M x M solve holds M^2 numbers "
                f"and costs M^3); use solver='cg' (matrix-free, memory O(N + M)), solver='auto', or raise max_dense"
            )
        self.dense = solver == "dense" or (solver == "auto" and m <= max_dense)
        self.K = None
        if self.dense:
            c = dense.cost_matrix(to_numpy(self.y), to_numpy(self.y), cost)  # (M, M) host float64
            self.K = sum(np.exp(-c / e) for e in self.eps)  # (M, M)

    def sums(self, z, pts, log_w):
        xp = self.xp
        z, pts, log_w = (xp.astype(t, xp.float64) for t in (z, pts, log_w))
        return sum(xp.exp(primitives.lse(z, pts, log_w, eps=e, cost=self.cost, backend=self.backend)) for e in self.eps)

    def matvec(self, v):
        if self.dense:
            return self.K @ v
        xp = self.xp
        out = xp.zeros_like(v)
        with np.errstate(divide="ignore"):
            for part, sign in ((xp.where(v > 0, v, 0.0), 1.0), (xp.where(v < 0, -v, 0.0), -1.0)):
                if bool(xp.any(part > 0)):
                    out = out + sign * self.sums(self.y, self.y, xp.log(part))
        return out

    def diag(self):
        return float(len(self.eps))  # k_s(y, y) = 1 for the Gaussian and Laplace kernels

    def host(self, v):
        """Arrays of the solve live on the host for the dense path, on the device otherwise."""
        return to_numpy(v) if self.dense else v


def spd_solve(K: TargetKernel, d, shift: float, scale: float, rhs, tol: float = 1e-13, max_iter: int | None = None):
    """``w`` (M,) solving ``(shift I + D K D / scale) w = rhs`` with ``D = diag(d)``: Cholesky or Jacobi-preconditioned CG."""
    if K.dense:
        import scipy.linalg

        A = (d[:, None] * K.K * d[None, :]) / scale  # (M, M)
        A[np.diag_indices_from(A)] += shift
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(A, lower=True), rhs)
    xp = K.xp
    precond = 1.0 / (shift + d * d * K.diag() / scale)  # (M,)

    def apply(w):
        return shift * w + d * K.matvec(d * w) / scale

    w = xp.zeros_like(rhs)
    r = rhs - apply(w)
    zr = precond * r
    p = zr
    rz = float(xp.sum(r * zr))
    target = tol * float(xp.sqrt(xp.sum(rhs * rhs)))
    for _ in range(max_iter or max(200, 10 * rhs.shape[0])):
        if math.sqrt(float(xp.sum(r * r))) <= target:
            break
        Ap = apply(p)
        step = rz / float(xp.sum(p * Ap))
        w = w + step * p
        r = r - step * Ap
        zr = precond * r
        rz_new = float(xp.sum(r * zr))
        p = zr + (rz_new / rz) * p
        rz = rz_new
    return w


# ---------------------------------------------------------------- the dual and its Newton solve


def _phi(u, xp):
    """``u e^u - e^u + 1`` (>= 0) without cancellation: ``beta log(beta/b) - beta + b = b phi(u)`` for ``beta = b e^u``."""
    small = xp.abs(u) < 1e-3
    us = xp.where(small, u, 0.0)
    series = us * us * (0.5 + us * (1.0 / 3.0 + us * (1.0 / 8.0 + us / 30.0)))
    ul = xp.where(small, 0.0, u)
    return xp.where(small, series, ul * xp.exp(ul) - xp.expm1(ul))


@dataclass
class Solution:
    """The solved dual: ``log_beta = log b + u`` (M,), ``u = h*(Y)`` at the optimum, and what the value needs."""

    u: object
    log_b: object
    c: object  # K_yx a (M,)
    k_beta: object  # K_yy beta (M,)
    iterations: int
    decrement: float  # g' H^-1 g at the last iterate

    @property
    def beta(self):
        xp = array_namespace(self.u)
        return xp.exp(self.log_b + self.u)


def _move(u, r, xp):
    """``u + phi(r)``: ``phi(r) = -r`` where ``r > 0`` (a log-weight falls linearly, so a weight bound
    to underflow gets there in one step) and ``log(1 - r)`` where ``r <= 0`` (a weight grows at most
    like ``1 + |r|``, the beta-space Newton step, so it never overshoots exponentially).  ``phi(r) = -r + O(r^2)``."""
    return u + xp.where(r > 0, -r, xp.log1p(-xp.minimum(r, 0.0)))


def newton(K: TargetKernel, c, log_b, u0, lam: float, tol: float, max_iter: int) -> Solution:
    """Minimise ``J(b e^u)`` over ``u`` (M,) by a damped Newton method with Armijo backtracking.

    ``c = K_yx a`` (M,).  Gradient in beta ``g = log(beta/b) - (c - K beta)/lambda``
    (the KKT residual ``u - h(Y)``), Hessian ``H = diag(1/beta) + K/lambda``.
    The Newton step ``delta = H^-1 g`` comes from the symmetric system of
    :func:`spd_solve`; ``s = delta/beta = g - K delta/lambda``, obtained
    without dividing by a vanishing ``beta``, is also the Newton step of the
    root problem ``u - h(Y) = 0`` in ``u``.  The iterate moves along
    ``u + phi(t s)`` (:func:`_move`), a curve with the Newton direction at
    ``t = 0``, so Armijo's test ``J <= J0 - 0.4 t g'delta`` applies; its
    linear branch lets a log-weight fall by hundreds in one step when
    ``lambda`` is small, where steps in ``beta`` crawl.  The stopping rule is
    the reference's: the Newton decrement ``g'H^-1 g / 2 <= tol``.
    """
    xp = array_namespace(u0)
    b = xp.exp(log_b)

    def objective(u):  # J up to the constant a'K_xx a/(2 lambda) - 1, with K beta for reuse
        beta = xp.exp(log_b + u)
        kb = K.matvec(beta)
        return float(xp.sum(b * _phi(u, xp)) + xp.sum(beta * (0.5 * kb - c)) / lam), kb

    u = u0
    j, kb = objective(u)
    dec = dec_prev = math.inf
    it = 0
    for it in range(max_iter + 1):
        beta = xp.exp(log_b + u)
        g = u - (c - kb) / lam  # (M,)
        d = xp.sqrt(beta)
        w = spd_solve(K, d, 1.0, lam, d * g)
        delta = d * w  # (M,) = H^-1 g
        dec = float(xp.sum(g * delta))
        if dec / 2 <= tol or it == max_iter:
            break
        s = g - K.matvec(delta) / lam  # delta / beta
        if dec / 2 < PURE_NEWTON:
            if dec >= dec_prev:  # the decrement stopped falling: rounding, not the method, limits it
                break
            dec_prev = dec
            # inside the region of quadratic convergence the full step is taken unchecked: the
            # decrease it brings (~dec) is below the rounding of J, so Armijo could not see it
            u = _move(u, s, xp)
            j, kb = objective(u)
            continue
        t = 1.0
        while t > 1e-12:
            u_new = _move(u, t * s, xp)
            j_new, kb_new = objective(u_new)
            if j_new <= j - ARMIJO * t * dec:
                break
            t *= SHRINK
        else:  # no decrease is representable: the iterate is optimal to rounding
            break
        u, j, kb = u_new, j_new, kb_new
    if dec / 2 > max(tol, PURE_NEWTON):
        from ..errors import ConvergenceError

        raise ConvergenceError(
            f"kale: Newton's method stopped with decrement/2 = {dec / 2:.3g} > tol = {tol:g} after {it} iterations "
            f"(lambda_ = {lam:g}); raise max_iter, or a larger lambda_ makes the dual better conditioned"
        )
    return Solution(u=u, log_b=log_b, c=c, k_beta=kb, iterations=it, decrement=dec)


def solve(x, y, a, b, params: Params, ctx, key: str = "kale") -> tuple[TargetKernel, Solution]:
    """Solve the KALE dual for particles ``(x, a)`` and targets ``(y, b)``, warm-started from ``ctx.state[key]``."""
    xp = array_namespace(x)
    n, m = x.shape[0], y.shape[0]
    f64 = xp.float64
    K = TargetKernel("kale", y, params, x, params.solver, params.max_dense, ctx.backend)
    la = xp.astype(log_weights(a, n, x), f64)  # (N,)
    log_b = xp.astype(log_weights(b, m, x), f64)  # (M,)
    x64 = xp.astype(x, f64)
    lam = params.lambda_
    c = K.sums(K.y, x64, la)  # (M,) K_yx a
    u0 = xp.zeros((m,), dtype=f64)  # beta = b: the first full step is the drmmd coefficients
    prev = ctx.state.get(key) if params.warm_start else None
    if prev is not None and len(prev) == 5 and prev[0].shape[1] == x.shape[1]:
        x_prev, la_prev, y_prev, lb_prev, u_prev = prev
        if y_prev.shape == K.y.shape and bool(xp.all(y_prev == K.y)) and bool(xp.all(lb_prev == log_b)):
            u0 = u_prev  # same targets: reuse u = h*(Y) by index
        else:  # new targets: the previous critic h* evaluated at them
            u0 = (K.sums(K.y, x_prev, la_prev) - K.sums(K.y, y_prev, lb_prev + u_prev)) / lam
        if not bool(xp.all(xp.isfinite(u0))):
            u0 = xp.zeros((m,), dtype=f64)
    host = K.host
    sol = newton(K, host(c), host(log_b), host(u0), lam, params.tol, params.max_iter)
    sol.u, sol.log_b, sol.c, sol.k_beta = (xp.asarray(t, dtype=f64) for t in (sol.u, sol.log_b, sol.c, sol.k_beta))
    ctx.state[key] = (xp.asarray(x64, copy=True), la, K.y, log_b, sol.u)  # copies: callers may update x in place
    ctx.state[f"{key}_iterations"] = sol.iterations
    ctx.state[f"{key}_decrement"] = sol.decrement
    return K, sol


# ---------------------------------------------------------------- field, velocity, energy


def weighted_field(z, x, y, la, log_c, params, backend):
    """``sum_s [sum_j c_j k_s(z, y_j) u(y_j - z) - sum_i a_i k_s(z, x_i) u(x_i - z)]`` (K, d), c = exp(log_c) > 0."""
    cost, temperature = KERNELS[params.kernel]
    v = 0.0
    for s in bandwidths(params.bandwidth, x, y):
        eps = temperature(s)
        v = v + kernel_pull(z, y, log_c, eps, cost, backend) - kernel_pull(z, x, la, eps, cost, backend)
    return v


def field_at(z, x, y, a, b, params: Params, ctx):
    """The KALE field (K, d) at points ``z`` (K, d), ``h*`` solved for the particles ``(x, a)`` and targets ``(y, b)``."""
    xp = array_namespace(x)
    _, sol = solve(x, y, a, b, params, ctx)
    la = log_weights(a, x.shape[0], x)
    log_beta = xp.astype(sol.log_b + sol.u, x.dtype)  # log beta*, finite even where beta* underflows
    lam = params.lambda_
    return ((1.0 + lam) / lam) * weighted_field(z, x, y, la, log_beta, params, ctx.backend)


def velocity(x, y, a, b, params: Params, ctx):
    z = x
    if params.noise > 0:  # h* from the unperturbed particles, evaluated at perturbed ones (one draw per particle)
        xp = array_namespace(x)
        z = x + params.noise * xp.asarray(ctx.rng.standard_normal(x.shape), dtype=x.dtype)
    return field_at(z, x, y, a, b, params, ctx)


def value(K: TargetKernel, sol: Solution, x, a, lam: float) -> float:
    """``KALE = (1 + lambda) (1 + J(beta*))`` with ``1 + J = sum_j b_j phi(u_j) + |mu_q - mu_beta|^2 / (2 lambda)``."""
    xp = array_namespace(sol.u)
    f64 = xp.float64
    x64 = xp.astype(x, f64)
    la = xp.astype(log_weights(a, x.shape[0], x), f64)
    aw = xp.exp(la)
    akka = float(xp.sum(aw * K.sums(x64, x64, la)))  # a'K_xx a
    beta = sol.beta
    b = xp.exp(sol.log_b)
    norm2 = akka - 2.0 * float(xp.sum(beta * sol.c)) + float(xp.sum(beta * sol.k_beta))
    return (1.0 + lam) * (float(xp.sum(b * _phi(sol.u, xp))) + 1.0 - float(xp.sum(b)) + norm2 / (2.0 * lam))


def energy(x, y, a, b, params: Params, ctx):
    K, sol = solve(x, y, a, b, params, ctx)
    return value(K, sol, x, a, params.lambda_)


def length_scale(params) -> float:
    """The largest kernel bandwidth (sigma or h), as for ``mmd``; NaN for ``"median"`` (data-dependent)."""
    bw = params.bandwidth
    return math.nan if isinstance(bw, str) else float(max(bw))


def single_gaussian(params) -> bool:
    """One fixed Gaussian bandwidth: where the two-atom closed forms hold (k(x, x) = 1)."""
    return params.kernel == "gaussian" and not isinstance(params.bandwidth, str) and len(params.bandwidth) == 1


def two_atom(D, pi, alpha, params) -> float:
    """KALE velocity (first axis) at the overcrowded atom of atoms at ``-D``, ``+D`` (docs/math.md#two-atoms).

    ``D`` is the half-separation, as in :mod:`wgfsim.analytic`.  Target masses
    ``(pi, 1-pi)``, particle masses ``(alpha, 1-alpha)`` on (left, right);
    ``kappa = exp(-2 D^2 / sigma^2)``.  The dual collapses to two unknowns
    ``beta_L, beta_R`` (the solve of this module on the two atoms), and with
    ``alpha <= pi`` the right atom is overcrowded::

        v(+D) = -2 D kappa ((1 + lambda)/lambda) (beta_L - alpha)

    ``alpha > pi`` mirrors it.  NaN unless the kernel is one Gaussian bandwidth.
    """
    if not single_gaussian(params):
        return math.nan
    if alpha > pi:
        return -two_atom(D, 1.0 - pi, 1.0 - alpha, params)
    from . import Context

    pts = np.array([[-D], [D]])
    p = Params(**{**params.__dict__, "solver": "dense", "warm_start": False, "noise": 0.0})
    _, sol = solve(pts, pts, np.array([alpha, 1.0 - alpha]), np.array([pi, 1.0 - pi]), p, Context("numpy", np.random.default_rng(0)))
    sigma = length_scale(params)
    kappa = math.exp(-2.0 * D * D / (sigma * sigma))
    lam = params.lambda_
    return -2.0 * D * kappa * ((1.0 + lam) / lam) * (float(to_numpy(sol.beta)[0]) - alpha)


FLOW = register(
    Flow(
        name="kale",
        Params=Params,
        velocity=velocity,
        energy=energy,
        energy_name="KALE",
        summary="KALE flow: the mmd field with dual-reweighted targets beta* (Glaser et al. 2021; Gretton et al. Sec. 4.2)",
        field_at=field_at,
        length_scale=length_scale,
        options_at_scale=lambda s: {"bandwidth": s},
        hyper="bandwidth",
        two_atom=two_atom,
        doc="docs/flows/kale.md",
        gap_decay=kernel_gap_decay,
        # the steps at which halving moved no half-time by more than 6 % (docs/results.md, critic flows)
        study_step=lambda p: 0.5 * p.lambda_ ** 0.4,
        field_at_is_velocity=True,
        # three dense (N + M)^2 Gram matrices below max_dense, matrix-free above
        memory=lambda n, m, d, p: ({"kale Gram matrices": 3.0 * 8 * (n + m) ** 2}
                                   if p.solver in ("auto", "dense") and n + m <= p.max_dense else {}),
        pairs=lambda n, m, d, p: float((n + m) ** 2 * p.max_iter),
        examples=(dict(bandwidth=0.8), dict(bandwidth=[0.5, 1.0], solver="cg"), dict(kernel="laplace")),
    )
)
