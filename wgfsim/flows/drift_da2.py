"""Deng et al. Algorithm 2 (``drift_da2``): joint row/column-normalised drifting field.

Positive (target) and negative (particle) logits are concatenated and
normalised jointly: ``L = [l(X,Y) | l(X,X) with the diagonal masked]`` (N x (M+N));
``A = sqrt(softmax_row(L) * softmax_col(L))`` (columns softmaxed over the N
rows), split ``A = [A+ | A-]``; ``W+ = A+ * rowsum(A-)``, ``W- = A- * rowsum(A+)``::

    v_i = sum_j W+_ij (y_j - x_i) - sum_k W-_ik (x_k - x_i)

``A_ij = exp(L_ij - R_i/2 - C_j/2)`` with ``R`` the row and ``C`` the column
log-sum-exps, so the field is the geometric-mean structure of the Sinkhorn
proxy with row normalisers shared by both blocks.  Published defaults:
``euclidean`` cost, temperatures (0.02, 0.05, 0.2) summed.  The official code
also rescales distances so their mean is ``sqrt(d)`` (``normalize_distances``)
and divides each temperature's field by its per-coordinate RMS over the batch,
``sqrt(mean_i |v_i|^2 / d)`` (``normalize_drift``); both are off by default,
so the paper's algorithm is the default.  Not a gradient flow (no energy); not
zero at q == p for finite N (an O(1/N) shift from the self mask).

Shapes: x (N, d), y (M, d) -> v (N, d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import primitives
from ..backend import array_namespace, to_numpy
from ..primitives import dense
from . import Flow, register
from ._common import boolean, cost_of, positive_floats, rms, set_frozen
from .sinkhorn_proxy import balanced_difference


@dataclass(frozen=True)
class Params:
    temperatures: float | tuple = (0.02, 0.05, 0.2)
    cost: str = "euclidean"
    normalize_distances: bool = False
    normalize_drift: bool = False

    def __post_init__(self):
        set_frozen(
            self,
            temperatures=positive_floats("drift_da2", "temperatures", self.temperatures),
            cost=cost_of("drift_da2", self.cost),
            normalize_distances=boolean("drift_da2", "normalize_distances", self.normalize_distances),
            normalize_drift=boolean("drift_da2", "normalize_drift", self.normalize_drift),
        )


def velocity(x, y, a, b, params: Params, ctx):
    xp = array_namespace(x)
    d = x.shape[1]
    scale = 1.0
    if params.normalize_distances:
        # divide distances by s = mean|x - z| / sqrt(d) (z over targets and particles): a temperature rescale
        pooled = to_numpy(xp.concat([y, x], axis=0))
        s = dense.mean_distance(to_numpy(x), pooled) / math.sqrt(d)
        scale = s * s if params.cost == "sqeuclidean" else s
    v = 0.0
    for temperature in params.temperatures:
        kw = dict(eps=temperature * scale, cost=params.cost, backend=ctx.backend)
        row_plus = primitives.lse(x, y, **kw)  # (N,)
        row_minus = primitives.lse(x, x, exclude_diagonal=True, **kw)  # (N,)
        row = xp.logaddexp(row_plus, row_minus)  # R_i over the concatenated row, (N,)
        col_plus = primitives.lse_cols(x, y, **kw)  # (M,)
        col_minus = row_minus  # the masked X-X block is symmetric: column sums = row sums
        vt = balanced_difference(x, y, row, row, col_plus, col_minus, kw["eps"], params.cost, True, ctx.backend)
        if params.normalize_drift:
            vt = vt / max(rms(vt) / math.sqrt(d), 1e-30)
        v = v + vt
    return v


FLOW = register(
    Flow(
        name="drift_da2",
        Params=Params,
        velocity=velocity,
        weights=False,
        summary="Deng et al. Algorithm 2: jointly normalised drifting field",
    )
)
