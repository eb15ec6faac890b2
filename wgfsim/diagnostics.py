"""Diagnostics of stored runs: half-times, mode-mass errors, initial velocities, the study's axes.

Everything here that takes a dataset reads only the stored file
(:func:`wgfsim.open_run`, :func:`wgfsim.open_sweep`): the flow of each run and
its full options come from the file's ``flow_params``, the modes from
``mode_centre`` and ``target_mode_mass``; the closed forms, length scales and
fields at arbitrary points from the flow registry (:mod:`wgfsim.flows`).

Mass transfer (Gretton et al. Section 3.3, Appendix D; docs/math.md#two-atoms)
------------------------------------------------------------------------------
Target ``p = pi d_{-D} + (1-pi) d_{+D}`` (``two_modes``, separation ``s = 2D``),
particles started with ``(alpha, 1-alpha)``.  Kernel flows feel the other
mode only through ``kappa = exp(-s^2 / (2 sigma^2))``, so the time they need
to move mass grows like ``exp(s^2 / (2 sigma^2))``; transport flows move it
in a time that does not grow.

* :func:`half_time` - first time the mode-mass error falls to half its initial value.
* :func:`initial_velocity` - mean velocity of the overcrowded mode at step 0, next
  to the flow's two-atom closed form.
* :func:`separation_over_sigma`, :func:`fit_slopes` - the study's axis and fit.

The field at arbitrary points and its curl are :mod:`wgfsim.fields`.
"""

from __future__ import annotations

import json
import math

import numpy as np

from . import flows as _flows
from .flows import make_params

__all__ = [
    "mode_mass_error",
    "half_time",
    "two_atom_closed_form",
    "initial_velocity",
    "run_params",
    "separation_over_sigma",
    "fit_slopes",
]


def _target_mass(ds, target_mass=None):
    """The target's mode masses, broadcastable against ``mode_mass`` (dims ..., mode)."""
    import xarray as xr

    if target_mass is not None:
        return xr.DataArray(np.asarray(target_mass, dtype=np.float64), dims=("mode",))
    if "target_mode_mass" not in ds:
        raise ValueError("target_mass: the dataset holds no 'target_mode_mass' (its target has no modes); "
                         "pass target_mass=[w0, w1, ...]")
    return ds["target_mode_mass"]


def _centres(ds):
    """Mode centres (..., mode, dim)."""
    if "mode_centre" not in ds:
        raise ValueError("mode_centre: not in the dataset; its target has no modes (use a two_modes target)")
    return ds["mode_centre"]


def mode_mass_error(ds, *, target_mass=None, error: str = "sum"):
    """``|mode_mass - target mass|`` summed over modes (``error="sum"``) or of the first mode (``"first"``).

    Dims: those of ``mode_mass`` without ``mode``.  For two modes ``sum`` is
    twice ``first``; their half-times are the same.
    """
    if "mode_mass" not in ds:
        raise ValueError('mode_mass: not in the dataset; record it with [metrics] names = [..., "mode_mass"]')
    diff = abs(ds["mode_mass"] - _target_mass(ds, target_mass))
    reducers = {"sum": lambda d: d.sum("mode", skipna=False), "first": lambda d: d.isel(mode=0, drop=True)}
    if error not in reducers:
        raise ValueError(f"error: expected one of {sorted(reducers)}, got {error!r}")
    return reducers[error](diff)


