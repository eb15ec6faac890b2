"""Figures of a sweep folder, drawn from its point files alone (:func:`wgfsim.open_sweep`, ``layout="points"``).

- :func:`sample_grid`: the counterpart of Gretton et al. Figure 3 (and
  Appendix F): 2-D histograms of the final samples, one row per flow (and
  method), one column per value of the flow's hyper-parameter, the target's
  histogram in the first column; one figure per target (per value of the
  swept data keys, ``target.kind`` and the like).  A point without a file, or
  whose samples are all NaN, gets a grey panel saying so.
- :func:`final_metric_figure`: the counterpart of Gretton et al. Figure 2:
  the final metric (MMD^2 by default) against the hyper-parameter, one panel
  per target, one line per flow, the seeds' mean with their min-max band,
  the untrained value as a dotted line.
- :func:`plot_sweep`: both, as PNG files; :func:`sweep_summary`: the text of
  ``wgfsim info SWEEP_DIR``.

Which option is a flow's hyper-parameter comes from the flow registry
(``wgfsim.flows.get(name).hyper``); the values come from the swept coordinates
of the points.
"""

from __future__ import annotations

import json
import math
import pathlib
import textwrap
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from ._common import DPI, METHOD_ORDER, figure, fmt, hyper, limits, missing, parse_dims, values
from ..io import open_sweep
from ..io.schema import SCALAR_METRICS

__all__ = ["SWEEP_VARIABLES", "sample_grid", "final_metric_figure", "plot_sweep", "sweep_summary"]

DIM = "point"
BINS = 60  # histogram bins per axis in each sample-grid panel
CELL = 1.45  # inches per sample-grid panel
GRID_CMAP = "viridis"


# what the sweep figures draw: a sweep folder is read by the one reader, wgfsim.open_sweep(path,
# layout="points", variables=SWEEP_VARIABLES); only the positions, the target, the flows' stored options and
# the scalar metrics (not the velocities nor the mode masses), so a large sweep loads faster
SWEEP_VARIABLES = ("position", "target", "flow_params", *SCALAR_METRICS)


def _open(path):
    return open_sweep(path, layout="points", variables=list(SWEEP_VARIABLES))


# ------------------------------------------------------------------ reading the points


@dataclass
class _Row:
    """One row of a sample grid: a flow (with its method and fixed options) and its points by hyper value."""

    label: str
    flow: str
    hyper: str | None
    cells: dict = field(default_factory=dict)  # hyper value (or None: not swept) -> point index


def _keys(ds) -> list[str]:
    """The swept keys, in the sweep's order (the attribute ``sweep_keys``, else the point coordinates)."""
    on_point = [c for c in ds.coords if c != DIM and ds[c].dims == (DIM,)]
    try:
        keys = [k for k in json.loads(ds.attrs.get("sweep_keys", "[]")) if k in on_point]
    except (TypeError, ValueError):
        keys = []
    return keys + [c for c in on_point if c not in keys]


def _varying(ds, key: str) -> bool:
    return len({repr(v) for v in values(ds, key) if not missing(v)}) > 1


def _groups(ds) -> list[tuple[str, list[int]]]:
    """The points split by the swept data keys (``target.*``, ``init.*``...): ``[(label, point indices)]``."""
    data = [k for k in _keys(ds) if "." in k and _varying(ds, k)]
    columns = {k: values(ds, k) for k in data}
    out: dict[str, list[int]] = {}
    for i in range(ds.sizes[DIM]):
        # "moons" for the target kind, "target.separation=4" for the other data keys
        label = ", ".join(fmt(columns[k][i]) if k.endswith(".kind") else f"{k}={fmt(columns[k][i])}" for k in data)
        out.setdefault(label or "target", []).append(i)
    return list(out.items())


def _seeds(ds) -> list:
    return values(ds, "seed") if "seed" in ds.coords else [0] * ds.sizes[DIM]


def _status(ds) -> list[str]:
    if "status" not in ds:
        return ["complete"] * ds.sizes[DIM]
    return [str(s) for s in np.asarray(ds["status"].values).tolist()]


