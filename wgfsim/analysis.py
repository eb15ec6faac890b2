"""Analysis of stored runs and sweeps: mass transport between distant modes, and non-gradient fields.

Everything here reads a stored dataset (:func:`wgfsim.store.open_run` or
:func:`wgfsim.sweep.open_sweep`), never a live run, except the field
diagnostics, which evaluate a flow's field on a grid for given particles.

Mass transfer (Gretton et al. Section 3.3, Appendix D; FLOWS.md truth 1)
-------------------------------------------------------------------------
Target ``p = pi d_{-D} + (1-pi) d_{+D}`` (``two_modes``, separation ``s = 2D``,
std 0 or small), particles started with ``(alpha, 1-alpha)``.  Kernel flows
(KL-KDE, Sinkhorn proxy) feel the other mode only through
``kappa = exp(-2 D^2 / sigma^2) = exp(-s^2 / (2 sigma^2))``, so the time they
need to move mass grows like ``exp(s^2 / (2 sigma^2))``: a slope 1/2 of
``log half_time`` against ``s^2 / sigma^2``.  Transport flows (Sinkhorn with
``eps << s^2``, sliced, exact W2) move it in a time that does not grow.

* :func:`half_time` - first time the mode-mass error falls to half its initial value.
* :func:`initial_velocity` - mean velocity of the overcrowded mode at step 0, next
  to the closed forms of :mod:`wgfsim.analytic`.
* :func:`plot_half_times` - log half-time against ``s^2 / sigma^2``, one line per flow.
* :func:`mass_transfer_study` - runs the study (two sweeps) and fits the slopes.

Non-gradient structure (Gretton et al. Prop. 3.2, eq. 35-39)
------------------------------------------------------------
* :func:`field_at` - a flow's field at arbitrary points ``z`` with the particle
  measure held fixed (``mmd``, ``kl_kde``, ``sinkhorn_proxy``, ``drift_da2``).
* :func:`jacobian`, :func:`curl` - central differences of that field.
* :func:`plot_curl_maps` - curl maps of the proxy and DA2 next to MMD.
* :func:`toy_example` - our reconstruction of Gretton et al.'s toy example.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .flows.kl_kde import field_at as kl_kde_field_at  # the flows' own fields, evaluated at arbitrary points z
from .flows.mmd import field_at as mmd_field_at
from .flows.sinkhorn_proxy import balanced_difference
from . import analytic, primitives
from .flows import make_params, options as flow_options
from .flows._common import log_weights

__all__ = [
    "half_time",
    "mode_mass_error",
    "initial_velocity",
    "two_atom_closed_form",
    "two_atom_mmd",
    "CLOSED_FORMS",
    "separation_over_sigma",
    "plot_half_times",
    "fit_slopes",
    "mass_transfer_study",
    "MassTransferStudy",
    "mass_transfer_scenario",
    "field_at",
    "FIELDS_AT",
    "jacobian",
    "curl",
    "plot_curl_maps",
    "toy_example",
]

_CORE_DIMS = ("time", "particle", "dim", "mode", "sample", "ref")


# ================================================================ reading what a dataset knows


def _json_attr(ds, key):
    raw = ds.attrs.get(key)
    if raw is None:
        return None
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _target_mass(ds, target_mass=None):
    """The target's mode masses, broadcastable against ``mode_mass`` (dims ..., mode)."""
    import xarray as xr

    if target_mass is not None:
        return xr.DataArray(np.asarray(target_mass, dtype=np.float64), dims=("mode",))
    if "target_mode_mass" in ds:
        return ds["target_mode_mass"]
    stored = _json_attr(ds, "target_mode_mass")
    if stored is None:
        raise ValueError(
            "target_mass: the dataset holds no target mode masses (attribute 'target_mode_mass' or variable); "
            "pass target_mass=[w0, w1, ...]"
        )
    return xr.DataArray(np.asarray(stored, dtype=np.float64), dims=("mode",))


def _centres(ds):
    """Mode centres (..., mode, dim) from the sweep variable or the run file's attribute."""
    import xarray as xr

    if "mode_centre" in ds:
        return ds["mode_centre"]
    stored = _json_attr(ds, "mode_centres")
    if stored is None:
        raise ValueError("the dataset holds no mode centres (attribute 'mode_centres'); is the target a two_modes target?")
    return xr.DataArray(np.asarray(stored, dtype=np.float64), dims=("mode", "dim"))


# ================================================================ half-times


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
        From :func:`wgfsim.store.open_run` (dims ``run, time, mode``) or
        :func:`wgfsim.sweep.open_sweep` (any sweep dims).

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


# ================================================================ closed forms and the initial velocity


def two_atom_mmd(D, sigma, pi, alpha):
    """MMD field at +D for stacked atoms (Gaussian kernel, self pairs included).

    ``v(+D) = sum_j b_j k (y_j - D) - sum_i a_i k (x_i - D) = -2D kappa (pi - alpha)``:
    only the atoms at ``-D`` contribute a displacement, with weights ``pi``
    (targets) and ``alpha`` (particles).  Derived here from FLOWS.md section 3.
    """
    return -2.0 * D * analytic.kappa(D, sigma) * (pi - alpha)


def _gaussian_scales(key: str, to_sigma: Callable[[float], float], **requires):
    """Scales (sigma values) of a flow's Params when its field is a Gaussian-kernel field we have a closed form for."""

    def scales(params) -> tuple[float, ...] | None:
        for k, v in requires.items():
            if getattr(params, k) != v:
                return None
        values = getattr(params, key)
        if isinstance(values, str):  # "median": data-dependent
            return None
        return tuple(to_sigma(float(s)) for s in values)

    return scales