def _first_half(err: np.ndarray, t: np.ndarray, interpolate: bool) -> np.ndarray:
    """Along the last axis: first t with err <= err[0]/2 (linear interpolation between records)."""
    e0 = err[..., :1]
    thr = e0 / 2.0
    with np.errstate(invalid="ignore"):
        below = err <= thr  # NaN (a missing or diverged record) is never below
    found = below.any(axis=-1)
    k = np.argmax(below, axis=-1)  # first index below, 0 when none
    take = lambda a, i: np.take_along_axis(a, i[..., None], axis=-1)[..., 0]  # noqa: E731
    km1 = np.maximum(k - 1, 0)
    t_k, t_prev = take(t, k), take(t, km1)
    e_k, e_prev = take(err, k), take(err, km1)
    thr0 = thr[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(e_prev > e_k, (e_prev - thr0) / (e_prev - e_k), 1.0)
    crossing = t_prev + np.clip(frac, 0.0, 1.0) * (t_k - t_prev) if interpolate else t_k
    out = np.where(found, crossing, np.inf)
    out = np.where(thr0 == 0, 0.0, out)  # already at the target's masses
    return np.where(np.isnan(thr0), np.nan, out)


def half_time(ds, *, target_mass=None, error: str = "sum", interpolate: bool = True):
    """Per run: the time at which the mode-mass error first falls to half its initial value.

    ``err(t) = sum_k |mode_mass_k(t) - w_k|`` (``error="sum"``, or the first
    mode's term with ``"first"``), ``w`` the target's mode masses (the
    dataset's ``target_mode_mass``, or ``target_mass``).  Returns the first
    ``t`` with ``err(t) <= err(0)/2``, linearly interpolated between the two
    records around the crossing (``interpolate=False``: the record's ``t``);
    ``inf`` if the run never gets there, ``0`` if ``err(0) = 0``, NaN for a
    missing point.  Mode masses move in steps of ``1/N``, so the resolution is
    the record spacing, not better.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`wgfsim.open_run` (dims ``run, time, mode``) or
        :func:`wgfsim.open_sweep` (any sweep dims).

    Returns
    -------
    xarray.DataArray
        Dims of ``mode_mass`` without ``time`` and ``mode``; units of ``t``.
    """
    import xarray as xr

    err = mode_mass_error(ds, target_mass=target_mass, error=error)
    t = ds["t"]
    err, t = xr.broadcast(err, t)
    out = xr.apply_ufunc(
        _first_half,
        err,
        t,
        kwargs={"interpolate": interpolate},
        input_core_dims=[["time"], ["time"]],
        output_core_dims=[[]],
    )
    out = out.drop_vars([c for c in ("t", "step") if c in out.coords])
    out.name = "half_time"
    out.attrs.update(long_name="time for the mode-mass error to halve", units="t", error=error)
    return out


def two_atom_closed_form(flow: str, D: float, pi: float, alpha: float, **params) -> float:
    """The closed-form velocity of ``flow`` at the overcrowded atom (first axis), or NaN where none applies.

    ``alpha < pi``: the right atom ``+D`` is overcrowded and the value is the
    flow's ``two_atom`` (docs/math.md#two-atoms).  ``alpha > pi``: the left
    atom is, and by the mirror symmetry ``x -> -x`` the value is
    ``-f(D, 1-pi, 1-alpha)``.  Several bandwidths (or epsilons) sum their
    fields, so their closed forms add.
    """
    form = _flows.get(flow).two_atom
    if form is None:
        return math.nan
    sign, p, a = (1.0, pi, alpha) if alpha <= pi else (-1.0, 1.0 - pi, 1.0 - alpha)
    return sign * float(form(D, p, a, make_params(flow, **params)))


def _params_of(text) -> tuple[str, dict]:
    """(flow, options) from one stored ``flow_params`` JSON text ("" for a point that never ran)."""
    text = str(text)
    if not text:
        return "", {}
    params = json.loads(text)
    return params.pop("flow"), params


def run_params(ds):
    """The flow name and full options of every run, from the file's ``flow_params``.

    Returns an object array of ``(flow, options)`` pairs with the shape of
    ``ds["flow_params"]`` (``run``, or the sweep's dims).
    """
    if "flow_params" not in ds:
        raise ValueError("flow_params: not in the dataset; it was written by an older wgfsim (schema 1)")
    texts = np.asarray(ds["flow_params"].values)
    out = np.empty(texts.shape, dtype=object)
    for idx in np.ndindex(texts.shape):
        out[idx] = _params_of(texts[idx])
    return out


def initial_velocity(ds):
    """Mean first-axis velocity of the particles in the overcrowded mode at step 0, next to the closed forms.

    The overcrowded mode is the one whose initial particle mass exceeds the
    target's; a particle belongs to the mode whose centre is nearest along
    the first axis.  Needs ``velocity`` (``run.record_velocity = true``).
    ``pi`` and ``alpha`` are the *measured* masses of the first (left) mode,
    of the target sample and of the particles at step 0: with exact atoms
    these are the weights of the empirical measures the flow saw, so the
    closed form is exact for them.  ``D`` is half the distance between the
    mode centres.  Each run's flow and options come from its stored
    ``flow_params``.

    Returns
    -------
    xarray.Dataset
        Dims of the runs (``run``, or the sweep dims).  Variables:
        ``measured``, ``closed_form`` (NaN where the flow has none),
        ``relative_error`` = ``|measured/closed_form - 1|``, ``D``, ``pi``,
        ``alpha``, ``n_overcrowded`` (particles averaged over), and the
        flow's name in ``flow_name``.
    """
    import xarray as xr

    if "velocity" not in ds:
        raise ValueError("velocity: not in the dataset; record it with [run] record_velocity = true")
    centres = _centres(ds).isel(dim=0, drop=True)  # (..., mode)
    if centres.sizes["mode"] != 2:
        raise ValueError(f"initial_velocity: needs a target with two modes, got {centres.sizes['mode']}")
    x0 = ds["position"].isel(time=0, dim=0, drop=True)  # (..., particle)
    v0 = ds["velocity"].isel(time=0, dim=0, drop=True).astype(np.float64)  # (..., particle)
    d_left = abs(x0 - centres.isel(mode=0, drop=True))
    d_right = abs(x0 - centres.isel(mode=1, drop=True))
    pi = _target_mass(ds).isel(mode=0, drop=True)
    alpha = ds["mode_mass"].isel(time=0, mode=0, drop=True).drop_vars(["t", "step"], errors="ignore")
    right_crowded = alpha <= pi
    member = xr.where(right_crowded, d_right < d_left, d_left <= d_right) & np.isfinite(x0)
    measured = v0.where(member).mean("particle").drop_vars(["t", "step"], errors="ignore")
    n_over = member.sum("particle").drop_vars(["t", "step"], errors="ignore")
    D = abs(centres.isel(mode=1, drop=True) - centres.isel(mode=0, drop=True)) / 2.0
    params = ds["flow_params"]
    measured, D, pi, alpha, n_over, params = xr.broadcast(measured, D, pi, alpha, n_over, params)
    cases = run_params(params.to_dataset(name="flow_params"))
    closed = np.full(measured.shape, np.nan)
    names = np.full(measured.shape, "", dtype=object)
    for idx in np.ndindex(measured.shape):
        flow, options = cases[idx]
        if not flow:
            continue
        names[idx] = flow
        d_, p_, a_ = (float(arr.values[idx]) for arr in (D, pi, alpha))
        if all(math.isfinite(v) for v in (d_, p_, a_)):
            closed[idx] = two_atom_closed_form(flow, d_, p_, a_, **options)
    closed = xr.DataArray(closed, dims=measured.dims, coords=measured.coords)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = abs(measured / closed - 1.0)
    out = xr.Dataset(
        {
            "measured": measured,
            "closed_form": closed,
            "relative_error": rel,
            "D": D,
            "pi": pi,
            "alpha": alpha,
            "n_overcrowded": n_over,
            "flow_name": xr.DataArray(names.astype(str), dims=measured.dims, coords=measured.coords),
        }
    )
    out["measured"].attrs["long_name"] = "mean first-axis velocity of the overcrowded mode at step 0"
    out["closed_form"].attrs["long_name"] = "two-atom closed form at the overcrowded atom (docs/math.md#two-atoms)"
    return out


def separation_over_sigma(ds, sigma: float | None = None):
    """``separation^2 / sigma^2`` per run (DataArray), with ``separation`` the distance between the two mode centres.

    ``sigma``: one length for every run (the study's kernel bandwidth, so
    that transport flows, which have no sigma, share the axis); default: the
    largest length scale (:attr:`wgfsim.flows.Flow.length_scale`: bandwidth,
    ``sqrt(epsilon)``, ...) among the dataset's runs, read from their stored
    ``flow_params``.
    """
    centres = _centres(ds)
    diff = centres.isel(mode=1, drop=True) - centres.isel(mode=0, drop=True)
    sep = np.sqrt((diff**2).sum("dim"))
    if sigma is None:
        sigma = dataset_sigma(ds)
    out = sep**2 / sigma**2
    out.name = "separation2_over_sigma2"
    out.attrs.update(long_name="separation^2 / sigma^2", sigma=float(sigma))
    return out


def dataset_sigma(ds) -> float:
    """The largest length scale of the kernel flows stored in ``ds`` (from ``flow_params``)."""
    sigmas = []
    for flow, options in run_params(ds).ravel():
        scale = _flows.get(flow).length_scale if flow else None
        if scale is None:
            continue
        value = scale(make_params(flow, **options))
        if math.isfinite(value):
            sigmas.append(value)
    if not sigmas:
        raise ValueError("sigma: the dataset has no flow with a length scale (kernel flows) to take sigma from; "
                         "pass sigma=")
    return float(max(sigmas))


def flow_names(ds) -> np.ndarray:
    """The flow name of every run of ``ds`` (array of ``flow_params``'s shape; "" for a point that never ran)."""
    cases = run_params(ds)
    out = np.empty(cases.shape, dtype=object)
    for idx in np.ndindex(cases.shape):
        out[idx] = cases[idx][0]
    return out


def fit_slopes(x, h, labels) -> dict[str, dict]:
    """Least-squares slope of ``log h`` against ``x`` per label, over the finite positive half-times.

    Returns ``{label: {"slope", "intercept", "n", "x_max", "slope_tail"}}``:
    ``slope_tail`` is the fit over the three largest finite ``x`` (where
    ``kappa`` is smallest and the asymptotic rate shows); NaN with fewer
    than 2 (3) points.
    """
    x, h, labels = (np.asarray(a, dtype=object if a is labels else float).ravel() for a in (x, h, labels))
    x, h = x.astype(float), h.astype(float)
    out = {}
    for lab in dict.fromkeys(labels.tolist()):
        m = (labels == lab) & np.isfinite(h) & (h > 0) & np.isfinite(x)
        slope, icpt = _polyfit(x[m], np.log(h[m]))
        xs = np.unique(x[m])
        tail = m & (x >= xs[-3]) if xs.size >= 3 else np.zeros_like(m)
        out[lab] = {
            "slope": slope,
            "intercept": icpt,
            "n": int(m.sum()),
            "x_max": float(x[m].max()) if m.any() else math.nan,
            "slope_tail": _polyfit(x[tail], np.log(h[tail]))[0] if tail.any() else math.nan,
        }
    return out


def _polyfit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if x.size >= 2 and np.ptp(x) > 0:
        slope, icpt = np.polyfit(x, y, 1)
        return float(slope), float(icpt)
    return math.nan, math.nan
