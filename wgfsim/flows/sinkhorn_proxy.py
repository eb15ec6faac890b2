"""Sinkhorn proxy (``sinkhorn_proxy``): Gretton et al. eq. 28-30, Algorithm 1.

One-shot geometric-mean pseudo-plans, normalised per block::

    G+_ij = exp(l(x_i,y_j)) / sqrt(r+_i c+_j)   r+_i = sum_j exp(l_ij),  c+_j = sum_i exp(l_ij)
    G-_ik = exp(l(x_i,x_k)) / sqrt(r-_i r-_k)   (symmetric block over the particles)
    S+_i = sum_j G+_ij,  S-_i = sum_k G-_ik
    W+ = G+ * S- (row-wise),  W- = G- * S+   (cross-weighting: equal row sums)
    v(x_i) = sqrt(N/M) [ sum_j W+_ij (y_j - x_i) - sum_k W-_ik (x_k - x_i) ]
           = sqrt(N/M) S+_i S-_i (m+_i - m-_i)

with ``m+-`` the barycentres of the normalised rows.  Everything is computed
in the log domain: ``log S+_i = LSE_j(l_ij - log(c+_j)/2) - log(r+_i)/2`` and
the row barycentre comes from the same primitive call (column offsets
``-log(c_j)/2``), so ``exp(l)`` never underflows even in float32 at small eps.
Several ``epsilon`` sum their fields.  Not a gradient flow (no energy).

Resolution at small eps: ``log S`` is a difference of log-sum-exps of size
``C/eps``, with ``C`` the largest soft-minimum cost ``-eps log r_i`` (about
the nearest-neighbour costs), so it carries an absolute rounding error of
about ``u C/eps`` (``u`` the unit roundoff of x's dtype).  Below
``eps_min = sqrt(u) C`` that error would exceed ``sqrt(u)`` and, from
``eps ~ u C`` on, swamp the result (inf or garbage); the field is therefore
evaluated at ``max(eps, eps_min)`` (:func:`resolvable_epsilon`).  This is the
``eps -> 0`` limit up to pairs whose cost gaps are below ``~40 eps_min``:
``G+_ij -> 1`` when ``x_i`` and ``y_j`` are mutual nearest neighbours and 0
otherwise, ``G-_ik -> [i == k]`` (``exclude_self = false``), so
``v_i -> sqrt(N/M) (y_j - x_i)`` for a mutual pair and 0 otherwise
(docs/math.md#sinkhorn-proxy).

Shapes: x (N, d), y (M, d) -> v (N, d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import primitives
from ..backend import array_namespace
from .. import analytic
from ._registry import Flow, register, sqrt_largest_epsilon, transport_gap_decay
from ._common import boolean, cost_of, positive_floats, set_frozen


@dataclass(frozen=True)
class Params:
    epsilon: float | tuple = 0.1
    cost: str = "sqeuclidean"
    exclude_self: bool = False

    def __post_init__(self):
        set_frozen(
            self,
            epsilon=positive_floats("sinkhorn_proxy", "epsilon", self.epsilon),
            cost=cost_of("sinkhorn_proxy", self.cost),
            exclude_self=boolean("sinkhorn_proxy", "exclude_self", self.exclude_self),
        )


def balanced_difference(x, y, row_log_plus, row_log_minus, col_log_plus, col_log_minus, eps, cost, exclude_self, backend, rows=None):
    """``S+ S- (m+ - m-)`` (N, d) for plans ``exp(l_ij - row_i/2 - col_j/2)`` on the blocks (x, y) and (x, x).

    ``row_log_*`` (N,) are the row normalisers ``log r_i`` of each block and
    ``col_log_plus`` (M,), ``col_log_minus`` (N,) the column normalisers.
    ``rows`` (G, d), when given, replaces the row points of both blocks
    (blocks (rows, y) and (rows, x), ``row_log_*`` of shape (G,), no self
    pair to exclude): the field at points that are not particles, with the
    particles' column normalisers (:func:`wgfsim.fields.field_at`).
    """
    xp = array_namespace(x)
    z, exclude = (x, exclude_self) if rows is None else (rows, False)
    lse_p, shift_p = primitives.lse_shift(z, y, -0.5 * col_log_plus, eps=eps, cost=cost, backend=backend)
    lse_m, shift_m = primitives.lse_shift(z, x, -0.5 * col_log_minus, eps=eps, cost=cost, exclude_diagonal=exclude, backend=backend)
    log_s = (lse_p - 0.5 * row_log_plus) + (lse_m - 0.5 * row_log_minus)  # log(S+ S-), (N,)
    return xp.exp(log_s)[:, None] * (shift_p - shift_m)


def resolvable_epsilon(eps: float, dtype, *log_normalisers) -> float:
    """``max(eps, sqrt(u) C)``: the smallest temperature whose log-domain plans are resolved.

    ``C = eps max |log r|`` over the finite entries of the normaliser arrays
    (row or column log-sum-exps at ``eps``): the largest soft-minimum cost,
    about the largest nearest-neighbour cost at small eps.  ``u`` is the unit
    roundoff of ``dtype``.  At the returned temperature the normalisers are
    of size at most ``C/eps <= 1/sqrt(u)``, so ``log S`` keeps an absolute
    error of about ``sqrt(u)`` (module docstring).
    """
    xp = array_namespace(*log_normalisers)
    size = 0.0
    for log_r in log_normalisers:
        finite = xp.abs(log_r[xp.isfinite(log_r)])
        if finite.shape[0] > 0:
            size = max(size, float(xp.max(finite)))
    return max(eps, math.sqrt(float(np.finfo(dtype).eps)) * eps * size)


def _normalisers(x, y, eps, params: Params, backend):
    """``(log r+ (N,), log c+ (M,), log r- (N,))`` at temperature eps; ``r-`` is also the column sum of the symmetric block."""
    kw = dict(eps=eps, cost=params.cost, backend=backend)
    log_r_plus = primitives.lse(x, y, **kw)  # (N,)
    log_c_plus = primitives.lse_cols(x, y, **kw)  # (M,)
    log_r_minus = primitives.lse(x, x, exclude_diagonal=params.exclude_self, **kw)  # (N,)
    return log_r_plus, log_c_plus, log_r_minus


def at_resolvable_epsilon(eps, dtype, normalisers):
    """``(eps', normalisers(eps', None))`` with ``eps' = resolvable_epsilon(eps, dtype, ...)``.

    ``normalisers(eps, cast)`` returns the log normalisers at ``eps``, the
    points cast to ``cast`` first when it is not None.  float32 normalisers
    overflow to ``-inf`` once ``C/eps > 3e38``; they are then sized in float64.
    """
    with np.errstate(over="ignore"):  # a float32 overflow is detected and handled just below
        norms = normalisers(eps, None)
    probe = norms
    if np.dtype(dtype) != np.float64:
        xp = array_namespace(*norms)
        if not all(bool(xp.all(xp.isfinite(r))) for r in norms):
            probe = normalisers(eps, np.float64)
    resolved = resolvable_epsilon(eps, dtype, *probe)
    if resolved > eps:
        # below the log domain's resolution: the eps -> 0 limit, evaluated where it is resolved
        return resolved, normalisers(resolved, None)
    return eps, norms


def _cast(arrays, dtype):
    if dtype is None:
        return arrays
    xp = array_namespace(*arrays)
    return [xp.astype(a, dtype) for a in arrays]


def velocity(x, y, a, b, params: Params, ctx):
    n, m = x.shape[0], y.shape[0]
    v = 0.0
    for eps in params.epsilon:
        eps, norms = at_resolvable_epsilon(
            eps, x.dtype, lambda e, dt: _normalisers(*_cast((x, y), dt), e, params, ctx.backend)
        )
        log_r_plus, log_c_plus, log_r_minus = norms
        v = v + math.sqrt(n / m) * balanced_difference(
            x, y, log_r_plus, log_r_minus, log_c_plus, log_r_minus, eps, params.cost, params.exclude_self, ctx.backend
        )
    return v


def field_at(z, x, y, a, b, params: Params, ctx):
    """The proxy field (K, d) at points ``z`` that are not particles, the particle system held fixed.

    ``z`` is the row: its normalisers ``r+(z) = sum_j e^{l(z,y_j)}`` and
    ``r-(z) = sum_k e^{l(z,x_k)}``; the column normalisers are the particle
    system's, ``c+_j = sum_i e^{l(x_i,y_j)}`` and ``r-_k = sum_i e^{l(x_i,x_k)}``
    (sums over the N particle rows, never over the points ``z``).  At
    ``z = x`` this is :func:`velocity` when ``exclude_self`` is false.
    Uniform weights (the proxy takes none).
    """
    n, m = x.shape[0], y.shape[0]

    def normalisers(eps, dtype):
        zc, xc, yc = _cast((z, x, y), dtype)
        kw = dict(eps=eps, cost=params.cost, backend=ctx.backend)
        return (
            primitives.lse_cols(xc, yc, **kw),  # (M,) over particle rows
            primitives.lse(xc, xc, exclude_diagonal=params.exclude_self, **kw),  # (N,)
            primitives.lse(zc, yc, **kw),  # (K,)
            primitives.lse(zc, xc, **kw),  # (K,)
        )

    v = 0.0
    for eps in params.epsilon:
        # the resolvable eps sees z's normalisers too; at z = x it is velocity's
        eps, (log_c_plus, log_r_minus_cols, log_r_plus_z, log_r_minus_z) = at_resolvable_epsilon(eps, x.dtype, normalisers)
        v = v + math.sqrt(n / m) * balanced_difference(
            x, y, log_r_plus_z, log_r_minus_z, log_c_plus, log_r_minus_cols, eps, params.cost, False, ctx.backend,
            rows=z,
        )
    return v


def two_atom(D, pi, alpha, params: Params) -> float:
    """The two-atom closed form (docs/math.md#two-atoms) with ``sigma = sqrt(eps)``, summed over epsilons."""
    if params.cost != "sqeuclidean" or params.exclude_self:
        return math.nan
    return float(sum(analytic.two_atom_sinkhorn_proxy(D, math.sqrt(e), pi, alpha) for e in params.epsilon))


FLOW = register(
    Flow(
        name="sinkhorn_proxy",
        Params=Params,
        velocity=velocity,
        weights=False,
        summary="one-shot geometric-mean Sinkhorn proxy (Gretton et al. eq. 28-30, Algorithm 1)",
        field_at=field_at,
        length_scale=sqrt_largest_epsilon,
        options_at_scale=lambda s: {"epsilon": s * s},
        hyper="epsilon",
        two_atom=two_atom,
        doc="docs/flows/sinkhorn_proxy.md",
        # the kernel exp(-c/eps): exp(-s^2/(2 eps)) for the squared cost, exp(-s/eps) for the Euclidean one
        gap_decay=lambda p: (("gaussian", math.sqrt(max(p.epsilon))) if p.cost == "sqeuclidean"
                             else ("laplace", float(max(p.epsilon)))),
        field_at_is_velocity=True,
        pairs=lambda n, m, d, p: float(len(p.epsilon) * 3 * (n * m + n * n)),
        examples=(dict(epsilon=[0.1, 0.5]), dict(cost="euclidean", exclude_self=True)),
    )
)