@dataclass(frozen=True)
class ClosedForm:
    """A two-atom closed form at the overcrowded atom: ``fn(D, sigma, pi, alpha)`` summed over the flow's scales."""

    fn: Callable
    scales: Callable  # Params -> tuple of sigma (one term each) or None when no closed form applies


CLOSED_FORMS: dict[str, ClosedForm] = {
    "kl_kde": ClosedForm(analytic.two_atom_kl_kde, _gaussian_scales("bandwidth", lambda s: s, kernel="gaussian", exclude_self=False)),
    "sinkhorn_proxy": ClosedForm(
        analytic.two_atom_sinkhorn_proxy, _gaussian_scales("epsilon", math.sqrt, cost="sqeuclidean", exclude_self=False)
    ),
    "mmd": ClosedForm(two_atom_mmd, _gaussian_scales("bandwidth", lambda s: s, kernel="gaussian")),
    "w2_exact": ClosedForm(analytic.two_atom_w2, lambda params: (math.nan,)),
}


def two_atom_closed_form(flow: str, D: float, pi: float, alpha: float, **params) -> float:
    """The closed-form velocity of ``flow`` at the overcrowded atom (first axis), or NaN where none applies.

    ``alpha < pi``: the right atom ``+D`` is overcrowded and the value is
    FLOWS.md truth 1.  ``alpha > pi``: the left atom is, and by the mirror
    symmetry ``x -> -x`` the value is ``-f(D, sigma, 1-pi, 1-alpha)``.
    Several bandwidths (or epsilons) sum their fields, so their closed forms
    add.  ``sigma`` is the bandwidth, or ``sqrt(epsilon)`` for the proxy.
    """
    form = CLOSED_FORMS.get(flow)
    if form is None:
        return math.nan
    scales = form.scales(make_params(flow, **params))
    if scales is None:
        return math.nan
    sign, p, a = (1.0, pi, alpha) if alpha <= pi else (-1.0, 1.0 - pi, 1.0 - alpha)
    return sign * float(sum(form.fn(D, s, p, a) for s in scales))


def _scenario_points(ds) -> list | None:
    """The run points of the scenario stored in the attributes (None if it cannot be rebuilt)."""
    from . import scenario

    text = ds.attrs.get("scenario")
    if not text:
        return None
    src = str(ds.attrs.get("scenario_source", "<stored>"))
    base = os.path.dirname(src) if os.path.isabs(src) else "."
    overrides = _json_attr(ds, "overrides") or []
    try:
        sc = scenario.loads(text, source=src, base_dir=base, overrides=overrides)
        return scenario.expand(sc, allow_data_sweeps=True)
    except (scenario.ScenarioError, OSError, ValueError):
        return None


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def _case_coords(da) -> dict:
    """Scalar coordinates of one case (a 0-d selection): name -> Python value."""
    out = {}
    for name, c in da.coords.items():
        if c.ndim == 0:
            v = c.values.item()
            out[name] = v.decode() if isinstance(v, bytes) else v
    return out


def _params_for(case: dict, points: list | None) -> tuple[str | None, dict]:
    """(flow, params) of the run whose coordinates match ``case``; from the stored scenario, else from the coords."""
    if points:
        for p in points:
            if all(_same(v, case[k]) for k, v in p.coords.items() if k in case):
                return p.flow, dict(p.params)
    flow = case.get("flow")
    if not flow:
        return None, {}
    params = {}
    for k in flow_options(flow):
        v = case.get(k)
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            continue
        params[k] = json.loads(v) if isinstance(v, str) and v.startswith("[") else v
    return flow, params


