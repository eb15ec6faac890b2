"""Deng et al. Algorithm 2 (``drift_da2``): joint row/column-normalised drifting field.

Positive (target) and negative (particle) logits are concatenated and
normalised jointly: ``L = [l(X,Y) | l(X,X) with the diagonal masked]`` (N x (M+N));
``A = sqrt(softmax_row(L) * softmax_col(L))`` (columns softmaxed over the N
rows), split ``A = [A+ | A-]``; ``W+ = A+ * rowsum(A-)``, ``W- = A- * rowsum(A+)``::

    v_i = sum_j W+_ij (y_j - x_i) - sum_k W-_ik (x_k - x_i)

``A_ij = exp(L_ij - R_i/2 - C_j/2)`` with ``R`` the row and ``C`` the column
log-sum-exps, so the field is the geometric-mean structure of the Sinkhorn
proxy with row normalisers shared by both blocks (docs/math.md#drift-da2).
Published defaults: ``euclidean`` cost, temperatures (0.02, 0.05, 0.2) summed.
The paper's algorithm is the default.  The official code (lambertae/drifting,
``drift_loss.py``) differs in four ways, each an option, all four set by
``preset = "official"`` (an explicit value that differs from the preset's is
refused, even the paper's default; the preset's own value may be repeated, so
a stored run's full options load back):

``distance_floor``
    every distance is ``sqrt(max(|x - y|^2, floor^2))`` (official ``1e-4``:
    ``cdist`` floors ``d^2`` at ``1e-8``), self pairs included, in the kernel
    and in the mean distance ``mbar`` (a self pair counts at ``1e-4``, not 0).
    Like ``affinity_floor`` it needs the explicit evaluation below, with the
    row and column normalisers summed explicitly too.

``normalize_distances``
    the kernel is ``exp(-|x - y| / (T mbar))`` with ``mbar`` the mean distance
    over all N x (N + M) pairs ``(x_i, [X | Y]_c)``, self pairs included
    (``eps = T mbar``; ``eps = T mbar^2`` for the ``sqeuclidean`` cost, i.e.
    distances divided by ``mbar``).  ``mbar`` is exact: one fused pass of
    :func:`wgfsim.primitives.distance_sums`, O(N (N + M)) time, O(N + M) memory.
``normalize_drift``
    each temperature's field ``F_T`` is divided by its RMS over all N x d
    entries and the sum is returned in data units:
    ``v = (mbar / sqrt(d)) sum_T F_T / rms(F_T)``.
``affinity_floor``
    ``A = max(A, floor)`` for every entry, the masked self pairs included
    (official value ``1e-3``).  A floored sum is not a log-sum-exp, so this
    option alone evaluates ``A`` explicitly, ``_CHUNK_ELEMENTS`` numbers at a
    time (row blocks, never the whole N x (M + N) matrix); otherwise every
    sum is a fused primitive call.

Weights follow the official code: column weights ``w = [M b | N a]`` (1 for
uniform samples) multiply ``A`` after the floor, never the logits, and weight
the mean distance: ``mbar = sum_{i,c} w_c |x_i - z_c| / (N sum_c w_c)``.

Not a gradient flow (no energy); not zero at q == p for finite N (an O(1/N)
shift from the self mask).

Shapes: x (N, d), y (M, d), a (N,), b (M,) -> v (N, d).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .. import primitives
from ..backend import array_namespace
from ..errors import OptionError
from ._registry import Flow, kernel_gap_decay, register, transport_gap_decay
from ._common import boolean, cost_of, one_of, positive_floats, rms, set_frozen
from .sinkhorn_proxy import balanced_difference

# the official code's options (lambertae/drifting, drift_loss.py): preset name -> option values
PRESETS = {
    "none": {},
    "official": {"normalize_distances": True, "normalize_drift": True, "affinity_floor": 1e-3, "distance_floor": 1e-4},
}
# the paper's Algorithm 2: what an option left unset (None) means without a preset
PAPER = {"normalize_distances": False, "normalize_drift": False, "affinity_floor": 0.0, "distance_floor": 0.0}

# numbers per explicit block of the floored field: a (rows x (M + N)) float64 block stays under ~8 MB
_CHUNK_ELEMENTS = 1 << 20


def _non_negative_float(option: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value) or value < 0:
        official = PRESETS["official"][option]
        raise OptionError("drift_da2", option, value, f"a non-negative number (official code: {official:g})")
    return float(value)


@dataclass(frozen=True)
class Params:
    temperatures: float | tuple = (0.02, 0.05, 0.2)
    cost: str = "euclidean"
    # None: not given; resolved on construction to the preset's value, else the paper's (PAPER)
    normalize_distances: bool | None = None
    normalize_drift: bool | None = None
    affinity_floor: float | None = None
    distance_floor: float | None = None
    preset: str = "none"

    def __post_init__(self):
        set_frozen(
            self,
            temperatures=positive_floats("drift_da2", "temperatures", self.temperatures),
            cost=cost_of("drift_da2", self.cost),
            preset=one_of("drift_da2", "preset", self.preset, tuple(PRESETS)),
        )
        check = {"normalize_distances": lambda k, v: boolean("drift_da2", k, v),
                 "normalize_drift": lambda k, v: boolean("drift_da2", k, v),
                 "affinity_floor": _non_negative_float, "distance_floor": _non_negative_float}
        preset = PRESETS[self.preset]
        for option, paper in PAPER.items():
            given = getattr(self, option)
            if given is None:
                set_frozen(self, **{option: preset.get(option, paper)})
                continue
            value = check[option](option, given)
            # a value the preset does not set is refused whatever it equals (the paper's default included)
            if option in preset and value != preset[option]:
                raise OptionError("drift_da2", option, given,
                                  f"{preset[option]!r} or no value: preset = {self.preset!r} sets it; drop one of them")
            set_frozen(self, **{option: value})


def _column_weights(a, b, x, y):
    """``(w-, w+)``: the official code's column weights ``N a`` (N,) and ``M b`` (M,); None when uniform."""
    w_minus = None if a is None else a * x.shape[0]
    w_plus = None if b is None else b * y.shape[0]
    return w_minus, w_plus


