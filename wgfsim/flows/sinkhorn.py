"""Sinkhorn divergence flow (``sinkhorn``): Gretton et al. eq. 26-27 and 66.

``S_eps(q, p) = OT_eps(q, p) - OT_eps(q, q)/2 - OT_eps(p, p)/2``.  With the
row-stochastic conditional plans ``P^xy`` and ``P^xx`` of the converged
log-domain Sinkhorn problems ``OT_eps(q, p)`` and ``OT_eps(q, q)``::

    v(x_i) = sum_j P^xy_ij (y_j - x_i) - sum_k P^xx_ik (x_k - x_i)
           = -grad_x [ f_qp - f_qq ](x_i)

Log-domain updates (``la = log a``, ``lb = log b``), each one primitive call::

    f_i = -eps * LSE_j( lb_j + (g_j - C_ij)/eps )
    g_j = -eps * LSE_i( la_i + (f_i - C_ij)/eps )
    P_ij = softmax_j( lb_j + (g_j - C_ij)/eps )

The self problem uses the symmetric update ``f <- (f + T(f))/2``.  Iterations
stop when the marginal error ``sum_i a_i |exp((f_i - T(g)_i)/eps) - 1|`` of
both problems falls below ``tol``, or after ``max_iter`` (the paper used
100); stopping at ``max_iter`` with the tolerance unmet warns
(:class:`wgfsim.errors.ConvergenceWarning`, naming the iterations and the
error), and a run records both per stored step (``sinkhorn_iterations``,
``sinkhorn_error``).  A bound :class:`wgfsim.flows.Field` keeps the potentials between calls
and moves them onto the next call's points by c-transforms (warm start);
``scaling`` in (0, 1) anneals eps from the squared diameter on a cold start
(eps-scaling).  With ``cost="euclidean"`` the displacements are
unit vectors (the gradient of ``|x - y|``).

Energy: ``S_eps = <a, f_qp> + <b, g_qp> - <a, f_qq> - <b, f_pp>``.

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import primitives
from ..backend import array_namespace
from ..errors import OptionError, number
from ._registry import Flow, register, sqrt_largest_epsilon, transport_gap_decay
from ._common import boolean, cost_of, log_weights, positive_floats, positive_int, set_frozen, weights


@dataclass(frozen=True)
class Params:
    epsilon: float | tuple = 0.01
    cost: str = "sqeuclidean"
    tol: float = 1e-6
    max_iter: int = 100
    scaling: float | None = None
    warm_start: bool = True

    def __post_init__(self):
        if self.scaling is not None and (isinstance(self.scaling, bool) or not isinstance(self.scaling, (int, float))
                                         or not 0 < self.scaling < 1):
            raise OptionError("sinkhorn", "scaling", self.scaling, "a number in (0, 1) or none")
        set_frozen(
            self,
            epsilon=positive_floats("sinkhorn", "epsilon", self.epsilon),
            cost=cost_of("sinkhorn", self.cost),
            max_iter=positive_int("sinkhorn", "max_iter", self.max_iter),
            tol=number("sinkhorn", "tol", self.tol, minimum=0, open_minimum=True),
            warm_start=boolean("sinkhorn", "warm_start", self.warm_start),
        )


def _softmin(x, y, log_w, pot, eps, cost, backend, exclude_diagonal=False):
    """``-eps LSE_j(log_w_j + (pot_j - C_ij)/eps)`` (N,): the c-transform, one primitive call."""
    return -eps * primitives.lse(x, y, log_w + pot / eps, eps=eps, cost=cost, backend=backend)


def _marginal_error(a, f_old, f_new, eps):
    """``sum_i a_i |exp((f_old_i - f_new_i)/eps) - 1|`` as a 0-d array of the inputs' device (no sync)."""
    xp = array_namespace(f_old)
    with np.errstate(over="ignore"):  # a far start overflows to inf: "not converged", not a fault
        return xp.sum(a * xp.abs(xp.expm1((f_old - f_new) / eps)))


# Iterations between convergence checks on a GPU: reading the error back (float()) blocks the host
# until the device is done and stalls the launch queue, so it happens only every few iterations
# (then at most CHECK_EVERY - 1 iterations run past tol).  NumPy arrays are checked every iteration.
CHECK_EVERY = 10


def _check_every(x) -> int:
    return 1 if isinstance(x, np.ndarray) else CHECK_EVERY


def _squared_diameter(x, y):
    xp = array_namespace(x)
    lo = xp.minimum(xp.min(x, axis=0), xp.min(y, axis=0))
    hi = xp.maximum(xp.max(x, axis=0), xp.max(y, axis=0))
    return float(xp.sum((hi - lo) ** 2))