def initial_velocity(ds):
    """Mean first-axis velocity of the particles in the overcrowded mode at step 0, next to the closed forms.

    The overcrowded mode is the one whose initial particle mass exceeds the
    target's; a particle belongs to the mode whose centre is nearest along
    the first axis.  Needs ``velocity`` (``run.record_velocity = true``).
    ``pi`` and ``alpha`` are the *measured* masses of the first (left) mode,
    of the target sample and of the particles at step 0: with exact atoms
    these are the weights of the empirical measures the flow saw, so the
    closed form is exact for them.  ``D`` is half the distance between the
    mode centres.

    Returns
    -------
    xarray.Dataset
        Dims of the runs (``run``, or the sweep dims).  Variables:
        ``measured``, ``closed_form`` (NaN where :data:`CLOSED_FORMS` has
        none), ``relative_error`` = ``|measured/closed_form - 1|``, ``D``,
        ``pi``, ``alpha``, ``n_overcrowded`` (particles averaged over), and the
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
    measured, D, pi, alpha, n_over = xr.broadcast(measured, D, pi, alpha, n_over)
    points = _scenario_points(ds)
    closed = np.full(measured.shape, np.nan)
    names = np.full(measured.shape, "", dtype=object)
    for idx in np.ndindex(measured.shape):
        sel = dict(zip(measured.dims, idx))
        case = _case_coords(measured.isel(sel))
        flow, params = _params_for(case, points)
        if flow is None:
            continue
        names[idx] = flow
        d_, p_, a_ = (float(arr.values[idx]) for arr in (D, pi, alpha))
        if all(math.isfinite(v) for v in (d_, p_, a_)):
            closed[idx] = two_atom_closed_form(flow, d_, p_, a_, **params)
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
    out["closed_form"].attrs["long_name"] = "two-atom closed form at the overcrowded atom (FLOWS.md truth 1)"
    return out


# ================================================================ separation / sigma and the half-time figure

# flow -> (option, value -> sigma): the length scale a kernel flow feels the other mode with
_SIGMA_OF = {
    "kl_kde": ("bandwidth", lambda s: s),
    "mmd": ("bandwidth", lambda s: s),
    "kl_kde_wgf": ("bandwidth", lambda s: s),
    "sinkhorn_proxy": ("epsilon", math.sqrt),
}


def separation_over_sigma(ds, sigma: float | None = None):
    """``separation^2 / sigma^2`` per run (DataArray), with ``separation`` the distance between the two mode centres.

    ``sigma``: one length for every run (the study's kernel bandwidth, so
    that transport flows, which have no sigma, share the axis); default: the
    largest bandwidth (or ``sqrt(epsilon)``) among the dataset's kernel flows.
    """
    centres = _centres(ds)
    diff = centres.isel(mode=1, drop=True) - centres.isel(mode=0, drop=True)
    sep = np.sqrt((diff**2).sum("dim"))
    if sigma is None:
        sigma = _dataset_sigma(ds)
    out = sep**2 / sigma**2
    out.name = "separation2_over_sigma2"
    out.attrs.update(long_name="separation^2 / sigma^2", sigma=float(sigma))
    return out


def _dataset_sigma(ds) -> float:
    points = _scenario_points(ds) or []
    sigmas = []
    for p in points:
        entry = _SIGMA_OF.get(p.flow)
        if entry is None:
            continue
        key, conv = entry
        values = getattr(make_params(p.flow, **p.params), key)
        if not isinstance(values, str):
            sigmas.append(conv(float(max(values))))
    if not sigmas:
        raise ValueError("sigma: the dataset has no kernel flow (kl_kde, mmd, sinkhorn_proxy) to take sigma from; pass sigma=")
    return float(max(sigmas))


def _flow_of_cases(da, ds) -> np.ndarray:
    """The flow name of every case of ``da`` (array of da's shape)."""
    points = _scenario_points(ds)
    names = np.full(da.shape, "", dtype=object)
    for idx in np.ndindex(da.shape):
        flow, _ = _params_for(_case_coords(da.isel(dict(zip(da.dims, idx)))), points)
        names[idx] = flow or ""
    return names


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


def _draw_half_times(ax, xv: np.ndarray, hv: np.ndarray, flows: np.ndarray, sigma: float) -> None:
    """Draw one line per flow (geometric mean over repeats), never-finished runs as open triangles at the top."""
    finite = hv[np.isfinite(hv) & (hv > 0)]
    top = float(finite.max()) * 3 if finite.size else 1.0
    fits = fit_slopes(xv, hv, flows)
    guide = None
    for k, flow in enumerate(dict.fromkeys(flows.ravel().tolist())):
        m = flows == flow
        xs = np.unique(xv[m][np.isfinite(xv[m])])
        ys = []
        for xval in xs:
            sel = hv[m & (xv == xval)]
            ok = sel[np.isfinite(sel) & (sel > 0)]
            ys.append(float(np.exp(np.mean(np.log(ok)))) if ok.size == sel.size and ok.size else math.nan)
            if np.isinf(sel).any():
                ax.plot([xval], [top], marker="^", mfc="none", color=f"C{k}", ls="none")
        slope = fits[flow]["slope"]
        label = f"{flow} (slope {slope:.2f})" if math.isfinite(slope) else flow
        ax.plot(xs, ys, marker="o", color=f"C{k}", label=label)
        if flow in _SIGMA_OF and xs.size and math.isfinite(ys[0]):
            guide = (xs[0], ys[0]) if guide is None else max(guide, (xs[0], ys[0]), key=lambda g: g[1])
    if guide is not None and np.isfinite(xv).any():
        x0, y0 = guide
        x1 = float(np.nanmax(xv))
        ax.plot([x0, x1], [y0, y0 * math.exp(0.5 * (x1 - x0))], ls="--", color="0.5", lw=1, label="slope 1/2 (1/kappa)")
    ax.set_yscale("log")
    ax.set_xlabel(r"separation$^2$ / $\sigma^2$" + f"  ($\\sigma$ = {sigma:.3g})")
    ax.set_ylabel("half-time of the mode-mass error")
    ax.set_title("mass transfer between distant modes")
    ax.legend(fontsize="small")


def plot_half_times(ds, *, sigma: float | None = None, half_times=None, ax=None):
    """Log half-time against ``separation^2 / sigma^2``, one line per flow (repeats: geometric mean).

    ``ds`` is a stored dataset (run file or sweep); ``half_times`` optionally
    the :func:`half_time` of it (computed when not given).  Runs that never
    reached half their error are drawn as open triangles at the top edge.
    The legend gives each flow's fitted slope (:func:`fit_slopes`); a dashed
    guide shows the slope 1/2 of ``1/kappa = exp(s^2/(2 sigma^2))``.
    Returns a ``matplotlib.figure.Figure``.
    """
    import xarray as xr
    from matplotlib.figure import Figure

    h = half_time(ds) if half_times is None else half_times
    x = separation_over_sigma(ds, sigma)
    h, x = xr.broadcast(h, x)
    x = x.transpose(*h.dims)
    flows = _flow_of_cases(h, ds)
    if ax is None:
        fig = Figure(figsize=(6.4, 4.4), dpi=100, layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    _draw_half_times(ax, x.values, h.values, flows, x.attrs["sigma"])
    return fig


# ================================================================ the study


_STUDY_TEMPLATE = """\
# Mass transfer between distant modes (Gretton et al. Section 3.3, Appendix D): {group} flows.
name = "{name}"
description = "two_modes {pi}/{one_minus_pi} target, particles started {alpha}/{one_minus_alpha}, separation swept"

[target]
kind = "two_modes"
separation = {separations}
weights = [{pi}, {one_minus_pi}]
std = {std}
dim = {dim}
n = {n}

[init]
kind = "two_modes"
separation = {separations}
weights = [{alpha}, {one_minus_alpha}]
std = {std}
dim = {dim}
n = {n}

{flows}

[run]
methods = ["particles"]
steps = {steps}
step_size = {step_size}
record_every = {record_every}
seeds = {seeds}
backend = "auto"
dtype = "float64"
record_velocity = {record_velocity}

[metrics]
names = ["mode_mass"]
"""


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(u) for u in v) + "]"
    return repr(float(v)) if isinstance(v, float) else repr(v)


def _flow_tables(flows: Sequence[tuple[str, dict]]) -> str:
    out = []
    for name, params in flows:
        lines = ["[[flow]]", f"name = {_toml(name)}"] + [f"{k} = {_toml(v)}" for k, v in params.items()]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def mass_transfer_scenario(
    *,
    name: str,
    group: str,
    flows: Sequence[tuple[str, dict]],
    separations: Sequence[float],
    pi: float = 0.5,
    alpha: float = 0.2,
    std: float = 0.05,
    dim: int = 1,
    n: int = 200,
    steps: int = 600,
    step_size: float = 1.0,
    record_every: int = 2,
    seeds: Sequence[int] = (0,),
    record_velocity: bool = False,
) -> str:
    """The TOML text of one group of the study (``scenarios/mass_transfer.toml`` is the same, all flows at once)."""
    return _STUDY_TEMPLATE.format(
        group=group,
        name=name,
        pi=pi,
        one_minus_pi=round(1.0 - pi, 12),
        alpha=alpha,
        one_minus_alpha=round(1.0 - alpha, 12),
        separations=_toml([float(s) for s in separations]),
        std=float(std),
        dim=int(dim),
        n=int(n),
        flows=_flow_tables(flows),
        steps=int(steps),
        step_size=float(step_size),
        record_every=int(record_every),
        seeds=_toml([int(s) for s in seeds]),
        record_velocity=_toml(bool(record_velocity)),
    )


@dataclass
class MassTransferStudy:
    """Result of :func:`mass_transfer_study`.

    ``half_times`` (DataArray: flow x target.separation [x seed]) in units of
    ``t``; ``x`` = separation^2 / sigma^2 on the same grid; ``slopes`` the fit
    of ``log half_time`` against ``x`` per flow over the finite half-times
    (:func:`fit_slopes`), next to ``closed_form_slopes`` (the same fit of
    ``log 1/|v(+D)|`` from the two-atom closed forms on the same grid) and
    ``reference_slope`` = 1/2 (``1/kappa = exp(x/2)``, the limit of both as
    ``x`` grows).  ``datasets``: the (sweep dataset, half-times) of each group.
    """

    half_times: Any
    x: Any
    slopes: dict
    sigma: float
    sweep_dirs: list
    closed_form_slopes: dict = field(default_factory=dict)
    datasets: list = field(default_factory=list, repr=False)
    reference_slope: float = 0.5

    def table(self) -> str:
        """A plain-text table: half-time per flow and x, the fitted slopes, the closed form's, and 1/2."""
        h = self.half_times
        if "seed" in h.dims:
            h = np.exp(np.log(h).mean("seed"))
        xs = self.x.values
        head = "flow".ljust(16) + "".join(f"{v:>9.2f}" for v in xs) + "    slope  tail  closed-form  asymptote"
        rows = [f"half-times in t against x = separation^2/sigma^2 (sigma = {self.sigma:g})", head]
        for flow in h["flow"].values.tolist():
            vals = h.sel(flow=flow).values.ravel()
            fit = self.slopes.get(flow, {})
            cf = self.closed_form_slopes.get(flow, math.nan)
            cf_text = f"{cf:11.3f}  {self.reference_slope:9.3f}" if math.isfinite(cf) else ""
            rows.append(flow.ljust(16) + "".join(f"{v:>9.3g}" for v in vals)
                        + f"   {fit.get('slope', math.nan):6.3f} {fit.get('slope_tail', math.nan):5.2f}  {cf_text}")
        rows.append("slope: fit of log half-time over all finite points; tail: over the 3 largest x; closed-form: the same "
                    "fit of log 1/|v(+D)| (FLOWS.md truth 1) on this grid; asymptote: 1/2 from kappa = exp(-x/2)")
        return "\n".join(rows)

    def figure(self):
        """Log half-time against separation^2/sigma^2, one line per flow (see :func:`plot_half_times`)."""
        import xarray as xr
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 4.4), dpi=100, layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        h = self.half_times
        x = (h["target.separation"] / self.sigma) ** 2
        hh, xx = xr.broadcast(h, x)
        flows = np.broadcast_to(h["flow"].values.reshape([-1] + [1] * (h.ndim - 1)), h.shape)
        _draw_half_times(ax, xx.transpose(*hh.dims).values, hh.values, flows, self.sigma)
        return fig