def mean_distance(x, y, w_minus=None, w_plus=None, backend="auto", distance_floor=0.0) -> float:
    """``mbar = sum_i sum_c w_c |x_i - z_c| / (N sum_c w_c)`` over the columns ``z = [X | Y]``.

    Self pairs count (at distance 0, or at ``distance_floor``: every distance
    is then ``max(|x_i - z_c|, floor)``, the official code's); ``w`` defaults
    to 1.  Exact: without a floor the column sums ``sum_i |x_i - z_c|`` are
    two fused passes of :func:`wgfsim.primitives.distance_sums` (O(N (N + M))
    time, O(N + M) memory); with one, explicit row blocks.  x (N, d), y (M, d),
    w- (N,), w+ (M,) -> float.
    """
    xp = array_namespace(x)
    n, m = x.shape[0], y.shape[0]
    if distance_floor > 0:
        total_w = (n if w_minus is None else float(xp.sum(w_minus))) + (m if w_plus is None else float(xp.sum(w_plus)))
        cols = xp.concat([y, x], axis=0)
        w = xp.concat([xp.ones((m,), dtype=xp.float64) if w_plus is None else xp.astype(w_plus, xp.float64),
                       xp.ones((n,), dtype=xp.float64) if w_minus is None else xp.astype(w_minus, xp.float64)])
        total = 0.0
        for start, stop, dist2 in _dist2_blocks(x, cols):
            total += float(xp.sum(xp.sqrt(xp.maximum(dist2, distance_floor**2)) * w[None, :]))
        return total / (n * total_w)
    to_x = xp.astype(primitives.distance_sums(x, x, backend=backend), xp.float64)  # (N,), symmetric
    to_y = xp.astype(primitives.distance_sums(y, x, backend=backend), xp.float64)  # (M,): sum_i |x_i - y_j|
    if w_minus is not None:
        to_x = to_x * xp.astype(w_minus, xp.float64)
    if w_plus is not None:
        to_y = to_y * xp.astype(w_plus, xp.float64)
    total_w = (n if w_minus is None else float(xp.sum(w_minus))) + (m if w_plus is None else float(xp.sum(w_plus)))
    return float(xp.sum(to_x) + xp.sum(to_y)) / (n * total_w)