def _rows(ds, points: list[int], seed) -> list[_Row]:
    """The grid's rows for ``points`` (one seed): flows in sweep order, methods adjacent, fixed options split rows."""
    keys = _keys(ds)
    flows = [str(v) for v in values(ds, "flow")]
    methods = [str(v) for v in values(ds, "method")] if "method" in ds.coords else [""] * ds.sizes[DIM]
    seeds = _seeds(ds)
    show_method = len({methods[i] for i in points}) > 1
    hypers = {f: hyper(f) for f in dict.fromkeys(flows[i] for i in points)}
    # swept flow options other than the hyper-parameter (bare keys): each value gets its own row
    own = {"flow", "method", "seed"} | {h for h in hypers.values() if h}
    extra = [k for k in keys if "." not in k and k not in own and _varying(ds, k)]
    columns = {k: values(ds, k) for k in extra + [h for h in set(hypers.values()) if h and h in ds.coords]}
    rank = {m: j for j, m in enumerate(METHOD_ORDER)}
    rows: dict[tuple, _Row] = {}
    for i in points:
        if seeds[i] != seed:
            continue
        f = flows[i]
        opts = " ".join(f"{k}={fmt(columns[k][i])}" for k in extra if not missing(columns[k][i]))
        label = " ".join(p for p in (f, opts, methods[i] if show_method else "") if p)
        key = (f, opts, methods[i])
        h = hypers[f] if hypers[f] in columns else None
        row = rows.setdefault(key, _Row(label, f, h))
        value = None if h is None or missing(columns[h][i]) else columns[h][i]
        row.cells.setdefault(value, i)
    first = {}
    for f, opts, m in rows:
        first.setdefault(f, len(first))
    order = sorted(rows, key=lambda k: (first[k[0]], k[1], rank.get(k[2], len(rank))))
    return [rows[k] for k in order]


def _sorted_values(cells: dict) -> list:
    present = [v for v in cells if v is not None]
    try:
        present.sort()
    except TypeError:
        present.sort(key=repr)
    return present + ([None] if None in cells else [])


def _final_samples(ds, i: int, cols: list[int]) -> np.ndarray | None:
    """Point ``i``'s samples at its last record with a finite one, ``(n, len(cols))``; None when it has none."""
    x = np.asarray(ds["position"].values[i][..., cols], dtype=float)  # (time, particle, len(cols))
    finite = np.isfinite(x).all(axis=2)  # (time, particle)
    recorded = np.flatnonzero(finite.any(axis=1))
    if recorded.size == 0:
        return None
    last = recorded[-1]
    return x[last][finite[last]]


def _target(ds, points: list[int], status: list[str], cols: list[int]) -> np.ndarray:
    """The target sample of a group of points: one the points agree on, or that of a point with a file."""
    target = ds["target"]
    if target.dims == ("sample", "dim"):
        y = np.asarray(target.values, dtype=float)
    else:  # stacked along the points where they differ (NaN-padded)
        # reader: a point without a file carries another point's target; take one whose file was read
        have = [i for i in points if status[i] != "missing"] or points
        y = np.asarray(target.values[have[0]], dtype=float)
    y = y[:, cols]
    return y[np.isfinite(y).all(axis=1)]


# ------------------------------------------------------------------ sample grids (paper Figure 3)


def _histogram(ax, x: np.ndarray, lo, hi) -> None:
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=BINS, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    # imshow's rows are y: the transpose of histogram2d's (x-bin, y-bin) layout
    ax.imshow(counts.T, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), cmap=GRID_CMAP,
              interpolation="nearest", aspect="auto", vmin=0, vmax=max(counts.max(), 1.0))


def _blank(ax, text: str, colour: str = "0.35") -> None:
    ax.set_facecolor("0.9")
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, color=colour, wrap=True)