def mass_transfer_study(
    out_dir,
    *,
    x_values: Sequence[float] = (4.0, 6.0, 8.0, 10.0, 12.0),
    sigma: float = 1.0,
    n: int = 200,
    std: float = 0.05,
    pi: float = 0.5,
    alpha: float = 0.2,
    dim: int = 1,
    seeds: Sequence[int] = (0,),
    kernel_flows: Sequence[str] = ("kl_kde", "sinkhorn_proxy"),
    kernel_steps: int = 600,
    kernel_step_size: float = 1.0,
    transport_eps: float = 0.1,
    transport_flows: Sequence[str] = ("sinkhorn", "sliced", "w2_exact"),
    transport_steps: int = 30,
    transport_step_size: float = 0.1,
    workers: int = 1,
    executor: str | None = None,
    progress: bool = False,
) -> MassTransferStudy:
    """Run the mass-transfer study and fit ``log half_time`` against ``separation^2 / sigma^2``.

    Two sweeps over ``separation = sigma * sqrt(x)`` for ``x`` in ``x_values``
    (target and init tied: particles start on the target's modes), with mode
    std ``std`` (0: exact atoms; small: modes the particles can leave):

    * kernel flows (``kl_kde`` with ``bandwidth = sigma``, ``sinkhorn_proxy`` with
      ``epsilon = sigma^2``, ``mmd`` with ``bandwidth = sigma`` if listed), a long
      horizon (``kernel_steps * kernel_step_size``);
    * transport flows (``sinkhorn`` with ``epsilon = transport_eps`` (<< separation^2),
      ``sliced``, ``w2_exact``), a short horizon with small steps to resolve it.

    The slope for a kernel flow is fitted over the separations where its
    run finished (finite half-time); it is compared with 1/2, the rate at
    which ``kappa = exp(-2 D^2/sigma^2) = exp(-x/2)`` (D = separation/2)
    makes the closed-form velocity of the overcrowded mode vanish.

    ``out_dir`` holds the sweeps (``kernel/``, ``transport/``); re-running
    skips finished points.
    """
    from .scenario import loads
    from .sweep import open_sweep, run_sweep

    seps = [float(sigma * math.sqrt(x)) for x in x_values]
    kernel_params = {
        "kl_kde": {"bandwidth": sigma},
        "mmd": {"bandwidth": sigma},
        "sinkhorn_proxy": {"epsilon": sigma * sigma},
        "drift_da2": {"temperatures": sigma * sigma, "cost": "sqeuclidean"},
    }
    # sinkhorn: 100 iterations per step (the paper's), warm-started; sliced: in 1-D one direction is exact
    transport_params = {"sinkhorn": {"epsilon": transport_eps, "max_iter": 100}, "sliced": {"n_projections": 1 if dim == 1 else 100}, "w2_exact": {}}
    groups = [
        ("kernel", [(f, kernel_params[f]) for f in kernel_flows], kernel_steps, kernel_step_size),
        ("transport", [(f, transport_params[f]) for f in transport_flows], transport_steps, transport_step_size),
    ]
    out = pathlib.Path(out_dir)
    pieces, dirs, datasets = [], [], []
    import xarray as xr

    for group, flows, steps, eta in groups:
        if not flows:
            continue
        text = mass_transfer_scenario(
            name=f"mass_transfer_{group}", group=group, flows=flows, separations=seps, pi=pi, alpha=alpha, std=std,
            dim=dim, n=n, steps=steps, step_size=eta, record_every=1, seeds=seeds,
        )
        sc = loads(text, source=f"<mass_transfer_study:{group}>")
        result = run_sweep(sc, out / group, workers=workers, executor=executor, progress=progress)
        if result.failed:
            raise RuntimeError(f"mass_transfer_study: {len(result.failed)} point(s) failed:\n{result.summary()}")
        ds = open_sweep(out / group, variables=["mode_mass"])
        h = half_time(ds)
        if "flow" not in h.dims:
            h = h.expand_dims(flow=[str(ds["flow"].values)])
        datasets.append((ds, h))
        dirs.append(out / group)
        pieces.append(h)
    h_all = xr.concat(pieces, dim="flow").transpose("flow", ...)
    h_all = h_all.drop_vars([c for c in h_all.coords if c not in h_all.dims and c != "init.separation"], errors="ignore")
    sep = h_all["target.separation"]
    x = (sep / sigma) ** 2
    hh, xx = xr.broadcast(h_all, x)
    labels = np.broadcast_to(h_all["flow"].values.reshape([-1] + [1] * (h_all.ndim - 1)), h_all.shape)
    slopes = fit_slopes(xx.transpose(*hh.dims).values, hh.values, labels)
    # the same fit for 1 / |closed-form velocity of the overcrowded atom|: what kappa alone predicts on this grid
    closed = {}
    for flow, params in groups[0][1]:
        inv = [1.0 / abs(two_atom_closed_form(flow, sigma * math.sqrt(xv) / 2, pi, alpha, **params)) for xv in x_values]
        if all(math.isfinite(v) for v in inv):
            closed[flow] = _polyfit(np.asarray(x_values, float), np.log(inv))[0]
    return MassTransferStudy(half_times=h_all, x=x, slopes=slopes, sigma=float(sigma), sweep_dirs=dirs,
                             closed_form_slopes=closed, datasets=datasets)