def solve(x, y, a, b, eps, cost, *, tol=1e-6, max_iter=100, scaling=None, init=None, self_problem=True, backend="auto"):
    """Converge the cross problem OT_eps(q, p) and (optionally) the self problem OT_eps(q, q) together.

    Returns ``(f_xy (N,), g_xy (M,), f_xx (N,) or None, iterations, error)``.
    ``init`` = (g_xy, f_xx) warm-starts both; ``None`` starts cold.
    """
    xp = array_namespace(x)
    n, m = x.shape[0], y.shape[0]
    la, lb = log_weights(a, n, x), log_weights(b, m, x)
    aw = weights(a, n, x)
    if init is None:
        g = xp.zeros((m,), dtype=x.dtype)
        fxx = xp.zeros((n,), dtype=x.dtype) if self_problem else None
        if scaling is not None:
            # eps-scaling: a few sweeps at decreasing temperatures give a warm start at eps
            e = max(eps, 0.5 * _squared_diameter(x, y) if cost == "sqeuclidean" else math.sqrt(_squared_diameter(x, y)))
            while e > eps:
                f = _softmin(x, y, lb, g, e, cost, backend)
                g = -e * primitives.lse_cols(x, y, la + f / e, eps=e, cost=cost, backend=backend)
                if self_problem:
                    fxx = 0.5 * (fxx + _softmin(x, x, la, fxx, e, cost, backend))
                e *= scaling
    else:
        g, fxx = init
    f = _softmin(x, y, lb, g, eps, cost, backend)
    err = math.inf
    it = 0
    every = _check_every(x)
    for it in range(1, max_iter + 1):
        g = -eps * primitives.lse_cols(x, y, la + f / eps, eps=eps, cost=cost, backend=backend)  # (M,)
        f_new = _softmin(x, y, lb, g, eps, cost, backend)  # (N,)
        e = _marginal_error(aw, f, f_new, eps)  # 0-d, on the device
        f = f_new
        if self_problem:
            t = _softmin(x, x, la, fxx, eps, cost, backend)  # (N,)
            e = xp.maximum(e, _marginal_error(aw, fxx, t, eps))
            fxx = 0.5 * (fxx + t)
        if it % every == 0 or it == max_iter:
            err = float(e)  # the only host sync of the loop
            if err < tol:
                break
    return f, g, fxx, it, err


def self_potential(x, a, eps, cost, *, tol=1e-9, max_iter=10_000, backend="auto"):
    """The symmetric potential of OT_eps(q, q) by ``f <- (f + T(f))/2`` (N,)."""
    xp = array_namespace(x)
    n = x.shape[0]
    la, aw = log_weights(a, n, x), weights(a, n, x)
    f = xp.zeros((n,), dtype=x.dtype)
    every = _check_every(x)
    for it in range(1, max_iter + 1):
        t = _softmin(x, x, la, f, eps, cost, backend)
        e = _marginal_error(aw, f, t, eps)
        f = 0.5 * (f + t)
        if it % every == 0 and float(e) < tol:
            break
    return f


def _extend(state, x, y, eps, cost, backend):
    """Warm start ``(g on y, f_xx on x)`` from the previous call's potentials, moved onto the new points.

    The previous call left ``(x0, la0, f0, fxx0)``: its points, log weights,
    cross potential on ``x0`` and self potential.  Entropic potentials are
    functions, extended off their support by the c-transform (Feydy et al.
    2019, eq. 8)::

        g(y_j)   = -eps LSE_i( la0_i + (f0_i   - C(x0_i, y_j))/eps )
        f_xx(x_k) = -eps LSE_i( la0_i + (fxx0_i - C(x0_i, x_k))/eps )

    so the start is right whether the particles moved a little (particle
    method) or every point is fresh (generator latents, target minibatches),
    where reusing potentials by index would pair each value with a stranger.
    """
    x0, la0, f0, fxx0 = state
    return _softmin(y, x0, la0, f0, eps, cost, backend), _softmin(x, x0, la0, fxx0, eps, cost, backend)


