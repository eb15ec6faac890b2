"""Metrics of the particles against a held-out reference sample (docs/math.md#metrics).

Every pairwise sum goes through the fused primitives (:mod:`wgfsim.primitives`):
no N x M array is ever formed here.  Particles ``x`` (N, d) and reference
``ref`` (M, d) are empirical measures with uniform weights ``1/N`` and ``1/M``;
all expectations are V-statistics (sums over all pairs, ``i == k`` included).

=====================  ==============================================================
``mmd2``               ``MMD^2 = E k(X,X') - 2 E k(X,Y) + E k(Y,Y')``, Gaussian kernel
``mmd2_at``            ``mmd2`` at each of the listed bandwidths, (B,)
``energy_distance``    ``2 E|X-Y| - E|X-X'| - E|Y-Y'|``
``sinkhorn``           debiased Sinkhorn divergence ``S_eps``, cost ``|x-y|^2 / 2``
``w2``                 exact ``W_2`` (network simplex), small samples only
``mode_mass``          fraction of particles nearest each mode centre, (K,)
``velocity_rms``       ``sqrt(mean_i |v_i|^2)``
=====================  ==============================================================

:data:`METRICS` maps each scalar metric of (x, ref) to its function
``fn(x, ref, *, backend, **options)``; :func:`compute` evaluates a list of
them (plus ``mode_mass``) for one record.  NumPy or CuPy inputs; results are
Python floats (``mode_mass`` a NumPy array).  A particle cloud holding NaN or
inf, or positions so large that squared distances overflow
(:func:`within_range`; a diverged run), gets NaN metrics rather than an
exception, so a run records its own divergence; a non-finite *reference* is
an error.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import primitives
from .backend import array_namespace, to_numpy
from .errors import OptionError
from .primitives import dense

# the flows (and with them the kernel compiler) load on a metric's first call, so that the
# file schema (wgfsim.io.schema), which derives its variables from the records below, stays light

__all__ = [
    "Metric",
    "MetricAxis",
    "MetricOption",
    "RECORDS",
    "METRICS",
    "scalar_names",
    "SINKHORN_RELATIVE_EPSILON",
    "compute",
    "energy_distance",
    "mmd2",
    "mmd2_at",
    "mode_mass",
    "sinkhorn",
    "sinkhorn_epsilon",
    "median_bandwidth",
    "velocity_rms",
    "w2",
    "within_range",
]

# default Sinkhorn temperature relative to the squared median distance of the reference
SINKHORN_RELATIVE_EPSILON = 0.01


def _points(name: str, a, xp=None):
    """``a`` as a 2-D real array of the namespace ``xp`` (that of ``a`` when None)."""
    if xp is None:
        xp = array_namespace(a) if not isinstance(a, (list, tuple)) else np
        a = xp.asarray(a)
    elif xp is np:
        a = to_numpy(a)  # a CuPy reference next to host particles
    else:
        a = xp.asarray(a)
    if a.ndim != 2:
        hint = f"; use {name}[:, None] for 1-D points" if a.ndim == 1 else ""
        raise ValueError(f"{name}: expected a 2-D array (points, dim), got shape {tuple(a.shape)}{hint}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one point, got an empty array")
    return a


def _positive(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _pair(x, ref):
    """Validated ``(x, ref, finite)``: ref moved to x's device and dtype; ``finite`` is x's finiteness."""
    x = _points("x", x)
    xp = array_namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        x = xp.astype(x, xp.float64)
    ref = _points("ref", ref, xp)
    if ref.shape[1] != x.shape[1]:
        raise ValueError(f"x and ref: dimensions differ (x has {x.shape[1]}, ref has {ref.shape[1]})")
    # the run's dtype policy (float32 on the GPU) decides the arithmetic, not the reference's
    ref = xp.astype(ref, x.dtype)
    if not bool(xp.all(xp.isfinite(ref))):
        raise ValueError("ref: contains NaN or inf")
    return x, ref, within_range(x)


def within_range(x) -> bool:
    """Whether the metrics can be computed from ``x`` (N, d): finite, and ``|x_i - y_j|^2`` cannot overflow.

    True when every entry is finite and ``max |x| <= sqrt(F / (8 d))`` with
    ``F`` the largest number of ``x``'s dtype: then each squared distance to
    a reference point of no larger size, ``sum_k (x_ik - y_jk)^2 <= 4 d max|x|^2``,
    stays below ``F / 2``.  Beyond it (a diverged run, ``max |x| ~ 1e154`` in
    float64, ``~1e19`` in float32) the metrics are NaN rather than inf or an
    error raised deep inside a solver.
    """
    xp = array_namespace(x)
    if x.shape[0] == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if not bool(xp.all(xp.isfinite(x))):
            return False
        dtype = x.dtype if xp.isdtype(x.dtype, "real floating") else xp.float64
        limit = math.sqrt(float(xp.finfo(dtype).max) / (8.0 * max(int(x.shape[1]), 1)))
        return float(xp.max(xp.abs(x))) <= limit


def median_bandwidth(x, ref) -> float:
    """Median heuristic on the pooled points: median of ``|z_i - z_k|`` over distinct pairs of ``z = x U ref``.

    Uses :func:`wgfsim.primitives.dense.median_distance` (a strided subsample of
    at most 1000 points).  Falls back to the mean distance when more than half
    of the pairs coincide; 0 only if every point coincides.
    """
    pooled = np.concatenate([to_numpy(x), to_numpy(ref)], axis=0).astype(np.float64)
    med = dense.median_distance(pooled)
    return med if med > 0 else dense.mean_distance(pooled, pooled)


def mmd2(x, ref, *, bandwidth: float | tuple | None = None, backend: str = "auto") -> float:
    """Squared maximum mean discrepancy with the Gaussian kernel (biased V-statistic).

    ``MMD^2 = 1/N^2 sum_ik k(x_i,x_k) - 2/(NM) sum_ij k(x_i,y_j) + 1/M^2 sum_jl k(y_j,y_l)``
    with ``k(x,y) = exp(-|x-y|^2 / (2 sigma^2))`` (Gretton et al. 2012, eq. 5, biased form).
    Computed by :func:`wgfsim.flows.mmd.mmd2` (three kernel-sum primitives per bandwidth).

    Parameters
    ----------
    x : (N, d) array
    ref : (M, d) array
    bandwidth : float, tuple of floats, or None
        ``sigma``; a tuple sums the MMD^2 of each bandwidth.  None: the median
        heuristic on the pooled points (:func:`median_bandwidth`), the metric of
        Gretton et al.'s Figure 2.
    backend : str
        Backend of the primitives (``auto``, ``numpy``, ``numba``, ``cupy``).
    """
    x, ref, finite = _pair(x, ref)
    if not finite:
        return math.nan
    if bandwidth is None:
        sigma = median_bandwidth(x, ref)
        if sigma == 0.0:
            return 0.0  # every particle sits on every reference point
        bandwidths = (sigma,)
    else:
        bandwidths = tuple(bandwidth) if isinstance(bandwidth, (list, tuple)) else (bandwidth,)
        if not bandwidths or not all(_positive(s) for s in bandwidths):
            raise OptionError("mmd2", "bandwidth", bandwidth, "a positive number, a tuple of them, or None")
    from .flows import mmd as _mmd

    return float(_mmd.mmd2(x, ref, None, None, tuple(float(s) for s in bandwidths), "gaussian", backend))


def mmd2_at(x, ref, *, bandwidths, backend: str = "auto") -> np.ndarray:
    """``MMD^2`` (:func:`mmd2`, Gaussian kernel) at each bandwidth ``sigma_b`` of ``bandwidths``, shape (B,).

    One number per bandwidth, not their sum: the median bandwidth of a spread-out
    target is far wider than its fine structure, so a small ``sigma`` shows blur
    the median one hides.  NaN for a non-finite particle cloud, like :func:`mmd2`.
    """
    sigmas = tuple(bandwidths) if isinstance(bandwidths, (list, tuple, np.ndarray)) else ()
    if not sigmas or not all(_positive(s) for s in sigmas):
        raise OptionError("metrics", "mmd2_bandwidths", bandwidths, "a non-empty list of positive numbers")
    return np.array([mmd2(x, ref, bandwidth=float(s), backend=backend) for s in sigmas], dtype=np.float64)


def energy_distance(x, ref, *, backend: str = "auto") -> float:
    """Energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (V-statistic, all pairs).

    ``= 2/(NM) sum_ij |x_i-y_j| - 1/N^2 sum_ik |x_i-x_k| - 1/M^2 sum_jl |y_j-y_l|``
    (Szekely and Rizzo 2013).  Its square root is SciPy's
    ``scipy.stats.energy_distance`` in 1-D.  Three :func:`wgfsim.primitives.distance_sums` calls.
    """
    x, ref, finite = _pair(x, ref)
    if not finite:
        return math.nan
    xp = array_namespace(x)

    def mean_distance(u, v) -> float:  # 1/(|u||v|) sum_ij |u_i - v_j|, accumulated in float64
        sums = primitives.distance_sums(u, v, backend=backend)  # (|u|,)
        return float(xp.sum(xp.astype(sums, xp.float64))) / (u.shape[0] * v.shape[0])

    return 2.0 * mean_distance(x, ref) - mean_distance(x, x) - mean_distance(ref, ref)


def sinkhorn_epsilon(ref) -> float:
    """The default Sinkhorn temperature: ``SINKHORN_RELATIVE_EPSILON * median(|y_j - y_l|)^2`` over the reference."""
    med = dense.median_distance(to_numpy(ref).astype(np.float64))
    if med == 0.0:
        raise ValueError("ref: more than half of the reference pairs coincide; pass sinkhorn(epsilon=...) explicitly")
    return SINKHORN_RELATIVE_EPSILON * med * med


def sinkhorn(
    x, ref, *, epsilon: float | None = None, tol: float = 1e-4, max_iter: int = 2000, backend: str = "auto"
) -> float:
    """Debiased Sinkhorn divergence ``S_eps(q, p) = OT_eps(q,p) - OT_eps(q,q)/2 - OT_eps(p,p)/2``.

    ``OT_eps(a, b) = min_P <P, C> + eps KL(P | a x b)`` with the cost
    ``C_ij = |x_i - y_j|^2 / 2`` (docs/math.md#sinkhorn; Gretton et al. eq. 26),
    evaluated by :func:`wgfsim.flows.sinkhorn.divergence` (log-domain Sinkhorn on
    the primitives).  ``S_eps -> W_2^2 / 2`` as ``eps -> 0``.

    Parameters
    ----------
    epsilon : float or None
        Absolute temperature (units of the cost, length^2).  None (default):
        ``0.01 * m^2`` with ``m`` the median pairwise distance of the
        *reference* (:func:`sinkhorn_epsilon`), so the metric scales with the
        data and stays the same divergence at every record of a run (the
        reference does not move).
    tol, max_iter
        Stop when the marginal error of every Sinkhorn problem is below ``tol``
        or after ``max_iter`` iterations.  The value converges much faster
        than the marginals: on two-mode 2-D data at the default eps, ``tol=1e-3``
        already gives it to ~1e-6 relative; each iteration costs three
        primitive passes, and a few hundred iterations are typical.
    """
    x, ref, finite = _pair(x, ref)
    if not finite:
        return math.nan
    eps = sinkhorn_epsilon(ref) if epsilon is None else epsilon
    if not _positive(eps):
        raise OptionError("sinkhorn", "epsilon", epsilon, "a positive number or None")
    from .flows import sinkhorn as _sinkhorn

    return float(
        _sinkhorn.divergence(x, ref, None, None, float(eps), "sqeuclidean", tol=tol, max_iter=max_iter, backend=backend)
    )


def w2(x, ref, *, max_points: int = 2000, backend: str = "auto") -> float:
    """Exact Wasserstein-2 distance ``W_2 = sqrt(min_P sum_ij P_ij |x_i - y_j|^2)``.

    Solved by POT's network simplex through ``wgfsim.energy("w2_exact", ...)``
    on the host.  The plan is dense and the solver super-quadratic, so when
    ``N`` or ``M`` exceeds ``max_points`` the result is NaN (not an error:
    a large run simply has no exact W2 column).  ``backend`` is accepted for a
    uniform :data:`METRICS` signature; the solver always runs on the CPU.
    """
    from . import flows

    x, ref, finite = _pair(x, ref)
    if not finite or max(x.shape[0], ref.shape[0]) > max_points:
        return math.nan
    w22 = flows.energy("w2_exact", x, ref, backend=backend, max_pairs=max(x.shape[0] * ref.shape[0], 1))
    return math.sqrt(max(w22, 0.0))  # the LP value can come out as -1e-17


def mode_mass(x, centres) -> np.ndarray:
    """Fraction of particles whose nearest mode centre is ``k``: ``m_k = #{i : argmin_l |x_i - c_l| = k} / N``.

    Ties go to the lower index.  Shapes: x (N, d), centres (K, d) -> (K,) NumPy
    float64 summing to 1 (all NaN if x holds NaN or inf).  The K centres are
    visited one by one, so memory stays O(N).
    """
    x = _points("x", x)
    xp = array_namespace(x)
    centres = _points("centres", centres, xp)
    if centres.shape[1] != x.shape[1]:
        raise ValueError(f"x and centres: dimensions differ (x has {x.shape[1]}, centres have {centres.shape[1]})")
    k = centres.shape[0]
    if not within_range(x):  # NaN, inf, or so large that the squared distances overflow (every one inf)
        return np.full(k, np.nan)
    centres = xp.astype(centres, x.dtype)
    best = xp.full((x.shape[0],), xp.inf, dtype=x.dtype)  # (N,) squared distance to the nearest centre so far
    nearest = xp.zeros((x.shape[0],), dtype=xp.int64)  # (N,)
    for j in range(k):
        diff = x - centres[j, :]  # (N, d)
        d2 = xp.sum(diff * diff, axis=1)  # (N,)
        closer = d2 < best  # strict: a tie keeps the earlier centre
        best = xp.where(closer, d2, best)
        nearest = xp.where(closer, j, nearest)
    counts = np.bincount(to_numpy(nearest), minlength=k)  # (K,)
    return counts.astype(np.float64) / x.shape[0]


def velocity_rms(v) -> float:
    """Root mean square of the field over the particles: ``sqrt(1/N sum_i |v_i|^2)``; v (N, d)."""
    v = _points("v", v)
    xp = array_namespace(v)
    if not bool(xp.all(xp.isfinite(v))):
        return math.nan
    scale = float(xp.max(xp.abs(v)))
    if scale == 0.0:
        return 0.0
    u = v / scale  # scaled so that |v|^2 cannot overflow for huge finite velocities
    return scale * float(xp.sqrt(xp.mean(xp.sum(u * u, axis=1))))


@dataclass(frozen=True)
class MetricOption:
    """A ``[metrics]`` key of a scenario that sets one keyword of a metric's function.

    ``kind``: ``"positive"`` (a positive number, or absent: ``default``, which
    may be None), ``"integer"`` (a positive integer) or ``"positive_list"`` (a
    non-empty list of distinct positive numbers; a single number is a list of one).
    """

    key: str  # the scenario key, e.g. "sinkhorn_epsilon"
    keyword: str  # the function's keyword, e.g. "epsilon"
    default: object
    kind: str
    what: str = ""


@dataclass(frozen=True)
class Metric:
    """A metric record: what computes it, what the file stores, and what a scenario may set.

    ``fn(x, ref, *, backend, **options) -> float`` for metrics of the particles
    against the reference sample (``pair``); None for those the runner takes
    from elsewhere (``mode_mass`` here too, ``energy`` from the flow,
    ``velocity_rms`` from the field).  The stored variable: ``dims``,
    ``long_name``, ``units`` (float64).  ``memory(n, m, d, options) -> {part:
    bytes}`` and ``pairs(n, m, options) -> float`` (pairs one evaluation
    visits) feed the resource estimate (:mod:`wgfsim.scenario.resources`).
    ``axis``: for a metric with one number per value of a setting (``mmd2_at``,
    dims ``(run, time, AXIS)``), the :class:`MetricAxis` whose values label that
    last dimension; the metric is recorded only when its option is set.
    """

    name: str
    fn: Callable[..., float] | None
    dims: tuple[str, ...]
    long_name: str
    units: str
    options: tuple[MetricOption, ...] = ()
    pair: bool = False
    memory: Callable[..., dict] | None = None
    pairs: Callable[..., float] | None = None
    doc: str = field(default="", repr=False)
    axis: "MetricAxis | None" = None


@dataclass(frozen=True)
class MetricAxis:
    """The coordinate of a metric's own last dimension: its name, ``long_name``, ``units`` and the option giving its values."""

    dim: str  # e.g. "mmd2_bandwidth"
    long_name: str
    units: str
    option: str  # the [metrics] key listing the values, e.g. "mmd2_bandwidths"


def _w2_memory(n, m, d, options) -> dict:
    # the network simplex's dense plan and cost, below max_points only
    return {"w2 metric plan": 2.0 * 8 * n * m} if max(n, m) <= options.get("max_points", 2000) else {}


RECORDS: dict[str, Metric] = {r.name: r for r in (
    Metric("mmd2", mmd2, ("run", "time"), "MMD^2 to the reference (Gaussian kernel, median heuristic or metrics.mmd2_bandwidth)", "1",
           options=(MetricOption("mmd2_bandwidth", "bandwidth", None, "positive",
                                 "Gaussian bandwidth (default: the median heuristic)"),),
           pair=True, pairs=lambda n, m, o: float((n + m) ** 2)),
    Metric("mmd2_at", mmd2_at, ("run", "time", "mmd2_bandwidth"),
           "MMD^2 to the reference at each Gaussian bandwidth of metrics.mmd2_bandwidths", "1",
           options=(MetricOption("mmd2_bandwidths", "bandwidths", None, "positive_list",
                                 "Gaussian bandwidths, one MMD^2 each"),),
           pair=True, pairs=lambda n, m, o: float(len(o.get("bandwidths") or (1,)) * (n + m) ** 2),
           axis=MetricAxis("mmd2_bandwidth", "Gaussian bandwidth sigma of mmd2_at", "data", "mmd2_bandwidths")),
    Metric("energy_distance", energy_distance, ("run", "time"), "energy distance to the reference", "data",
           pair=True, pairs=lambda n, m, o: float((n + m) ** 2)),
    Metric("sinkhorn", sinkhorn, ("run", "time"), "debiased Sinkhorn divergence to the reference (cost |x-y|^2/2)",
           "data^2", options=(MetricOption("sinkhorn_epsilon", "epsilon", None, "positive", "entropic regularisation"),),
           pair=True, pairs=lambda n, m, o: 3.0 * 2000 * (n + m) ** 2),
    Metric("w2", w2, ("run", "time"), "exact W2 distance to the reference", "data",
           options=(MetricOption("w2_max_points", "max_points", 2000, "integer", "subsample size for exact W2"),),
           pair=True, memory=_w2_memory, pairs=lambda n, m, o: float(n * m) if max(n, m) <= o.get("max_points", 2000) else 0.0),
    Metric("mode_mass", None, ("run", "time", "mode"), "fraction of particles nearest each target mode", "1"),
    Metric("energy", None, ("run", "time"), "the flow's own functional (docs/math.md; see flow_params)", "flow-specific"),
    Metric("velocity_rms", None, ("run", "time"), "RMS of the velocity over the particles", "data / time"),
)}

# name -> fn(x, ref, *, backend, **options): the metrics of (x, reference) of a record
METRICS: dict[str, Callable[..., float]] = {r.name: r.fn for r in RECORDS.values() if r.pair}


def axis_records() -> dict[str, Metric]:
    """The metrics with a last dimension of their own (``mmd2_at``): ``{name: record}``."""
    return {r.name: r for r in RECORDS.values() if r.axis is not None}


def scalar_names() -> tuple[str, ...]:
    """The metrics stored as one number per record (dims ``(run, time)``), in registry order."""
    return tuple(r.name for r in RECORDS.values() if r.dims == ("run", "time"))


def options_of(names, settings: dict) -> dict:
    """Per-metric keyword arguments from the ``[metrics]`` settings (``{key: value}``), for :func:`compute`.

    A None value (an absent optional setting) passes nothing, so the function's default applies.
    """
    out: dict = {}
    for name in names:
        record = RECORDS.get(name)
        if record is None or not record.pair:
            continue
        kw = {o.keyword: settings[o.key] for o in record.options if settings.get(o.key) is not None}
        if kw:
            out[name] = kw
    return out


def _options_of(name: str, fn: Callable, opts) -> dict:
    if not isinstance(opts, dict):
        raise OptionError("metrics", f"options[{name!r}]", opts, "a dict of keyword arguments")
    known = [p for p in inspect.signature(fn).parameters if p not in ("x", "ref", "backend")]
    unknown = [k for k in opts if k not in known]
    if unknown:
        raise OptionError("metrics", f"options[{name!r}]", unknown, f"some of {known} ({name}'s options)")
    return opts


def compute(x, ref, names, *, centres=None, backend: str = "auto", options: dict | None = None) -> dict:
    """Evaluate the scalar metrics ``names`` (keys of :data:`METRICS`) and, with ``centres``, ``mode_mass``.

    Parameters
    ----------
    x : (N, d) array
        Particles (NumPy or CuPy).
    ref : (M, d) array
        Held-out reference sample.
    names : iterable of str
        Scalar metrics to evaluate; ``"mode_mass"`` may be listed too (then
        ``centres`` is required).
    centres : (K, d) array or None
        Mode centres; when given the result has ``"mode_mass"`` (K,).
    options : dict or None
        Per-metric keyword arguments, e.g. ``{"sinkhorn": {"epsilon": 0.1}}``.

    Returns
    -------
    dict
        ``{name: float}`` for each scalar metric (``mmd2_at``: ndarray (B,)), plus ``"mode_mass": ndarray (K,)``.
    """
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in METRICS and n != "mode_mass"]
    if unknown:
        raise OptionError("metrics", "names", unknown, f"some of {list(METRICS) + ['mode_mass']}")
    if "mode_mass" in names and centres is None:
        raise ValueError("centres: 'mode_mass' was asked for but no mode centres were given")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise OptionError("metrics", "options", options, "a dict of per-metric dicts")
    stray = [k for k in options if k not in METRICS]
    if stray:
        raise OptionError("metrics", "options", stray, f"per-metric options of some of {list(METRICS)}")
    out: dict = {}
    for name in names:
        if name == "mode_mass":
            continue
        fn = METRICS[name]
        value = fn(x, ref, backend=backend, **_options_of(name, fn, options.get(name, {})))
        out[name] = value if name in axis_records() else float(value)  # mmd2_at: an array (B,)
    if centres is not None:
        out["mode_mass"] = mode_mass(x, centres)
    return out
