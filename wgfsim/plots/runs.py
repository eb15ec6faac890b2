"""Still figures of a stored run group, drawn from the dataset alone.

Every figure can be remade from an ``.h5`` file: the functions take the
``xarray.Dataset`` of :func:`wgfsim.open_run` (:func:`plot_all` also takes a
path) and never look at a live run nor at the scenario text.  They build ``matplotlib.figure.Figure``
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

import math
import os
import pathlib
import textwrap

import numpy as np
from matplotlib.figure import Figure

from ._common import (DPI, METHOD_COLOUR, METHOD_ORDER, METHOD_STYLE, TARGET_COLOUR, axis_label, figure, key_colours,
                      legend, limits, panel_height, parse_dims, record, runs, scalar_metrics, target_mode_mass, title,
                      written)
from ._common import name as scenario_name
from ..io import open_run

__all__ = ["plot_all", "snapshots", "metric_curves", "mode_mass_curves", "velocity_quiver"]

MAX_ARROWS = 400  # per quiver panel: more particles are subsampled evenly


# ------------------------------------------------------------------ snapshots


def snapshots(ds, times=None, ax_grid=None, dims=None) -> Figure:
    """Particle positions at about five records, one row per run.

    Parameters
    ----------
    ds : xarray.Dataset
        A stored run group (:func:`wgfsim.open_run`).
    times : sequence of int, optional
        Record indices for the columns (negative ones count from the last
        written record); default: five records evenly spread from the first
        to the last.
    ax_grid : 2-D array of Axes, optional
        Draw into these axes, shape ``(n_runs, len(times))``, instead of a new figure.
    dims : (int, int) or "i,j", optional
        The two data coordinates drawn (default the first two).

    Returns
    -------
    matplotlib.figure.Figure
        The target sample in grey beneath each panel; 1-D data as histograms.
    """
    order = runs(ds)
    done = written(ds)
    if done.size == 0:
        raise ValueError("snapshots: the dataset holds no records yet")
    if times is None:
        picks = np.unique(np.round(np.linspace(0, done.size - 1, min(5, done.size))).astype(int))
        columns = [int(done[i]) for i in picks]
    else:
        columns = [record(ds, int(i)) for i in times]
    dim = ds.sizes["dim"]
    axes_ = list(parse_dims(dims, dim))
    position = ds["position"].values[..., axes_]  # (run, time, particle, len(axes_))
    target = ds["target"].values[:, axes_]  # (sample, len(axes_))
    shown = position[:, columns].reshape(-1, len(axes_))
    lo, hi = limits(target, shown)
    t = ds["t"].values  # (run, time)
    height, equal = panel_height(lo, hi, len(axes_), 2.4)

    if ax_grid is None:
        fig = figure(0.8 + 2.4 * len(columns), 0.7 + height * len(order))
        ax_grid = np.atleast_2d(fig.subplots(len(order), len(columns), squeeze=False))
        which = f" (coordinates {axes_[0] + 1} and {axes_[1] + 1} of {dim})" if dim > 2 else ""
        fig.suptitle(title(ds, f"particle positions{which}, target in grey"))
    else:
        ax_grid = np.asarray(ax_grid).reshape(len(order), len(columns))
        fig = ax_grid.flat[0].figure
    n_particles = position.shape[2]
    size = float(np.clip(3000.0 / max(n_particles, target.shape[0]), 0.5, 8.0))
    bins = np.linspace(lo[0], hi[0], 41)

    for row, run in enumerate(order):
        colour = METHOD_COLOUR.get(run.method, "C2")
        for col, ti in enumerate(columns):
            ax = ax_grid[row, col]
            x = position[run.index, ti]  # (particle, len(axes_))
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
            if row == len(order) - 1:
                ax.set_xlabel(axis_label(axes_[0]), fontsize=8)
            if col == 0:
                wrapped = textwrap.fill(run.label, 28)
                ax.set_ylabel(f"{wrapped}\n" + ("density" if dim == 1 else axis_label(axes_[1])), fontsize=8)
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
    fig = figure(panel[0] * cols + legend_width, panel[1] * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _lines(ax, ds, order, colours, values) -> None:
    """One line per run of ``values`` (run, time) against that run's t; each Line2D's gid is ``run=<index>``."""
    t = ds["t"].values
    for run in order:
        keep = np.isfinite(t[run.index])
        ax.plot(t[run.index, keep], values[run.index, keep], METHOD_STYLE.get(run.method, ":"),
                color=colours[run.key], linewidth=1.3, label=run.label, gid=f"run={run.index}")


def _legend_width(order) -> float:
    return 0.4 + 0.065 * max(len(run.label) for run in order) * (1 if len(order) <= 24 else 2)


def metric_curves(ds) -> Figure:
    """Each stored scalar metric against ``t`` (log y), one line per run; all-NaN metrics are skipped.

    With both methods in the dataset a run's particles (solid) and generator
    (dashed) curves share a colour, so they compare directly.
    """
    names = scalar_metrics(ds)
    if not names:
        raise ValueError("metric_curves: no metric holds a finite value (no (run, time) variable with a number)")
    order = runs(ds)
    colours = key_colours(order)
    fig, axes = _grid(len(names), 3, legend_width=_legend_width(order))
    for ax, name in zip(axes, names):
        values = ds[name].values
        _lines(ax, ds, order, colours, values)
        _yscale(ax, values)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("t")
        ax.set_ylabel(textwrap.fill(ds[name].attrs.get("long_name", name), 34), fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    methods = {run.method for run in order}
    note = ", solid: particles, dashed: generator" if methods >= set(METHOD_ORDER) else ""
    fig.suptitle(title(ds, "metrics against t" + note))
    legend(fig, *axes[0].get_legend_handles_labels(), title_="run")
    return fig


def mode_mass_curves(ds) -> Figure:
    """``mode_mass`` against ``t``, one panel per mode, the target's mode mass as a horizontal line.

    The reference line is the file's ``target_mode_mass`` (or the target
    sample's nearest-centre masses about the stored mode centres); a file that
    says neither gets no line.
    """
    if "mode_mass" not in ds or ds.sizes.get("mode", 0) == 0 or not _present(ds, ["mode_mass"]):
        raise ValueError("mode_mass_curves: the dataset has no mode_mass values")
    order = runs(ds)
    colours = key_colours(order)
    k = ds.sizes["mode"]
    names = [str(m) for m in ds["mode"].values] if "mode" in ds.coords else [f"mode {j}" for j in range(k)]
    reference = target_mode_mass(ds)
    fig, axes = _grid(k, 4, panel=(3.6, 2.8), legend_width=_legend_width(order))
    mass = ds["mode_mass"].values  # (run, time, mode)
    for j, ax in enumerate(axes):
        _lines(ax, ds, order, colours, mass[:, :, j])
        if reference is not None:
            ax.axhline(reference[j], color="k", linestyle=":", linewidth=1.2, label="target sample", gid="target")
        ax.set_title(f"mode {names[j]}", fontsize=10)
        ax.set_xlabel("t")
        ax.set_ylabel("fraction of particles", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title(ds, "mass nearest each mode"))
    legend(fig, *axes[0].get_legend_handles_labels(), title_="run")
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
    ti = record(ds, time)
    x = ds["position"].values[:, ti]  # (run, particle, dim)
    v = ds["velocity"].values[:, ti]  # (run, particle, dim)
    candidates = runs(ds) if run is None else [r for r in runs(ds) if r.index == run]
    if run is not None and not candidates:
        raise ValueError(f"run: expected an index in 0..{ds.sizes['run'] - 1}, got {run!r}")
    shown = [r for r in candidates if np.isfinite(v[r.index]).any()]
    if not shown:
        raise ValueError(f"velocity_quiver: no velocity was stored at record {time} (run {run})")
    target = ds["target"].values
    dim = target.shape[1]
    every = max(1, math.ceil(x.shape[1] / MAX_ARROWS))
    lo, hi = limits(target[:, :2], x[[r.index for r in shown], :, :2].reshape(-1, min(dim, 2)))
    height, equal = panel_height(lo, hi, dim, 3.4)
    fig, axes = _grid(len(shown), 4, panel=(3.4, height))
    for ax, r in zip(axes, shown):
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
    fig.suptitle(title(ds, f"stored velocity at the particles, step {step}{sub}"))
    return fig


# ------------------------------------------------------------------ everything


def _applies(ds) -> dict:
    has_records = written(ds).size > 0
    return {
        "snapshots": (snapshots, has_records),
        "metrics": (metric_curves, has_records and bool(scalar_metrics(ds))),
        "mode_mass": (mode_mass_curves, has_records and ds.sizes.get("mode", 0) > 0 and bool(_present(ds, ["mode_mass"]))),
        "velocity": (velocity_quiver, has_records and bool(_present(ds, ["velocity"]))),
    }


def plot_all(ds_or_path, out_dir, dims=None) -> list[pathlib.Path]:
    """Write every figure that applies to ``out_dir`` as PNG and return their paths.

    ``ds_or_path`` is a dataset or a stored file (``NAME.h5`` or
    ``NAME.h5.partial``); files are named ``STEM_<figure>.png`` with ``STEM``
    the file name without ``.h5`` (the scenario name for a dataset).  Figures
    whose data the file lacks (no mode centres, no stored velocity, all-NaN
    metrics) are skipped.  ``dims`` picks the two data coordinates of the
    snapshots (default the first two; see :func:`snapshots`).
    """
    if isinstance(ds_or_path, (str, os.PathLike)):
        ds = open_run(ds_or_path)  # the one reader, wgfsim.io.open_run
        stem = pathlib.Path(ds_or_path).name.removesuffix(".partial").removesuffix(".h5")
    else:
        ds = ds_or_path
        stem = scenario_name(ds)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for what, (draw, ok) in _applies(ds).items():
        if ok:
            path = out / f"{stem}_{what}.png"
            fig = draw(ds, dims=dims) if draw is snapshots else draw(ds)
            fig.savefig(path, dpi=DPI)
            paths.append(path)
    return paths