def velocity(x, y, a, b, params: Params, ctx):
    xp = array_namespace(x)
    n, m = x.shape[0], y.shape[0]
    la, lb = log_weights(a, n, x), log_weights(b, m, x)
    unit = params.cost == "euclidean"
    v = 0.0
    iterations, error = 0, 0.0
    for eps in params.epsilon:
        key = f"sinkhorn/{eps!r}"  # the carried state's keys are strings (a checkpoint stores them as they are)
        state = ctx.state.get(key) if params.warm_start else None
        if state is not None and (len(state) != 4 or state[0].dtype != x.dtype or state[0].shape[1] != x.shape[1]):
            state = None  # another dtype or dimension: cold start
        init = None if state is None else _extend(state, x, y, eps, params.cost, ctx.backend)
        f, g, fxx, it, err = solve(
            x, y, a, b, eps, params.cost, tol=params.tol, max_iter=params.max_iter,
            scaling=params.scaling, init=init, backend=ctx.backend,
        )
        ctx.state[key] = (xp.asarray(x, copy=True), la, f, fxx)  # a copy: callers may update x in place
        iterations, error = max(iterations, it), max(error, err)
        if not err < params.tol:
            _warn_unconverged(eps, it, err, params)
        # P^xy_ij = softmax_j(lb_j + (g_j - C_ij)/eps), P^xx_ik = softmax_k(la_k + (fxx_k - C_ik)/eps)
        pull = primitives.lse_shift(x, y, lb + g / eps, eps=eps, cost=params.cost, unit=unit, backend=ctx.backend)[1]
        push = primitives.lse_shift(x, x, la + fxx / eps, eps=eps, cost=params.cost, unit=unit, backend=ctx.backend)[1]
        v = v + pull - push
    # what the run records per stored step (largest over the epsilons): sinkhorn_iterations, sinkhorn_error
    ctx.state["sinkhorn_iterations"] = iterations
    ctx.state["sinkhorn_error"] = error
    return v


def _warn_unconverged(eps, it, err, params) -> None:
    """A :class:`~wgfsim.errors.ConvergenceWarning` naming the iterations used and the marginal error reached."""
    import warnings

    from ..errors import ConvergenceWarning

    warnings.warn(ConvergenceWarning(
        f"sinkhorn: epsilon = {eps:g} stopped at max_iter = {params.max_iter} ({it} iterations) with marginal error "
        f"{err:.3g} > tol = {params.tol:g}; the field may be far from the converged one: raise max_iter, or use "
        "scaling (eps-scaling) or a larger epsilon (a run's warm starts converge over steps)"), stacklevel=4)


def divergence(x, y, a, b, eps, cost="sqeuclidean", *, tol=1e-9, max_iter=10_000, backend="auto"):
    """The debiased Sinkhorn divergence ``S_eps(q, p)`` (float), solved to ``tol``."""
    xp = array_namespace(x)
    n, m = x.shape[0], y.shape[0]
    aw, bw = weights(a, n, x), weights(b, m, x)
    f, g, fxx, _, _ = solve(x, y, a, b, eps, cost, tol=tol, max_iter=max_iter, backend=backend)
    fyy = self_potential(y, b, eps, cost, tol=tol, max_iter=max_iter, backend=backend)
    return float(xp.sum(aw * (f - fxx)) + xp.sum(bw * (g - fyy)))


def energy(x, y, a, b, params: Params, ctx):
    # solved cold to the flow's own tolerance (at least 10x its per-step iterations): the
    # energy is as accurate as the field that descends it, and affordable at every record
    return sum(
        divergence(x, y, a, b, eps, params.cost, tol=params.tol, max_iter=10 * params.max_iter, backend=ctx.backend)
        for eps in params.epsilon
    )


FLOW = register(
    Flow(
        name="sinkhorn",
        Params=Params,
        velocity=velocity,
        energy=energy,
        energy_name="S_eps",
        summary="debiased Sinkhorn divergence flow (Gretton et al. eq. 26-27, 66)",
        length_scale=sqrt_largest_epsilon,
        options_at_scale=lambda s: {"epsilon": s * s},
        hyper="epsilon",
        doc="docs/flows/sinkhorn.md",
        study_options=lambda dim: {"max_iter": 100},  # the paper's iterations per step, warm-started
        gap_decay=transport_gap_decay,
        pairs=lambda n, m, d, p: float(len(p.epsilon) * ((p.max_iter + 1) * (2 * n * m + n * n))),
        no_two_atom="the debiased Sinkhorn field between two atoms has no closed form at finite epsilon",
        diagnostics=(("sinkhorn_iterations", "Sinkhorn iterations the field of this step used (largest over "
                      "epsilons; NaN for runs of other flows)", "1"),
                     ("sinkhorn_error", "Sinkhorn marginal error reached at this step (largest over epsilons; "
                      "converged when below the flow's tol, see flow_params)", "1")),
        examples=(dict(epsilon=0.1, max_iter=30, tol=1e-30), dict(epsilon=0.1, cost="euclidean", max_iter=30, tol=1e-30),
                  dict(epsilon=0.05, scaling=0.5, max_iter=20, tol=1e-30)),
    )
)