# ================================================================ the field at arbitrary points


def _as2d(a, name) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (points, dim), got shape {arr.shape}")
    return arr


def _mmd_at(z, x, y, p, backend):
    """``sum_j b_j k(z,y_j) u(y_j - z) - sum_i a_i k(z,x_i) u(x_i - z)`` (FLOWS.md section 3), uniform weights."""
    return mmd_field_at(z, x, y, log_weights(None, x.shape[0], x), log_weights(None, y.shape[0], y), p, backend)


def _kl_kde_at(z, x, y, p, backend):
    """``B[p](z) - B[q](z)`` (FLOWS.md section 1): mean shifts towards the targets and the particles."""
    return kl_kde_field_at(z, x, y, log_weights(None, x.shape[0], x), log_weights(None, y.shape[0], y), p, backend)


def _proxy_at(z, x, y, p, backend):
    """Sinkhorn proxy (FLOWS.md section 5) with ``z`` as the row and the particles fixed.

    ``r+(z) = sum_j e^{l(z,y_j)}``, ``r-(z) = sum_k e^{l(z,x_k)}`` (the row
    normalisers of the evaluation point); the column normalisers are those of
    the particle system: ``c+_j = sum_i e^{l(x_i,y_j)}`` and
    ``r-_k = sum_i e^{l(x_i,x_k)}`` (sums over the N particle rows, never over
    the grid).  ``v(z) = sqrt(N/M) S+(z) S-(z) (m+(z) - m-(z))``.  At
    ``z = x_i`` this is the particle's own velocity (``exclude_self=False``).
    """
    n, m = x.shape[0], y.shape[0]
    v = np.zeros_like(z)
    for eps in p.epsilon:
        kw = dict(eps=eps, cost=p.cost, backend=backend)
        log_c_plus = primitives.lse_cols(x, y, **kw)  # (M,) over particle rows
        log_r_minus_cols = primitives.lse(x, x, exclude_diagonal=p.exclude_self, **kw)  # (N,)
        log_r_plus_z = primitives.lse(z, y, **kw)  # (G,)
        log_r_minus_z = primitives.lse(z, x, **kw)  # (G,)
        v = v + math.sqrt(n / m) * balanced_difference(
            x, y, log_r_plus_z, log_r_minus_z, log_c_plus, log_r_minus_cols, eps, p.cost, False, backend, rows=z
        )
    return v