def sample_grid(ds, dims=None, seed=None) -> list[tuple[str, Figure]]:
    """Histograms of the final samples: rows = flows, columns = hyper-parameter values, one figure per target.

    Parameters
    ----------
    ds : xarray.Dataset
        :func:`wgfsim.open_sweep` of a sweep folder with ``layout="points"``
        (dims ``point, time, particle, dim, sample``).
    dims : (int, int) or "i,j", optional
        The two data coordinates histogrammed (default the first two).
    seed : int, optional
        The seed drawn (default the smallest in the sweep).

    Returns
    -------
    list of (label, Figure)
        One figure per value of the swept data keys (``"moons"``, ...) with
        at least one point file.  In
        each, column 0 is the target sample; panel (r, c) is the 2-D histogram
        (``BINS`` x ``BINS`` over the target's padded range, counts) of row
        r's samples at their last record, for the c-th value of its flow's
        hyper-parameter.  Missing points and points without a finite sample
        are grey panels that say so; a failed point with samples is drawn and
        labelled ``failed``.
    """
    dim = ds.sizes["dim"]
    if dim < 2:
        raise ValueError("sample_grid: the data are 1-D; a sample grid needs two coordinates")
    cols = list(parse_dims(dims, dim))
    seeds = _seeds(ds)
    seed = min(seeds) if seed is None else seed
    if seed not in seeds:
        raise ValueError(f"seed: expected one of the sweep's seeds {sorted(set(seeds))}, got {seed!r}")
    status = _status(ds)
    out = []
    for label, points in _groups(ds):
        rows = _rows(ds, points, seed)
        if not rows or all(status[i] == "missing" for i in points):
            continue  # no file of this target yet: nothing to draw, not even its sample
        target = _target(ds, points, status, cols)
        lo, hi = limits(target, np.empty((0, 2)), pad=0.15)
        n_cols = 1 + max(len(r.cells) for r in rows)
        fig = figure(0.9 + CELL * n_cols, 0.75 + CELL * len(rows))
        axes = fig.subplots(len(rows), n_cols, squeeze=False)
        for r, row in enumerate(rows):
            ax = axes[r, 0]
            if r == 0:
                _histogram(ax, target, lo, hi)
                ax.set_title("target", fontsize=8)
            else:
                ax.set_visible(False)
            for c, value in enumerate(_sorted_values(row.cells), start=1):
                ax = axes[r, c]
                i = row.cells[value]
                ax.set_title(f"{row.hyper}={fmt(value)}" if value is not None else "(hyper-parameter not swept)",
                             fontsize=7)
                x = _final_samples(ds, i, cols) if status[i] != "missing" else None
                if status[i] == "missing":
                    _blank(ax, "missing\n(no file)")
                elif x is None:
                    _blank(ax, f"{status[i]}\nno finite sample", "C3")
                else:
                    _histogram(ax, x, lo, hi)
                    if status[i] == "failed":
                        ax.text(0.03, 0.97, "failed", transform=ax.transAxes, ha="left", va="top", fontsize=7,
                                color="C3", fontweight="bold")
                ax.set_gid(f"point={i}")
            for c in range(1 + len(row.cells), n_cols):
                axes[r, c].set_visible(False)
            axes[r, 1].set_ylabel(textwrap.fill(row.label, 18), fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
        which = f", coordinates {cols[0] + 1} and {cols[1] + 1}" if dim > 2 else ""
        name = ds.attrs.get("scenario_name") or "sweep"
        fig.suptitle(f"{name}: {label}, final samples (seed {seed}{which})", fontsize=10)
        out.append((label, fig))
    return out


# ------------------------------------------------------------------ final metric against the hyper-parameter


def _length(ds, i: int, flow: str) -> float | None:
    """Point ``i``'s flow length scale (sigma, sqrt(eps), T, ...) from its stored options, or None."""
    from .. import flows

    scale = getattr(flows.get(flow), "length_scale", None)
    if scale is None or "flow_params" not in ds:
        return None
    try:
        params = json.loads(str(ds["flow_params"].values[i]))
        params.pop("flow", None)
        value = float(scale(flows.make_params(flow, **params)))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _final_metric(ds, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the metric at its first and at its last finite record (NaN when it has none)."""
    m = np.asarray(ds[metric].values, dtype=float)  # (point, time)
    first, last = np.full(m.shape[0], np.nan), np.full(m.shape[0], np.nan)
    for i, row in enumerate(m):
        ok = np.flatnonzero(np.isfinite(row))
        if ok.size:
            first[i], last[i] = row[ok[0]], row[ok[-1]]
    return first, last


def final_metric_figure(ds, metric: str = "mmd2") -> Figure:
    """The final ``metric`` against each flow's hyper-parameter: one panel per target, one line per flow.

    A line is the mean over seeds (points without a finite final value, not
    run yet or diverged, left out), the band their min-max.  The x axis is the flow's length scale
    (the registry's ``length_scale`` of the stored options: sigma, sqrt(eps),
    T) where the flow has one, log scale; flows without one (``sliced``'s
    number of projections) are drawn dashed against the top axis, in their
    own units.  The dotted grey line is the metric at the first record (the
    untrained generator or the initial particles), averaged over the points.
    """
    if metric not in ds or ds[metric].dims != (DIM, "time"):
        raise ValueError(f"metric: the sweep stores no {metric!r} per point and record")
    first, last = _final_metric(ds, metric)
    flows_ = [str(v) for v in values(ds, "flow")]
    methods = [str(v) for v in values(ds, "method")] if "method" in ds.coords else [""] * ds.sizes[DIM]
    groups = [(label, points) for label, points in _groups(ds) if np.isfinite(last[points]).any()]
    if not groups:
        raise ValueError(f"metric: no point of the sweep has a finite final {metric!r} yet")
    n = len(groups)
    ncols = min(n, 5)
    nrows = math.ceil(n / ncols)
    fig = figure(max(3.4 * ncols + 0.4, 8.0), 3.1 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    order = list(dict.fromkeys(flows_))
    colours = {f: f"C{j % 10}" for j, f in enumerate(order)}
    show_method = len(set(methods)) > 1
    any_length = False
    for ax, (label, points) in zip(axes, groups):
        lines: dict[tuple, dict] = {}
        for i in points:
            h = hyper(flows_[i])
            if h is None or h not in ds.coords:
                continue
            raw = values(ds, h)[i]
            if missing(raw) or not np.isfinite(last[i]):
                continue  # a point not run yet (or diverged) has no final value to draw, nor stored options
            scale = _length(ds, i, flows_[i])
            entry = lines.setdefault((flows_[i], methods[i]), {"length": scale is not None, "h": h, "x": {}})
            entry["length"] &= scale is not None
            entry["x"].setdefault(float(raw), []).append((scale, last[i]))
        top = None
        for (f, m), entry in lines.items():
            use_length = entry["length"]
            any_length |= use_length
            xs, mean, lo, hi = [], [], [], []
            for raw in sorted(entry["x"]):
                pairs = entry["x"][raw]
                vals = np.array([v for _, v in pairs])
                ok = vals[np.isfinite(vals)]
                xs.append(pairs[0][0] if use_length else raw)
                mean.append(ok.mean() if ok.size else np.nan)
                lo.append(ok.min() if ok.size else np.nan)
                hi.append(ok.max() if ok.size else np.nan)
            name = f"{f} {m}" if show_method else f
            name += "" if use_length else f" ({entry['h']})"
            if not use_length and lines and any(e["length"] for e in lines.values()):
                top = top or ax.twiny()
                target_ax, style = top, "--"
            else:
                target_ax, style = ax, "-"
            target_ax.plot(xs, mean, style, marker="o", markersize=3, color=colours[f], label=name,
                           gid=f"{f}|{m}")
            target_ax.fill_between(xs, lo, hi, color=colours[f], alpha=0.2, linewidth=0)
            target_ax.set_xscale("log")
        untrained = first[points][np.isfinite(first[points])]
        if untrained.size:
            ax.axhline(untrained.mean(), color="0.6", linewidth=0.8, linestyle=":", label="first record")
        finite = last[points][np.isfinite(last[points])]
        if finite.size and finite.min() > 0:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.tick_params(labelsize=7)
        if top is not None:
            top.set_xlabel("flows without a length scale, own units (dashed)", fontsize=7)
            top.tick_params(labelsize=7)
    for ax in axes[:n]:
        ax.set_xlabel("the flow's length scale (bandwidth sigma, sqrt(eps), ...)" if any_length
                      else "hyper-parameter value (each flow's units)",
                      fontsize=8)
    axes[0].set_ylabel(f"final {metric}", fontsize=9)
    handles, labels = [], []
    for ax in fig.axes:
        for hd, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in labels:
                handles.append(hd)
                labels.append(lb)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 7), fontsize=8, frameon=False)
    name = ds.attrs.get("scenario_name") or "sweep"
    fig.suptitle(f"{name}: final {metric} against the hyper-parameter (mean over seeds, band: min-max)", fontsize=10)
    return fig


# ------------------------------------------------------------------ files and text


def _slug(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text.replace("=", "-"))
    return "_".join(p for p in keep.split("_") if p) or "target"


def plot_sweep(ds_or_path, out_dir, dims=None, metric: str = "mmd2") -> list[pathlib.Path]:
    """Write a sweep's figures to ``out_dir`` as PNG and return their paths.

    ``STEM_samples_<target>.png`` per target (:func:`sample_grid`) and
    ``STEM_final_<metric>.png`` (:func:`final_metric_figure`, when the sweep
    stores ``metric``; else the first scalar metric it stores); ``STEM`` is
    the sweep's scenario name.
    """
    ds = _open(ds_or_path) if isinstance(ds_or_path, (str, pathlib.Path)) else ds_or_path
    stem = ds.attrs.get("scenario_name") or "sweep"
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if ds.sizes["dim"] >= 2:
        for label, fig in sample_grid(ds, dims=dims):
            path = out / f"{stem}_samples_{_slug(label)}.png"
            fig.savefig(path, dpi=DPI)
            paths.append(path)
    scalar = [v for v, var in ds.data_vars.items() if var.dims == (DIM, "time") and np.isfinite(var.values).any()]
    chosen = metric if metric in scalar else next((m for m in scalar if m != "loss"), None)
    if chosen is not None:
        path = out / f"{stem}_final_{chosen}.png"
        final_metric_figure(ds, chosen).savefig(path, dpi=DPI)
        paths.append(path)
    return paths


def sweep_summary(ds) -> str:
    """What ``wgfsim info SWEEP_DIR`` prints: points, swept axes and their values, status counts, failures."""
    status = _status(ds)
    lines = [f"{ds.attrs.get('sweep_dir', '?')}: sweep of scenario {ds.attrs.get('scenario_name', '?')!r}, "
             f"{ds.sizes[DIM]} point(s), wgfsim {ds.attrs.get('wgfsim_version', '?')}"]
    swept = [k for k in _keys(ds) if _varying(ds, k)]
    fixed = [k for k in _keys(ds) if k not in swept]
    lines.append("axes:")
    for k in swept:
        vals = [v for v in values(ds, k) if not missing(v)]
        distinct = list(dict.fromkeys(vals))
        try:
            distinct.sort()
        except TypeError:
            pass
        where = "" if len(vals) == ds.sizes[DIM] else f" ({len(vals)} points)"
        lines.append(f"  {k}: {', '.join(fmt(v) for v in distinct)}{where}")
    if fixed:
        lines.append("fixed: " + ", ".join(f"{k}={fmt(next((v for v in values(ds, k) if not missing(v)), ''))}"
                                           for k in fixed))
    counts = Counter(status)
    lines.append("status: " + ", ".join(f"{s} {counts[s]}" for s in ("complete", "failed", "missing") if counts[s])
                 + "".join(f", {s} {c}" for s, c in counts.items() if s not in ("complete", "failed", "missing")))
    files = [str(v) for v in np.asarray(ds["file"].values).tolist()] if "file" in ds else [""] * ds.sizes[DIM]
    errors = [str(v) for v in np.asarray(ds["error"].values).tolist()] if "error" in ds else [""] * ds.sizes[DIM]
    for i, s in enumerate(status):
        if s == "failed":
            first = (errors[i].strip().splitlines() or ["(no message)"])[0]
            lines.append(f"  failed: {files[i]}: {first}")
    gone = [files[i] for i, s in enumerate(status) if s == "missing"]
    if gone:
        shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
        lines.append(f"  missing (not run yet, or removed): {shown}")
    scalar = [v for v, var in ds.data_vars.items() if var.dims == (DIM, "time") and np.isfinite(var.values).any()]
    for m in scalar:
        _, last = _final_metric(ds, m)
        ok = last[np.isfinite(last)]
        if ok.size:
            lines.append(f"final {m}: min {ok.min():.4g}, median {np.median(ok):.4g}, max {ok.max():.4g} "
                         f"over {ok.size} point(s)")
    return "\n".join(lines)
