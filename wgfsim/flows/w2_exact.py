"""Exact W2 flow (``w2_exact``): the reference for mass transport.

Barycentric projection of an exact optimal plan ``pi*`` (network simplex,
POT's ``ot.emd``) for the squared Euclidean cost::

    v(x_i) = (1/a_i) sum_j pi*_ij y_j - x_i

Only for small problems: the plan is dense, so ``N * M`` above ``max_pairs``
is refused with a clear error.  Runs on the host (CuPy inputs are copied).

Energy: ``W_2^2 = sum_ij pi*_ij |x_i - y_j|^2``.

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import analytic
from ..backend import array_namespace, to_numpy
from ..primitives import dense
from ._registry import Flow, kernel_gap_decay, register, transport_gap_decay
from ._common import positive_int, set_frozen


@dataclass(frozen=True)
class Params:
    max_pairs: int = 25_000_000

    def __post_init__(self):
        set_frozen(self, max_pairs=positive_int("w2_exact", "max_pairs", self.max_pairs))


def optimal_plan(x, y, a, b, max_pairs):
    """The exact plan (N, M), host float64, with uniform weights where a or b is None."""
    import ot

    n, m = x.shape[0], y.shape[0]
    if n * m > max_pairs:
        raise ValueError(
            f"w2_exact: N x M = {n} x {m} = {n * m} pairs exceeds max_pairs={max_pairs} "
            "(the exact plan is dense); use fewer particles or the sinkhorn flow with a small epsilon"
        )
    xh, yh = to_numpy(x).astype(np.float64), to_numpy(y).astype(np.float64)
    ah = np.full(n, 1.0 / n) if a is None else to_numpy(a).astype(np.float64)
    bh = np.full(m, 1.0 / m) if b is None else to_numpy(b).astype(np.float64)
    cost = 2.0 * dense.cost_matrix(xh, yh, "sqeuclidean")  # |x - y|^2
    plan = ot.emd(ah / ah.sum(), bh / bh.sum(), cost, numItermax=max(100_000, 50 * n * m))
    return plan, ah, xh, yh, cost


def velocity(x, y, a, b, params: Params, ctx):
    xp = array_namespace(x)
    plan, ah, xh, yh, _ = optimal_plan(x, y, a, b, params.max_pairs)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (plan @ yh) / ah[:, None] - xh
    v[ah == 0] = 0.0  # massless particles have no plan row
    return xp.asarray(v, dtype=x.dtype)


def energy(x, y, a, b, params: Params, ctx):
    plan, *_, cost = optimal_plan(x, y, a, b, params.max_pairs)
    return float(np.sum(plan * cost))


FLOW = register(
    Flow(
        name="w2_exact",
        Params=Params,
        velocity=velocity,
        energy=energy,
        energy_name="W_2^2",
        summary="exact W2 flow: barycentric projection of the network-simplex plan (POT ot.emd)",
        two_atom=lambda D, pi, alpha, params: analytic.two_atom_w2(D, math.nan, pi, alpha),
        doc="docs/flows/w2_exact.md",
        gap_decay=transport_gap_decay,
        memory=lambda n, m, d, p: {"w2_exact plan": 2.0 * 8 * n * m},  # the dense plan and cost
        pairs=lambda n, m, d, p: float(n * m),
    )
)