def _da2_at(z, x, y, p, backend):
    """Deng et al. Algorithm 2 (FLOWS.md section 6) with ``z`` as an extra row that no column sees.

    The row normaliser of ``z`` runs over all ``M + N`` columns (``z`` is not
    a particle, so no self pair is masked): ``R(z) = log(sum_j e^{l(z,y_j)} +
    sum_k e^{l(z,x_k)})``.  The column normalisers are the particle system's:
    ``C+_j = log sum_i e^{l(x_i,y_j)}`` and ``C-_k = log sum_{i != k}
    e^{l(x_i,x_k)}`` (the masked block, over the N particle rows).  With
    ``A(z, .) = exp(l - R(z)/2 - C/2)``, ``S+- = sum A+-`` and barycentres
    ``m+-``: ``v(z) = S+ S- (m+ - m-)``.  Because of the self mask this is *not*
    the particle's velocity at ``z = x_i`` (there the pair (i, i) is dropped).
    ``normalize_distances`` and ``normalize_drift`` use the particle system's
    scale and RMS, so the field stays a function of ``z`` alone.
    """
    from .flows import velocity as _velocity
    from .flows._common import rms
    from .primitives import dense

    d = x.shape[1]
    scale = 1.0
    if p.normalize_distances:
        pooled = np.concatenate([y, x], axis=0)
        s = dense.mean_distance(x, pooled) / math.sqrt(d)
        scale = s * s if p.cost == "sqeuclidean" else s
    v = np.zeros_like(z)
    for temperature in p.temperatures:
        kw = dict(eps=temperature * scale, cost=p.cost, backend=backend)
        col_plus = primitives.lse_cols(x, y, **kw)  # (M,)
        col_minus = primitives.lse(x, x, exclude_diagonal=True, **kw)  # (N,) masked block: column = row sums
        row_z = np.logaddexp(primitives.lse(z, y, **kw), primitives.lse(z, x, **kw))  # (G,)
        vt = balanced_difference(x, y, row_z, row_z, col_plus, col_minus, kw["eps"], p.cost, False, backend, rows=z)
        if p.normalize_drift:
            one = _velocity("drift_da2", x, y, temperatures=temperature, cost=p.cost,
                            normalize_distances=p.normalize_distances, backend=backend)
            vt = vt / max(rms(one) / math.sqrt(d), 1e-30)
        v = v + vt
    return v


FIELDS_AT: dict[str, Callable] = {
    "mmd": _mmd_at,
    "kl_kde": _kl_kde_at,
    "sinkhorn_proxy": _proxy_at,
    "drift_da2": _da2_at,
}


def field_at(flow: str, z, x, y, *, backend: str = "auto", **params) -> np.ndarray:
    """The field of ``flow`` at evaluation points ``z`` (G, d) for particles ``x`` (N, d) and targets ``y`` (M, d).

    The particle measure ``q`` (uniform on ``x``) and the target ``p``
    (uniform on ``y``) are held fixed; ``z`` is a test point that is *not*
    part of ``q``: it contributes to no normaliser of the others.  The flows
    compute ``v`` only at their own particles; this is the field a new,
    massless particle at ``z`` would feel.

    * ``mmd``, ``kl_kde``: the population formulas at ``z`` (FLOWS.md sections 1, 3);
      ``field_at(x) == velocity(x)``.
    * ``sinkhorn_proxy``: ``z`` is the row; the column normalisers ``c+_j``,
      ``r-_k`` are sums over the *particle* rows (not over the grid);
      ``field_at(x) == velocity(x)`` when ``exclude_self=False``.
    * ``drift_da2``: ``z`` is an extra row normalised over all M + N columns,
      columns normalised over the particle rows with the self mask; not equal
      to ``velocity(x)`` at ``z = x_i`` (the mask drops the pair (i, i) there).

    Uniform weights only.  Returns float64 (G, d).
    """
    if flow not in FIELDS_AT:
        raise ValueError(f"flow: field_at knows {sorted(FIELDS_AT)}, got {flow!r}")
    p = make_params(flow, **params)
    z, x, y = _as2d(z, "z"), _as2d(x, "x"), _as2d(y, "y")
    if not (z.shape[1] == x.shape[1] == y.shape[1]):
        raise ValueError(f"z, x, y: dimensions differ ({z.shape[1]}, {x.shape[1]}, {y.shape[1]})")
    return FIELDS_AT[flow](z, x, y, p, backend)


