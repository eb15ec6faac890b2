"""Figures of a stored run group, drawn from the dataset alone (ARCHITECTURE.md, ``plots.py``).

Every figure can be remade from an ``.h5`` file: the functions take the
``xarray.Dataset`` of :func:`wgfsim.store.open_run` (:func:`plot_all` also takes a
path) and never look at a live run.  They build ``matplotlib.figure.Figure``
objects directly (rendered by Agg when saved), so importing this module
neither touches pyplot's global state nor changes the caller's backend.

- :func:`snapshots`: positions at about 5 records, one row per run
  (``STEM_snapshots.png`` from :func:`plot_all`);
- :func:`metric_curves`: each scalar metric against ``t``, log y (``STEM_metrics.png``);
- :func:`mode_mass_curves`: ``mode_mass`` against ``t``, one panel per mode (``STEM_mode_mass.png``);
- :func:`velocity_quiver`: the stored velocities at the particles (``STEM_velocity.png``).

Runs are labelled by ``flow``, the hyper-parameters that vary between runs,
``seed`` and ``method`` (the last two only when they vary).  When a dataset
holds both methods, particles and generator runs of the same flow, options and
seed share a colour and sit next to each other; particles are drawn solid,
generators dashed.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import textwrap
import tomllib
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from .store import SCALAR_METRICS, open_run

__all__ = ["plot_all", "snapshots", "metric_curves", "mode_mass_curves", "velocity_quiver", "DPI"]

DPI = 100  # every saved PNG: pixel size = figure size in inches x DPI
METHOD_ORDER = ("particles", "generator")
METHOD_STYLE = {"particles": "-", "generator": "--"}
METHOD_COLOUR = {"particles": "C0", "generator": "C3"}
TARGET_COLOUR = "0.72"
MAX_ARROWS = 400  # per quiver panel: more particles are subsampled evenly


# ------------------------------------------------------------------ runs, labels, records


@dataclass(frozen=True)
class _Run:
    index: int  # position along the dataset's run dimension
    key: str  # flow, varying options and seed: what particles and generator runs share
    label: str  # key plus the method (when methods vary)
    method: str


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value.item() if isinstance(value, np.generic) else value)


def _missing(value) -> bool:
    return value == "" or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _runs(ds) -> list[_Run]:
    """The runs in display order: by first appearance of their key, methods adjacent."""
    n = ds.sizes["run"]
    own = ("run", "flow", "method", "seed")
    hyper = [c for c in ds.coords if ds[c].dims == ("run",) and c not in own]
    columns = {c: [v.item() if isinstance(v, np.generic) else v for v in ds[c].values] for c in hyper}
    varying = [c for c in hyper if len({repr(v) for v in columns[c] if not _missing(v)}) > 1]
    flows = [str(v) for v in ds["flow"].values] if "flow" in ds.coords else ["run"] * n
    methods = [str(v) for v in ds["method"].values] if "method" in ds.coords else [""] * n
    seeds = [int(v) for v in ds["seed"].values] if "seed" in ds.coords else [0] * n
    show_seed, show_method = len(set(seeds)) > 1, len(set(methods)) > 1
    runs = []
    for r in range(n):
        parts = [flows[r]] + [f"{c}={_fmt(columns[c][r])}" for c in varying if not _missing(columns[c][r])]
        if show_seed:
            parts.append(f"seed={seeds[r]}")
        key = " ".join(parts)
        label = f"{key} {methods[r]}" if show_method else key
        runs.append(_Run(r, key, label, methods[r]))
    first = {}
    for run in runs:
        first.setdefault(run.key, len(first))
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(runs, key=lambda run: (first[run.key], rank.get(run.method, len(rank)), run.index))


def _key_colours(runs) -> dict[str, object]:
    """One colour per key (particles and generator runs of one key share it)."""
    keys = list(dict.fromkeys(run.key for run in runs))
    cmap = matplotlib.colormaps["tab10" if len(keys) <= 10 else "tab20"]
    return {key: cmap(i % cmap.N) for i, key in enumerate(keys)}


def _written(ds) -> np.ndarray:
    """Indices along ``time`` of the records some run has written (t is NaN elsewhere)."""
    return np.flatnonzero(np.isfinite(ds["t"].values).any(axis=0))


def _record(ds, index: int) -> int:
    """A record index (negative counts from the last written record) -> index along ``time``."""
    written = _written(ds)
    if written.size == 0:
        raise ValueError("the dataset holds no records yet")
    if not -written.size <= index < written.size:
        raise ValueError(f"time: expected a record index in {-written.size}..{written.size - 1}, got {index}")
    return int(written[index])


def _name(ds) -> str:
    """The scenario name for titles: an attribute, else the ``name`` in the stored scenario text."""
    for key in ("scenario_name", "name"):
        if isinstance(ds.attrs.get(key), str) and ds.attrs[key]:
            return ds.attrs[key]
    try:
        name = tomllib.loads(ds.attrs.get("scenario", ""))["name"]
        return name if isinstance(name, str) else "wgfsim"
    except (tomllib.TOMLDecodeError, KeyError, TypeError):
        return "wgfsim"


def _title(ds, what: str) -> str:
    partial = " (partial run)" if ds.attrs.get("status") == "partial" else ""
    return f"{_name(ds)}: {what}{partial}"


def _figure(width: float, height: float) -> Figure:
    # whole pixels, so the saved PNG is exactly figsize x DPI
    return Figure(figsize=(round(width * DPI) / DPI, round(height * DPI) / DPI), dpi=DPI, layout="constrained")


def _legend(fig: Figure, handles, labels, title=None) -> None:
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, title=title, title_fontsize=8,
                   ncols=1 if len(labels) <= 24 else 2, frameon=False)


# ------------------------------------------------------------------ snapshots


def _limits(target: np.ndarray, points: np.ndarray, pad: float = 0.08):
    """(lo, hi) per column: the target's whole range and the particles' 0.5-99.5 percentiles.

    Percentiles of the particles, so one diverged particle cannot flatten the view.
    """
    points = points[np.isfinite(points).all(axis=1)]
    lo, hi = target.min(axis=0), target.max(axis=0)
    if points.size:
        lo = np.minimum(lo, np.percentile(points, 0.5, axis=0))
        hi = np.maximum(hi, np.percentile(points, 99.5, axis=0))
    span = np.where(hi > lo, hi - lo, 1.0)
    return lo - pad * span, hi + pad * span


def _panel_height(lo, hi, dim: int, width: float) -> tuple[float, bool]:
    """Height (inches) of a panel ``width`` wide, and whether it keeps an equal aspect.

    Equal axes (circles stay circles) when the data's height/width ratio is
    within 1/3..3; the panel is then shaped like the data.
    """
    if dim < 2:
        return 0.8 * width, False
    ratio = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
    if not 1 / 3 <= ratio <= 3:
        return 0.9 * width, False
    return 0.45 + width * float(np.clip(ratio, 0.4, 1.2)), True


def snapshots(ds, times=None, ax_grid=None) -> Figure:
    """Particle positions (first two dims) at about five records, one row per run.

    Parameters
    ----------
    ds : xarray.Dataset
        A stored run group (:func:`wgfsim.store.open_run`).
    times : sequence of int, optional
        Record indices for the columns (negative ones count from the last
        written record); default: five records evenly spread from the first
        to the last.
    ax_grid : 2-D array of Axes, optional
        Draw into these axes, shape ``(n_runs, len(times))``, instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The target sample in grey beneath each panel; 1-D data as histograms.
    """
    runs = _runs(ds)
    written = _written(ds)
    if written.size == 0:
        raise ValueError("snapshots: the dataset holds no records yet")
    if times is None:
        picks = np.unique(np.round(np.linspace(0, written.size - 1, min(5, written.size))).astype(int))
        columns = [int(written[i]) for i in picks]
    else:
        columns = [_record(ds, int(i)) for i in times]
    position = ds["position"].values  # (run, time, particle, dim)
    target = ds["target"].values  # (sample, dim)
    dim = target.shape[1]
    shown = position[:, columns, :, : min(dim, 2)].reshape(-1, min(dim, 2))
    lo, hi = _limits(target[:, :2], shown)
    t = ds["t"].values  # (run, time)
    height, equal = _panel_height(lo, hi, dim, 2.4)

    if ax_grid is None:
        fig = _figure(0.8 + 2.4 * len(columns), 0.7 + height * len(runs))
        ax_grid = np.atleast_2d(fig.subplots(len(runs), len(columns), squeeze=False))
        fig.suptitle(_title(ds, "particle positions" + (" (first two dims)" if dim > 2 else "") + ", target in grey"))
    else:
        ax_grid = np.asarray(ax_grid).reshape(len(runs), len(columns))
        fig = ax_grid.flat[0].figure
    n_particles = position.shape[2]
    size = float(np.clip(3000.0 / max(n_particles, target.shape[0]), 0.5, 8.0))
    bins = np.linspace(lo[0], hi[0], 41)

    for row, run in enumerate(runs):
        colour = METHOD_COLOUR.get(run.method, "C2")
        for col, ti in enumerate(columns):
            ax = ax_grid[row, col]
            x = position[run.index, ti]  # (particle, dim)
            if dim == 1:
                ax.hist(target[:, 0], bins=bins, density=True, color=TARGET_COLOUR)
                if np.isfinite(x).any():
                    finite = x[np.isfinite(x[:, 0]), 0]  # runs with fewer samples than the file's particle axis
                    ax.hist(finite, bins=bins, density=True, histtype="step", color=colour, linewidth=1.2)
                ax.set_xlim(lo[0], hi[0])
            else:
                ax.scatter(target[:, 0], target[:, 1], s=size, color=TARGET_COLOUR, linewidths=0, rasterized=True)
                ax.scatter(x[:, 0], x[:, 1], s=size, color=colour, linewidths=0, rasterized=True)
                ax.set_xlim(lo[0], hi[0])
                ax.set_ylim(lo[1], hi[1])
                if equal:
                    ax.set_aspect("equal", adjustable="box")
            if not np.isfinite(x).any():
                ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="0.4")
            ax.tick_params(labelsize=7)
            if row == 0:
                same_t = np.unique(t[np.isfinite(t[:, ti]), ti])
                when = f", t = {same_t[0]:g}" if same_t.size == 1 else ""
                ax.set_title(f"step {int(ds['step'].values[ti])}{when}", fontsize=9)
            if row == len(runs) - 1:
                ax.set_xlabel("$x_1$", fontsize=8)
            if col == 0:
                wrapped = textwrap.fill(run.label, 28)
                ax.set_ylabel(f"{wrapped}\n" + ("density" if dim == 1 else "$x_2$"), fontsize=8)
    return fig


# ------------------------------------------------------------------ curves against t


def _present(ds, names) -> list[str]:
    """The variables among ``names`` stored with at least one finite value."""
    return [m for m in names if m in ds and np.isfinite(ds[m].values).any()]


def _yscale(ax, values: np.ndarray) -> None:
    """Log y scale; symlog when a metric goes through zero (an energy estimated by Monte Carlo)."""
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")
    elif finite.size and np.any(finite != 0):
        ax.set_yscale("symlog", linthresh=float(np.percentile(np.abs(finite[finite != 0]), 5)))


def _grid(n_panels: int, max_cols: int, panel=(4.2, 3.0), legend_width: float = 0.0):
    cols = min(max_cols, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = _figure(panel[0] * cols + legend_width, panel[1] * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _lines(ax, ds, runs, colours, values) -> None:
    """One line per run of ``values`` (run, time) against that run's t; each Line2D's gid is ``run=<index>``."""
    t = ds["t"].values
    for run in runs:
        keep = np.isfinite(t[run.index])
        ax.plot(t[run.index, keep], values[run.index, keep], METHOD_STYLE.get(run.method, ":"),
                color=colours[run.key], linewidth=1.3, label=run.label, gid=f"run={run.index}")


def _legend_width(runs) -> float:
    return 0.4 + 0.065 * max(len(run.label) for run in runs) * (1 if len(runs) <= 24 else 2)


def metric_curves(ds) -> Figure:
    """Each stored scalar metric against ``t`` (log y), one line per run; all-NaN metrics are skipped.

    With both methods in the dataset a run's particles (solid) and generator
    (dashed) curves share a colour, so they compare directly.
    """
    names = _present(ds, SCALAR_METRICS)
    if not names:
        raise ValueError(f"metric_curves: no metric holds a finite value (looked for {list(SCALAR_METRICS)})")
    runs = _runs(ds)
    colours = _key_colours(runs)
    fig, axes = _grid(len(names), 3, legend_width=_legend_width(runs))
    for ax, name in zip(axes, names):
        values = ds[name].values
        _lines(ax, ds, runs, colours, values)
        _yscale(ax, values)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("t")
        ax.set_ylabel(textwrap.fill(ds[name].attrs.get("long_name", name), 34), fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    methods = {run.method for run in runs}
    note = ", solid: particles, dashed: generator" if methods >= set(METHOD_ORDER) else ""
    fig.suptitle(_title(ds, "metrics against t" + note))
    _legend(fig, *axes[0].get_legend_handles_labels(), title="run")
    return fig


def _attr_array(value) -> np.ndarray | None:
    """An attribute holding numbers, as stored (a 1-D array) or as JSON text (the runner's nested lists)."""
    if value is None:
        return None
    try:
        return np.asarray(json.loads(value) if isinstance(value, str) else value, dtype=float)
    except (ValueError, TypeError):
        return None


def _reference_mode_mass(ds) -> np.ndarray | None:
    """The target sample's mode masses (K,), or None when the file does not say where the modes are.

    Sources in order: the attribute ``target_mode_mass``; the mode centres of
    the attribute ``mode_centres`` (``K x dim``, JSON text or flattened); the
    centres of the target rebuilt from the stored scenario text (with the
    stored ``overrides`` and the data-sweep coordinates ``target.<option>``).
    Centres give masses by the metric's nearest-centre rule on the stored
    ``target`` sample.
    """
    from .metrics import mode_mass

    k, dim = ds.sizes["mode"], ds.sizes["dim"]
    given = _attr_array(ds.attrs.get("target_mode_mass"))
    if given is not None and given.size == k:
        return given.ravel()
    centres = _attr_array(ds.attrs.get("mode_centres"))
    if centres is None or centres.size != k * dim:
        centres = _scenario_centres(ds)
    if centres is None or centres.size != k * dim:
        return None
    return mode_mass(ds["target"].values, centres.reshape(k, dim))


def _scenario_centres(ds) -> np.ndarray | None:
    from .scenario import loads

    text = ds.attrs.get("scenario")
    if not isinstance(text, str):
        return None
    extra = ds.attrs.get("overrides", [])
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = [extra]
    overrides = [str(o) for o in np.atleast_1d(extra)]
    for c in ds.coords:
        if c.startswith("target.") and ds[c].dims == ("run",):
            values = {_fmt(v) for v in ds[c].values}
            if len(values) == 1:
                overrides.append(f"{c}={values.pop()}")
    try:
        centres = loads(text, overrides=overrides).target.build().centres
    except (ValueError, TypeError, KeyError):  # a swept, file-based or unreadable target: no reference line
        return None
    return None if centres is None else np.asarray(centres, dtype=float)


def mode_mass_curves(ds) -> Figure:
    """``mode_mass`` against ``t``, one panel per mode, the target's mode mass as a horizontal line.

    The reference line is drawn when the file tells where the modes are (see
    :func:`_reference_mode_mass`); otherwise it is left out.
    """
    if "mode_mass" not in ds or ds.sizes.get("mode", 0) == 0 or not _present(ds, ["mode_mass"]):
        raise ValueError("mode_mass_curves: the dataset has no mode_mass values")
    runs = _runs(ds)
    colours = _key_colours(runs)
    k = ds.sizes["mode"]
    names = [str(m) for m in ds["mode"].values] if "mode" in ds.coords else [f"mode {j}" for j in range(k)]
    reference = _reference_mode_mass(ds)
    fig, axes = _grid(k, 4, panel=(3.6, 2.8), legend_width=_legend_width(runs))
    mass = ds["mode_mass"].values  # (run, time, mode)
    for j, ax in enumerate(axes):
        _lines(ax, ds, runs, colours, mass[:, :, j])
        if reference is not None:
            ax.axhline(reference[j], color="k", linestyle=":", linewidth=1.2, label="target sample", gid="target")
        ax.set_title(f"mode {names[j]}", fontsize=10)
        ax.set_xlabel("t")
        ax.set_ylabel("fraction of particles", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    fig.suptitle(_title(ds, "mass nearest each mode"))
    _legend(fig, *axes[0].get_legend_handles_labels(), title="run")
    return fig


# ------------------------------------------------------------------ velocities


def velocity_quiver(ds, run: int | None = None, time: int = 0) -> Figure:
    """The stored velocities as arrows at the particles (first two dims), one panel per run.

    Only the stored field is drawn (written by runs with ``run.record_velocity
    = true``); nothing is recomputed.  ``run`` is an index along ``run``
    (None: every run with a stored velocity at that record), ``time`` a record
    index (negative counts from the last record).  Each panel has its own
    arrow scale (its 95th-percentile speed, in the title, spans 8% of the
    panel), so weak fields stay visible; in 1-D the panels plot ``v`` against ``x``.
    """
    if "velocity" not in ds:
        raise ValueError("velocity_quiver: the dataset stores no velocity; run with run.record_velocity = true")
    ti = _record(ds, time)
    x = ds["position"].values[:, ti]  # (run, particle, dim)
    v = ds["velocity"].values[:, ti]  # (run, particle, dim)
    candidates = _runs(ds) if run is None else [r for r in _runs(ds) if r.index == run]
    if run is not None and not candidates:
        raise ValueError(f"run: expected an index in 0..{ds.sizes['run'] - 1}, got {run!r}")
    runs = [r for r in candidates if np.isfinite(v[r.index]).any()]
    if not runs:
        raise ValueError(f"velocity_quiver: no velocity was stored at record {time} (run {run})")
    target = ds["target"].values
    dim = target.shape[1]
    every = max(1, math.ceil(x.shape[1] / MAX_ARROWS))
    lo, hi = _limits(target[:, :2], x[[r.index for r in runs], :, :2].reshape(-1, min(dim, 2)))
    height, equal = _panel_height(lo, hi, dim, 3.4)
    fig, axes = _grid(len(runs), 4, panel=(3.4, height))
    for ax, r in zip(axes, runs):
        colour = METHOD_COLOUR.get(r.method, "C2")
        xs, vs = x[r.index, ::every], v[r.index, ::every]
        speed = np.linalg.norm(vs, axis=1)
        typical = float(np.nanpercentile(speed, 95)) if np.isfinite(speed).any() else 0.0
        if dim == 1:
            ax.plot(xs[:, 0], vs[:, 0], ".", color=colour, markersize=3)
            ax.axhline(0.0, color=TARGET_COLOUR, linewidth=1)
            ax.set_xlabel("$x$")
            ax.set_ylabel("$v(x)$")
        else:
            ax.scatter(target[:, 0], target[:, 1], s=2, color=TARGET_COLOUR, linewidths=0, rasterized=True)
            # direction in data coordinates, length in panel widths: readable even when the axes are unequal
            ax.quiver(xs[:, 0], xs[:, 1], vs[:, 0], vs[:, 1], color=colour, angles="xy", scale_units="width",
                      scale=max(typical, 1e-300) / 0.08, width=0.004)
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            if equal:
                ax.set_aspect("equal", adjustable="box")
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
        ax.set_title(textwrap.fill(r.label, 36) + f"\n95% of |v| < {typical:.3g}", fontsize=8)
        ax.tick_params(labelsize=7)
    step = int(ds["step"].values[ti])
    sub = f" (1 particle in {every})" if every > 1 else ""
    fig.suptitle(_title(ds, f"stored velocity at the particles, step {step}{sub}"))
    return fig


# ------------------------------------------------------------------ everything


def _applies(ds) -> dict:
    has_records = _written(ds).size > 0
    return {
        "snapshots": (snapshots, has_records),
        "metrics": (metric_curves, has_records and bool(_present(ds, SCALAR_METRICS))),
        "mode_mass": (mode_mass_curves, has_records and ds.sizes.get("mode", 0) > 0 and bool(_present(ds, ["mode_mass"]))),
        "velocity": (velocity_quiver, has_records and bool(_present(ds, ["velocity"]))),
    }


def plot_all(ds_or_path, out_dir) -> list[pathlib.Path]:
    """Write every figure that applies to ``out_dir`` as PNG and return their paths.

    ``ds_or_path`` is a dataset or a stored file (``NAME.h5`` or
    ``NAME.h5.partial``); files are named ``STEM_<figure>.png`` with ``STEM``
    the file name without ``.h5`` (the scenario name for a dataset).  Figures
    whose data the file lacks (no mode centres, no stored velocity, all-NaN
    metrics) are skipped.
    """
    if isinstance(ds_or_path, (str, os.PathLike)):
        ds = open_run(ds_or_path)
        stem = pathlib.Path(ds_or_path).name.removesuffix(".partial").removesuffix(".h5")
    else:
        ds = ds_or_path
        stem = _name(ds)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for what, (draw, ok) in _applies(ds).items():
        if ok:
            path = out / f"{stem}_{what}.png"
            draw(ds).savefig(path, dpi=DPI)
            paths.append(path)
    return paths