def _dist2_blocks(rows, cols):
    """``(start, stop, |rows[start:stop] - cols|^2)`` in row blocks of at most ``_CHUNK_ELEMENTS`` numbers.

    Explicit differences, one coordinate at a time: never a (c, M + N, d) array, never the whole matrix.
    """
    xp = array_namespace(rows)
    chunk = max(1, _CHUNK_ELEMENTS // cols.shape[0])
    for start in range(0, rows.shape[0], chunk):
        stop = min(rows.shape[0], start + chunk)
        z = rows[start:stop]
        dist2 = xp.zeros((stop - start, cols.shape[0]), dtype=rows.dtype)
        for k in range(rows.shape[1]):
            dk = cols[None, :, k] - z[:, k, None]
            dist2 += dk * dk
        yield start, stop, dist2


def _cost(dist2, cost, distance_floor):
    """The cost of squared distances: ``|x-y|`` or ``|x-y|^2/2``, distances floored at ``distance_floor``."""
    xp = array_namespace(dist2)
    if distance_floor > 0:
        dist2 = xp.maximum(dist2, distance_floor**2)
    return 0.5 * dist2 if cost == "sqeuclidean" else xp.sqrt(dist2)


def _normalisers(rows, x, y, eps, cost, distance_floor, self_rows):
    """``(R (G,), C+ (M,), C- (N,))`` of :func:`temperature_field`, summed explicitly over floored distances.

    The fused primitives see exact distances; with a distance floor the
    log-sum-exps are taken in row blocks here (the particle rows for the
    column normalisers, with the self pair masked; ``rows`` for ``R``).
    """
    xp = array_namespace(x)
    n, m = x.shape[0], y.shape[0]
    cols = xp.concat([y, x], axis=0)
    col = xp.full((m + n,), -math.inf, dtype=x.dtype)
    row_x = xp.empty((n,), dtype=x.dtype)
    for start, stop, dist2 in _dist2_blocks(x, cols):
        logits = _cost(dist2, cost, distance_floor) * (-1.0 / eps)
        r = xp.arange(stop - start)
        logits[r, m + start + r] = -math.inf  # the self pair
        top = xp.max(logits, axis=0)
        top = xp.where(xp.isfinite(top), top, 0.0)  # a column whose only row in the block is its own (masked)
        col = xp.logaddexp(col, top + xp.log(xp.sum(xp.exp(logits - top[None, :]), axis=0)))
        row_top = xp.max(logits, axis=1)
        row_x[start:stop] = row_top + xp.log(xp.sum(xp.exp(logits - row_top[:, None]), axis=1))
    if self_rows:
        return row_x, col[:m], col[m:]
    row = xp.empty((rows.shape[0],), dtype=x.dtype)
    for start, stop, dist2 in _dist2_blocks(rows, cols):
        logits = _cost(dist2, cost, distance_floor) * (-1.0 / eps)
        row_top = xp.max(logits, axis=1)
        row[start:stop] = row_top + xp.log(xp.sum(xp.exp(logits - row_top[:, None]), axis=1))
    return row, col[:m], col[m:]


def _floored_difference(rows, x, y, row, col_plus, col_minus, w_plus, w_minus, eps, cost, floor, self_rows,
                        distance_floor=0.0):
    """``S- P+ - S+ P-`` (G, d) with ``A = max(exp(l - R/2 - C/2), floor) * w``, evaluated in row blocks.

    ``S+-_i = sum_c A+-_ic``, ``P+-_i = sum_c A+-_ic (z_c - x_i)`` over the
    target (+) and particle (-) columns.  ``self_rows``: ``rows`` is ``x`` and
    the pair (i, i) is masked (its affinity is the floor alone, as in the
    official code).  Points are taken relative to the particles' mean, so
    ``P = A z - S x`` keeps its digits when the data sit far from the origin.
    """
    xp = array_namespace(x)
    g, d = rows.shape
    m = y.shape[0]
    origin = xp.mean(x, axis=0)  # (d,)
    cols = xp.concat([y, x], axis=0) - origin  # (M+N, d)
    rows = rows - origin  # (G, d)
    col = xp.concat([col_plus, col_minus], axis=0)  # (M+N,)
    ones_p = xp.ones((m,), dtype=x.dtype) if w_plus is None else w_plus
    ones_m = xp.ones((x.shape[0],), dtype=x.dtype) if w_minus is None else w_minus
    w = xp.concat([ones_p, ones_m], axis=0)  # (M+N,)
    out = xp.empty_like(rows)  # (G, d)
    chunk = max(1, _CHUNK_ELEMENTS // cols.shape[0])
    for start in range(0, g, chunk):
        stop = min(g, start + chunk)
        z = rows[start:stop]  # (c, d)
        dist2 = xp.zeros((stop - start, cols.shape[0]), dtype=x.dtype)  # (c, M+N)
        for k in range(d):  # explicit differences, one coordinate at a time: no (c, M+N, d) array
            dk = cols[None, :, k] - z[:, k, None]  # (c, M+N)
            dist2 += dk * dk
        c = _cost(dist2, cost, distance_floor)
        log_a = c * (-1.0 / eps) - (0.5 * row[start:stop])[:, None] - (0.5 * col)[None, :]  # (c, M+N)
        if self_rows:
            r = xp.arange(stop - start)
            log_a[r, m + start + r] = -math.inf
        a = xp.maximum(xp.exp(log_a), floor) * w[None, :]  # (c, M+N)
        s_plus = xp.sum(a[:, :m], axis=1)[:, None]  # (c, 1)
        s_minus = xp.sum(a[:, m:], axis=1)[:, None]  # (c, 1)
        p_plus = xp.matmul(a[:, :m], cols[:m]) - s_plus * z  # (c, d)
        p_minus = xp.matmul(a[:, m:], cols[m:]) - s_minus * z  # (c, d)
        out[start:stop] = s_minus * p_plus - s_plus * p_minus
    return out


def temperature_field(rows, x, y, w_minus, w_plus, eps, cost, floor, backend, self_rows=True, distance_floor=0.0):
    """One temperature's field ``F`` (G, d) at the rows ``rows`` (G, d) for eps = T (times the scale).

    Column normalisers are the particle system's: ``C+_j = log sum_i e^{l(x_i,y_j)}``,
    ``C-_k = log sum_{i != k} e^{l(x_i,x_k)}``.  The row normaliser
    ``R(z) = log(sum_j e^{l(z,y_j)} + sum_k e^{l(z,x_k)})`` runs over all M + N
    columns, without the pair (i, i) when ``self_rows`` (``rows`` is ``x``);
    a row that is not a particle masks nothing.
    """
    xp = array_namespace(x)
    if distance_floor > 0:  # the official code's floored distances: every sum explicit
        row, col_plus, col_minus = _normalisers(rows, x, y, eps, cost, distance_floor, self_rows)
        return _floored_difference(rows, x, y, row, col_plus, col_minus, w_plus, w_minus, eps, cost, floor, self_rows,
                                   distance_floor)
    kw = dict(eps=eps, cost=cost, backend=backend)
    col_plus = primitives.lse_cols(x, y, **kw)  # (M,)
    col_minus = primitives.lse(x, x, exclude_diagonal=True, **kw)  # (N,): the masked X-X block is symmetric
    row_minus = col_minus if self_rows else primitives.lse(rows, x, **kw)  # (G,)
    row = xp.logaddexp(primitives.lse(rows, y, **kw), row_minus)  # R over the concatenated row, (G,)
    if floor > 0:
        return _floored_difference(rows, x, y, row, col_plus, col_minus, w_plus, w_minus, eps, cost, floor, self_rows)
    # weights multiply A = exp(l - R/2 - C/2): fold log w into the column normalisers (C - 2 log w)
    with np.errstate(divide="ignore"):
        if w_plus is not None:
            col_plus = col_plus - 2.0 * xp.log(w_plus)
        if w_minus is not None:
            col_minus = col_minus - 2.0 * xp.log(w_minus)
    return balanced_difference(x, y, row, row, col_plus, col_minus, eps, cost, True, backend, rows=None if self_rows else rows)


def _field(rows, x, y, a, b, params: Params, backend, self_rows):
    d = x.shape[1]
    w_minus, w_plus = _column_weights(a, b, x, y)
    mbar = None
    if params.normalize_distances or params.normalize_drift:
        mbar = mean_distance(x, y, w_minus, w_plus, backend=backend, distance_floor=params.distance_floor)
        if not mbar > 0:
            raise ValueError("drift_da2: normalize_distances/normalize_drift need a positive mean distance; the particles and targets all coincide")
    scale = 1.0
    if params.normalize_distances:
        # the official kernel divides distances by mbar: eps = T mbar (euclidean), T mbar^2 (|x-y|^2/2)
        scale = mbar * mbar if params.cost == "sqeuclidean" else mbar
    v = 0.0
    for temperature in params.temperatures:
        args = (x, y, w_minus, w_plus, temperature * scale, params.cost, params.affinity_floor, backend)
        ft = temperature_field(rows, *args, self_rows=self_rows, distance_floor=params.distance_floor)
        if params.normalize_drift:
            # RMS over all N x d entries of the particles' own field (the official force scale)
            own = ft if self_rows else temperature_field(x, *args, self_rows=True, distance_floor=params.distance_floor)
            ft = ft / max(rms(own) / math.sqrt(d), 1e-30)
        v = v + ft
    if params.normalize_drift:
        v = v * (mbar / math.sqrt(d))  # back to data units
    return v


def velocity(x, y, a, b, params: Params, ctx):
    """The field at the particles (N, d), in data units."""
    return _field(x, x, y, a, b, params, ctx.backend, self_rows=True)


def field_at(z, x, y, a, b, params: Params, ctx):
    """The field at points ``z`` (K, d) that are not particles: an extra row no column sees.

    Column normalisers, ``mbar`` and the RMS of ``normalize_drift`` are the
    particle system's, so the field is a function of ``z`` alone; ``z``'s row
    masks no pair, so ``field_at(x) != velocity(x)`` (the self mask).
    """
    return _field(z, x, y, a, b, params, ctx.backend, self_rows=False)


def length_scale(params: Params) -> float:
    """The kernel's length at the largest temperature: ``T`` for ``exp(-|x-y|/T)``, ``sqrt(T)`` for the squared cost.

    NaN with ``normalize_distances`` (the temperature is then in units of the
    data's mean distance, known only with the data).
    """
    if params.normalize_distances:
        return math.nan
    t = float(max(params.temperatures))
    return math.sqrt(t) if params.cost == "sqeuclidean" else t


FLOW = register(
    Flow(
        name="drift_da2",
        Params=Params,
        velocity=velocity,
        weights=True,
        summary="Deng et al. Algorithm 2: jointly normalised drifting field",
        field_at=field_at,
        length_scale=length_scale,
        # the study's kernel: exp(-|x-y|^2 / (2 sigma^2)), the proxy's at eps = sigma^2
        options_at_scale=lambda s: {"temperatures": s * s, "cost": "sqeuclidean"},
        hyper="temperatures",
        doc="docs/flows/drift_da2.md",
        gap_decay=lambda p: ("laplace" if p.cost == "euclidean" else "gaussian", length_scale(p)),
        pairs=lambda n, m, d, p: float(len(p.temperatures) * 2 * (n * m + n * n)),
        no_two_atom="the joint row and column normalisation couples the atoms' weights; no closed form is derived",
        examples=(dict(), dict(cost="sqeuclidean", normalize_distances=True, normalize_drift=True), dict(preset="official")),
    )
)