def _default_h(x, y) -> float:
    pts = np.concatenate([x, y], axis=0)
    spread = float(np.max(np.ptp(pts, axis=0))) if pts.shape[0] > 1 else 1.0
    return 1e-4 * max(spread, 1e-8)


def jacobian(flow: str, x, y, grid, *, h: float | None = None, backend: str = "auto", **params):
    """Central-difference Jacobian of :func:`field_at` at 2-D points ``grid`` (G, 2).

    ``J[g, a, b] = (v_a(z + h e_b) - v_a(z - h e_b)) / (2h)``, error ``O(h^2)``
    (truncation) plus ``O(eps_machine |v| / h)`` (rounding).  Default ``h`` is
    ``1e-4`` times the spread of the points.  Returns ``(J (G, 2, 2), v (G, 2))``.
    """
    grid = _as2d(grid, "grid")
    if grid.shape[1] != 2:
        raise ValueError(f"grid: the curl is defined here for 2-D fields, got points of dimension {grid.shape[1]}")
    x, y = _as2d(x, "x"), _as2d(y, "y")
    h = _default_h(x, y) if h is None else float(h)
    g = grid.shape[0]
    e = np.eye(2) * h
    stencil = np.concatenate([grid, grid + e[0], grid - e[0], grid + e[1], grid - e[1]], axis=0)  # (5G, 2)
    vals = field_at(flow, stencil, x, y, backend=backend, **params)
    v, vxp, vxm, vyp, vym = (vals[i * g : (i + 1) * g] for i in range(5))
    J = np.empty((g, 2, 2))
    J[:, :, 0] = (vxp - vxm) / (2 * h)
    J[:, :, 1] = (vyp - vym) / (2 * h)
    return J, v


def curl(flow: str, x, y, grid, *, h: float | None = None, backend: str = "auto", **params):
    """Scalar curl ``dv2/dx - dv1/dy`` of the field at 2-D points ``grid`` (G, 2), by central differences.

    Each grid point gets its own stencil of half-width ``h`` (default
    ``1e-4`` times the spread of the particles and targets), so the grid
    spacing does not limit the accuracy.  A gradient field (MMD: ``v = -sigma^2
    grad f``) has zero curl; what remains is the differencing error.
    Returns ``(curl (G,), field (G, 2))``.
    """
    J, v = jacobian(flow, x, y, grid, h=h, backend=backend, **params)
    return J[:, 1, 0] - J[:, 0, 1], v


def relative_curl(flow: str, x, y, grid, **kw) -> float:
    """``max |curl| / max ||J||_F`` over the grid: the antisymmetric share of the field's derivative (0 for a gradient)."""
    J, _ = jacobian(flow, x, y, grid, **kw)
    c = J[:, 1, 0] - J[:, 0, 1]
    return float(np.max(np.abs(c)) / np.max(np.linalg.norm(J, axis=(1, 2))))


