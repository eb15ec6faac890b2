"""The one primitive: fused log-sum-exp and barycentre over pairs (docs/math.md#primitive).

For points ``x`` (N, d), ``y`` (M, d), column offsets ``g`` (M,) and the logits
``l(x, y) = -c(x, y) / eps`` of a cost (``sqeuclidean``: ``|x-y|^2/2``,
``euclidean``: ``|x-y|``)::

    lse_i   = log sum_j exp(g_j + l(x_i, y_j))                       (N,)
    bary_i  = sum_j softmax_j(g_j + l(x_i, y_j)) y_j                 (N, d)
    shift_i = bary_i - x_i = sum_j softmax_j(...) (y_j - x_i)        (N, d)

computed in one pass per row with online max-tracking, never forming the
N x M matrix (except in the dense reference, ``backend="numpy"``).  Kernel
sums, mean shifts, Sinkhorn softmins and geometric-mean plans are all calls
of these with different offsets ``g``.

Backends: ``numpy`` (dense float64 reference), ``numba`` (fused CPU kernel),
``cupy`` (fused CUDA kernels), or any other record of
:mod:`wgfsim.backend`'s registry; ``auto`` picks from the array type.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

from .. import backend as _backends
from ..backend import resolve_backend

__all__ = ["lse_bary", "lse_shift", "lse", "lse_cols", "distance_sums", "COSTS", "DEFAULT_PRUNE_TOL", "pruning",
           "current_prune_tol"]

COSTS = ("sqeuclidean", "euclidean")

# the block-sparse kernel's default tolerance: the share of each row's sum it may skip (wgfsim.primitives.prune);
# a run sets its own (scenario run.prune_tol, Field(prune_tol=...)) and stores it with its settings
DEFAULT_PRUNE_TOL = 1e-12
_PRUNE_TOL: contextvars.ContextVar = contextvars.ContextVar("wgfsim_prune_tol", default=None)


@contextlib.contextmanager
def pruning(tol):
    """Within the block, calls that give no ``prune_tol`` use ``tol`` (None: :data:`DEFAULT_PRUNE_TOL`).

    A context variable, so a bound field sets its run's tolerance around its
    flow's calls without threading it through every flow.
    """
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1):
        from ..errors import OptionError

        raise OptionError("primitives", "prune_tol", tol, "a number in [0, 1) (0: every pair)")
    token = _PRUNE_TOL.set(tol)
    try:
        yield
    finally:
        _PRUNE_TOL.reset(token)


def current_prune_tol(tol=None) -> float:
    """The tolerance in force: ``tol`` if given, else the enclosing :func:`pruning` block's, else the default."""
    if tol is not None:
        return float(tol)
    current = _PRUNE_TOL.get()
    return DEFAULT_PRUNE_TOL if current is None else float(current)


def _kernels(backend, *arrays):
    """The implementation module of the backend resolved for ``arrays`` (its registry record says which)."""
    return _backends.get(resolve_backend(backend, *arrays)).implementation()


def _check(x, y, g, eps, cost, exclude_diagonal):
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"x and y: expected 2-D arrays (points, dim), got shapes {x.shape} and {y.shape}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y: dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(f"x and y: expected at least one point each, got {x.shape[0]} and {y.shape[0]}")
    if g is not None and g.shape != (y.shape[0],):
        raise ValueError(f"g: expected shape ({y.shape[0]},), got {g.shape}")
    if not (isinstance(eps, (int, float, np.floating)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a positive finite number, got {eps!r}")
    if cost not in COSTS:
        raise ValueError(f"cost: expected one of {COSTS}, got {cost!r}")
    if exclude_diagonal and x.shape[0] != y.shape[0]:
        raise ValueError("exclude_diagonal: needs y to be x (same number of points)")


def lse_shift(x, y, g=None, *, eps, cost="sqeuclidean", exclude_diagonal=False, unit=False, backend="auto", prune_tol=None):
    """Row log-sum-exp and mean shift: ``(lse (N,), shift (N, d))``.

    ``shift_i = sum_j softmax_j(g_j - c(x_i,y_j)/eps) (y_j - x_i)``; with
    ``unit=True`` the displacements are unit vectors ``(y_j - x_i)/|y_j - x_i|``
    (zero where ``y_j == x_i``), the gradient of the ``euclidean`` cost.
    Accumulating displacements rather than positions keeps the shift exact
    when the points sit far from the origin.

    ``prune_tol``: on backends that skip pairs (``numba``), the share of each
    row's sum that may be skipped (``None``: the default 1e-12; 0: every pair);
    see :mod:`wgfsim.primitives.prune`.
    """
    _check(x, y, g, eps, cost, exclude_diagonal)
    kernels = _kernels(backend, x, y)
    return kernels.lse_shift(x, y, g, float(eps), cost, bool(exclude_diagonal), bool(unit), True, **_pruning(kernels, prune_tol))


def _pruning(kernels, prune_tol):
    """``tol`` for kernels that prune (their module says ``PRUNES = True``); others compute every pair."""
    return {"tol": current_prune_tol(prune_tol)} if getattr(kernels, "PRUNES", False) else {}


def distance_sums(x, y, *, backend="auto"):
    """Row sums of Euclidean distances ``sum_j |x_i - y_j|`` (N,), for the energy distance."""
    _check(x, y, None, 1.0, "euclidean", False)
    return _kernels(backend, x, y).distance_sums(x, y)


def lse_bary(x, y, g=None, *, eps, cost="sqeuclidean", exclude_diagonal=False, backend="auto", prune_tol=None):
    """``(lse (N,), bary (N, d))`` of docs/math.md#primitive: ``bary_i = sum_j softmax_j(g_j + l(x_i, y_j)) y_j``."""
    lse_, shift = lse_shift(x, y, g, eps=eps, cost=cost, exclude_diagonal=exclude_diagonal, backend=backend, prune_tol=prune_tol)
    return lse_, x + shift


def lse(x, y, g=None, *, eps, cost="sqeuclidean", exclude_diagonal=False, backend="auto", prune_tol=None):
    """Row log-sum-exp alone (N,): ``log sum_j exp(g_j - c(x_i, y_j)/eps)``."""
    _check(x, y, g, eps, cost, exclude_diagonal)
    kernels = _kernels(backend, x, y)
    return kernels.lse_shift(x, y, g, float(eps), cost, bool(exclude_diagonal), False, False, **_pruning(kernels, prune_tol))[0]


def lse_cols(x, y, f=None, *, eps, cost="sqeuclidean", exclude_diagonal=False, backend="auto", prune_tol=None):
    """Column-side reduction (M,): ``log sum_i exp(f_i - c(x_i, y_j)/eps)`` for each column j.

    The costs are symmetric, so this is the row reduction with the roles of
    ``x`` and ``y`` exchanged; it is named for the Sinkhorn ``g`` update and
    the column sums of geometric-mean plans.
    """
    return lse(y, x, f, eps=eps, cost=cost, exclude_diagonal=exclude_diagonal, backend=backend, prune_tol=prune_tol)