def _default_curl_setup(seed: int = 0):
    """A 2-D configuration with structure: target two_modes (separation 2, std 0.3), particles a shifted blob."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([rng.normal([-1.0, 0.0], 0.3, (60, 2)), rng.normal([1.0, 0.0], 0.3, (60, 2))])
    x = rng.normal([0.4, 0.6], 0.5, (80, 2))
    return x, y


CURL_FLOWS = (
    ("mmd", {"bandwidth": 1.0}),
    ("sinkhorn_proxy", {"epsilon": 1.0}),
    ("drift_da2", {"temperatures": 1.0, "cost": "sqeuclidean"}),
)


def plot_curl_maps(x=None, y=None, *, flows=CURL_FLOWS, extent=(-2.5, 2.5, -2.0, 2.5), grid_size: int = 41):
    """Curl maps ``dv2/dx - dv1/dy`` of several fields (default MMD, Sinkhorn proxy, DA2) on one grid.

    The colour is the curl divided by the largest Jacobian norm of that
    panel's field (a dimensionless share, common colour scale), with the
    field's arrows on top; particles are dots, targets crosses.  The same
    sigma for every flow (bandwidth 1, ``epsilon = temperature = sigma^2 = 1``,
    DA2 with the ``sqeuclidean`` cost) so the panels are comparable.
    Returns a ``matplotlib.figure.Figure``.
    """
    from matplotlib.figure import Figure

    if x is None or y is None:
        x, y = _default_curl_setup()
    x, y = _as2d(x, "x"), _as2d(y, "y")
    gx = np.linspace(extent[0], extent[1], grid_size)
    gy = np.linspace(extent[2], extent[3], grid_size)
    X, Y = np.meshgrid(gx, gy)
    grid = np.stack([X.ravel(), Y.ravel()], axis=1)
    fig = Figure(figsize=(4.2 * len(flows), 4.0), dpi=100, layout="constrained")
    maps = []
    for name, params in flows:
        J, v = jacobian(name, x, y, grid, **params)
        c = (J[:, 1, 0] - J[:, 0, 1]) / np.max(np.linalg.norm(J, axis=(1, 2)))
        maps.append((name, params, c, v))
    lim = max(float(np.max(np.abs(c))) for _, _, c, _ in maps) or 1.0
    for k, (name, params, c, v) in enumerate(maps):
        ax = fig.add_subplot(1, len(flows), k + 1)
        im = ax.pcolormesh(gx, gy, c.reshape(X.shape), cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto")
        step = max(1, grid_size // 13)
        sl = (slice(None, None, step), slice(None, None, step))
        ax.quiver(X[sl], Y[sl], v[:, 0].reshape(X.shape)[sl], v[:, 1].reshape(X.shape)[sl], color="0.2", width=0.004)
        ax.scatter(y[:, 0], y[:, 1], marker="x", s=8, color="k", lw=0.6)
        ax.scatter(x[:, 0], x[:, 1], marker=".", s=6, color="tab:orange")
        ax.set_title(f"{name}: max|curl|/max|J| = {np.max(np.abs(c)):.1e}", fontsize="small")
        ax.set_aspect("equal")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("curl of the field (Gretton et al. Prop. 3.2): MMD is a gradient, the proxy and DA2 are not", fontsize="small")
    return fig


# ================================================================ Gretton et al.'s toy example (reconstructed)


def _atoms_k(z, centres, weights, sigma):
    """``mu_k(z) = sum_j w_j k(z, c_j)`` and its gradient, for atoms; z (2,), centres (K, 2)."""
    diff = centres - z  # (K, 2)
    k = weights * np.exp(-np.sum(diff**2, axis=1) / (2 * sigma * sigma))  # (K,)
    return float(k.sum()), (k[:, None] * diff).sum(axis=0) / (sigma * sigma)


def toy_example(
    *,
    p_atoms=((0.0, 0.0),),
    p_weights=(1.0,),
    q_atoms=((1.0, 0.0), (0.0, 1.0)),
    q_weights=(0.5, 0.5),
    sigma: float = 1.0,
    point=(0.5, 0.0),
    n_per_unit: int = 4,
) -> dict:
    """Reconstruction of Gretton et al.'s toy example (eq. 37-39): the proxy field is not a gradient.

    The seed text lost the formulas of eq. 35-39; what survives is their
    structure, which we restore from the proxy's definition (FLOWS.md
    section 5) in the population limit with the unnormalised Gaussian kernel
    ``k``: with ``p_k = p * k``, ``q_k = q * k`` and the reweighted measures
    ``p~ = p / sqrt(q_k)``, ``q~ = q / sqrt(q_k)``,

        S+ = p~_k / sqrt(p_k),   S- = q~_k / sqrt(q_k),   m+- = z + sigma^2 grad log (p~_k, q~_k)
        v  = S+ S- (m+ - m-) = sigma^2 Gamma grad psi                         (eq. 35)
        Gamma = p~_k q~_k / sqrt(p_k q_k)   (the pre-conditioner),   psi = log p~_k - log q~_k

    ``v`` is a gradient only if ``curl v = sigma^2 (d1 Gamma d2 psi - d2 Gamma d1 psi) = 0``, i.e.
    ``grad Gamma`` parallel to ``grad psi`` (eq. 36, the wedge product).  The paper's
    choice of ``p``, ``q`` and the point is lost; ours: ``p`` an atom at the origin,
    ``q`` two equal atoms at ``e1`` and ``e2``, ``sigma = 1``, evaluated at ``(0.5, 0)``.
    Then ``q~`` is ``q`` up to a constant, and ``grad log Gamma ^ grad psi =
    -grad log k(., 0) ^ grad log q_k``, non-zero wherever the directions to
    the origin and to q's local barycentre differ (eq. 37-39).

    The closed-form curl is checked against the finite-difference curl of
    :func:`field_at` for stacked atoms (``n_per_unit`` particles per unit of
    mass; the proxy of stacked atoms equals its population limit).

    Returns a dict with ``Gamma``, ``grad_Gamma``, ``grad_psi``, ``wedge``
    (``d1 Gamma d2 psi - d2 Gamma d1 psi``), ``curl_closed_form`` (``sigma^2 wedge``),
    ``curl_measured`` and ``field`` at the point.
    """
    pa, pw = np.asarray(p_atoms, float), np.asarray(p_weights, float)
    qa, qw = np.asarray(q_atoms, float), np.asarray(q_weights, float)
    z = np.asarray(point, float)
    s = float(sigma)
    qk_at_p = np.array([_atoms_k(c, qa, qw, s)[0] for c in pa])  # q_k at p's atoms
    qk_at_q = np.array([_atoms_k(c, qa, qw, s)[0] for c in qa])
    pt_w = pw / np.sqrt(qk_at_p)  # p~ weights
    qt_w = qw / np.sqrt(qk_at_q)  # q~ weights
    pk, gpk = _atoms_k(z, pa, pw, s)
    qk, gqk = _atoms_k(z, qa, qw, s)
    ptk, gptk = _atoms_k(z, pa, pt_w, s)
    qtk, gqtk = _atoms_k(z, qa, qt_w, s)
    gamma = ptk * qtk / math.sqrt(pk * qk)
    grad_log_gamma = gptk / ptk + gqtk / qtk - 0.5 * gpk / pk - 0.5 * gqk / qk
    grad_gamma = gamma * grad_log_gamma
    grad_psi = gptk / ptk - gqtk / qtk
    wedge = float(grad_gamma[0] * grad_psi[1] - grad_gamma[1] * grad_psi[0])
    # the particle implementation on stacked atoms (integer counts per atom)
    def stack(atoms, weights):
        counts = np.rint(np.asarray(weights) * n_per_unit * len(weights) / np.sum(weights)).astype(int)
        return np.repeat(atoms, counts, axis=0)

    xq, yp = stack(qa, qw), stack(pa, pw)
    c_meas, v = curl("sinkhorn_proxy", xq, yp, z[None, :], epsilon=s * s)
    return {
        "Gamma": gamma,
        "grad_Gamma": grad_gamma,
        "grad_psi": grad_psi,
        "wedge": wedge,
        "curl_closed_form": s * s * wedge,
        "curl_measured": float(c_meas[0]),
        "field": v[0],
        "field_closed_form": s * s * gamma * grad_psi,
    }
