"""Animated trajectories of a stored run group: every run in its own panel, one frame per drawn record.

:func:`animate` writes one GIF (matplotlib's Pillow writer, no extra
dependency) or MP4 (ffmpeg on the PATH) per stored run group.  Each panel
shows one run's particles (or generator samples) over the target sample in
grey, the two coordinates ``dims`` of the data; under it the mass nearest each
target mode as bars (the target's own mode mass marked in black) or, for a
target without modes, the MMD^2 curve drawn up to the frame's time.  Runs of
the same flow, options and seed with both methods sit next to each other.
Long runs are subsampled to at most ``max_frames`` records, evenly spread and
always including the first and the last.

Everything comes from the file (:func:`wgfsim.open_run`); nothing is recomputed
but the histogram of 1-D data.
"""

from __future__ import annotations

import math
import pathlib
import sys
import textwrap
from dataclasses import dataclass
from typing import Callable

import numpy as np
from matplotlib.figure import Figure

from ._common import (METHOD_COLOUR, TARGET_COLOUR, axis_label, figure, limits, panel_height, parse_dims, runs,
                      scalar_metrics, target_mode_mass, title, written)

__all__ = ["animate", "frames", "Animation", "animation_figure", "MAX_FRAMES", "FORMATS"]

MAX_FRAMES = 120  # default cap on frames: ~2 MB for three 512-particle panels as GIF
FORMATS = ("gif", "mp4")
ANIMATION_DPI = 80  # pixels per inch of the frames: smaller files than the still figures' 100
MAX_BARS = 12  # more modes than this: the metric curve instead of mode-mass bars
PANEL_WIDTH = 3.0  # inches


def frames(ds, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Indices along ``time`` of the records drawn: at most ``max_frames``, evenly spread, first and last kept.

    With ``n`` written records and ``m = min(n, max_frames)`` frames, frame
    ``k`` is record ``round(k (n - 1) / (m - 1))``: consecutive frames are
    ``floor`` or ``ceil`` of ``(n - 1) / (m - 1)`` records apart.
    """
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise ValueError(f"max_frames: expected a positive integer, got {max_frames!r}")
    done = written(ds)
    if done.size == 0:
        raise ValueError("animate: the dataset holds no records yet")
    m = min(done.size, int(max_frames))
    if m == 1:
        return done[-1:]
    picks = np.round(np.arange(m) * (done.size - 1) / (m - 1)).astype(int)
    return done[picks]


def _under_plot(ds) -> str | None:
    """What goes under each panel: ``"mode_mass"`` bars, a metric's name (its curve), or None."""
    k = ds.sizes.get("mode", 0)
    if 0 < k <= MAX_BARS and "mode_mass" in ds and np.isfinite(ds["mode_mass"].values).any():
        return "mode_mass"
    metrics = scalar_metrics(ds)
    if "mmd2" in metrics:
        return "mmd2"
    return next((m for m in metrics if m != "loss"), None)


@dataclass
class Animation:
    """A figure whose artists :attr:`update` moves to a record (an index along ``time``)."""

    figure: Figure
    update: Callable[[int], None]
    scatters: dict  # run index -> PathCollection (2-D) or StepPatch (1-D) of that run's points
    dims: tuple


def animation_figure(ds, dims=None, dpi: int = ANIMATION_DPI) -> Animation:
    """Build the animation's figure and its per-record update (see the module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
        A stored run group (:func:`wgfsim.open_run`).
    dims : (int, int) or "i,j", optional
        The two data coordinates drawn (default the first two; 1-D data as histograms).
    dpi : int
        Pixels per inch of the frames.
    """
    order = runs(ds)
    done = written(ds)
    if done.size == 0:
        raise ValueError("animate: the dataset holds no records yet")
    dim = ds.sizes["dim"]
    axes_ = parse_dims(dims, dim)
    cols = list(axes_)
    position = np.asarray(ds["position"].values[..., cols], dtype=float)  # (run, time, particle, len(cols))
    target = np.asarray(ds["target"].values[:, cols], dtype=float)  # (sample, len(cols))
    t = np.asarray(ds["t"].values, dtype=float)  # (run, time)
    steps = np.asarray(ds["step"].values)
    lo, hi = limits(target, position[:, done].reshape(-1, len(cols)))
    height, equal = panel_height(lo, hi, len(cols), PANEL_WIDTH)
    if equal:  # shaped like the data, so the equal-aspect box fills its panel
        height = 0.45 + PANEL_WIDTH * float(np.clip((hi[1] - lo[1]) / (hi[0] - lo[0]), 0.25, 1.3))
    under = _under_plot(ds)
    under_height = 1.1 if under else 0.0

    n = len(order)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    fig = figure(PANEL_WIDTH * ncols + 0.3, (height + under_height + 0.45) * nrows + 0.5, dpi=dpi)
    ratios = [height, under_height] * nrows if under else [height] * nrows
    grid = fig.add_gridspec(len(ratios), ncols, height_ratios=ratios)
    per_row = 2 if under else 1
    n_points = position.shape[2]
    size = float(np.clip(2000.0 / max(n_points, target.shape[0]), 0.5, 6.0))
    bins = np.linspace(lo[0], hi[0], 41)
    uniform_t = bool(np.all([np.unique(t[np.isfinite(t[:, ti]), ti]).size <= 1 for ti in done]))

    scatters, bars, curves, notes, clocks = {}, {}, {}, {}, {}
    if under == "mode_mass":
        mass = np.asarray(ds["mode_mass"].values, dtype=float)  # (run, time, mode)
        reference = target_mode_mass(ds)
        modes = [str(m) for m in ds["mode"].values] if "mode" in ds.coords else [str(j) for j in range(mass.shape[2])]
    elif under:
        metric = np.asarray(ds[under].values, dtype=float)  # (run, time)
    for i, run in enumerate(order):
        row, col = divmod(i, ncols)
        ax = fig.add_subplot(grid[row * per_row, col])
        colour = METHOD_COLOUR.get(run.method, "C2")
        if len(cols) == 1:
            ax.hist(target[:, 0], bins=bins, density=True, color=TARGET_COLOUR)
            scatters[run.index] = ax.stairs(np.zeros(bins.size - 1), bins, color=colour, linewidth=1.4)
            peak = np.histogram(target[:, 0], bins=bins, density=True)[0].max()
            ax.set_ylim(0, 2.0 * peak if peak > 0 else 1.0)
        else:
            ax.scatter(target[:, 0], target[:, 1], s=size, color=TARGET_COLOUR, linewidths=0)
            scatters[run.index] = ax.scatter(np.empty(0), np.empty(0), s=size, color=colour, linewidths=0)
            ax.set_ylim(lo[1], hi[1])
            if equal:
                ax.set_aspect("equal", adjustable="box")
            ax.set_ylabel(axis_label(cols[1]), fontsize=7, labelpad=1)
        ax.set_xlim(lo[0], hi[0])
        ax.set_xlabel(axis_label(cols[0]), fontsize=7, labelpad=1)
        ax.tick_params(labelsize=6, pad=1)
        ax.set_title(textwrap.fill(run.label, 34), fontsize=8)
        notes[run.index] = ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center",
                                   color="0.4", visible=False)
        if not uniform_t:  # particles and generators count time differently: each panel says its own
            clocks[run.index] = ax.text(0.02, 0.98, "", transform=ax.transAxes, ha="left", va="top", fontsize=7)
        if under is None:
            continue
        below = fig.add_subplot(grid[row * per_row + 1, col])
        below.tick_params(labelsize=6, pad=1)
        if under == "mode_mass":
            x = np.arange(len(modes))
            bars[run.index] = below.bar(x, np.zeros(len(modes)), color=colour, width=0.7)
            if reference is not None:
                below.hlines(reference, x - 0.42, x + 0.42, color="k", linewidth=1.2, label="target")
            below.set_xticks(x, modes, fontsize=6)
            below.set_ylim(0, 1)
            below.set_ylabel("mode mass", fontsize=7, labelpad=1)
        else:
            keep = np.isfinite(t[run.index]) & np.isfinite(metric[run.index])
            below.plot(t[run.index, keep], metric[run.index, keep], color="0.8", linewidth=1.0)
            line, = below.plot([], [], color=colour, linewidth=1.4)
            dot, = below.plot([], [], "o", color=colour, markersize=3)
            curves[run.index] = (line, dot)
            finite = metric[run.index, keep]
            if finite.size and finite.min() > 0:
                below.set_yscale("log")
            below.set_xlabel("t", fontsize=7, labelpad=1)
            below.set_ylabel(under, fontsize=7, labelpad=1)
    heading = fig.suptitle("", fontsize=10)
    which = f", coordinates {cols[0] + 1} and {cols[1] + 1} of {dim}" if dim > 2 and len(cols) == 2 else ""

    def update(ti: int) -> None:
        for run in order:
            x = position[run.index, ti]
            x = x[np.isfinite(x).all(axis=1)]  # generator runs pad their rows with NaN
            if len(cols) == 1:
                counts = np.histogram(x[:, 0], bins=bins, density=True)[0] if len(x) else np.zeros(bins.size - 1)
                scatters[run.index].set_data(counts)
            else:
                scatters[run.index].set_offsets(x)
            notes[run.index].set_visible(len(x) == 0)
            if run.index in clocks:
                tr = t[run.index, ti]
                clocks[run.index].set_text(f"t = {tr:.4g}" if np.isfinite(tr) else "")
            if run.index in bars:
                for rect, m in zip(bars[run.index], mass[run.index, ti]):
                    rect.set_height(m if np.isfinite(m) else 0.0)
            if run.index in curves:
                keep = np.isfinite(t[run.index, : ti + 1]) & np.isfinite(metric[run.index, : ti + 1])
                tt, mm = t[run.index, : ti + 1][keep], metric[run.index, : ti + 1][keep]
                line, dot = curves[run.index]
                line.set_data(tt, mm)
                dot.set_data(tt[-1:], mm[-1:])
        now = t[:, ti][np.isfinite(t[:, ti])]
        when = f", t = {now[0]:.4g}" if uniform_t and now.size else ""
        heading.set_text(title(ds, f"step {int(steps[ti])}{when}{which}"))

    update(int(done[-1]))  # the layout is computed with the longest texts in place, then frozen
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return Animation(fig, update, scatters, tuple(cols))


def animate(ds, path, *, fmt: str | None = None, max_frames: int = MAX_FRAMES, dims=None, fps: float = 8.0,
            dpi: int = ANIMATION_DPI, progress: bool = True) -> pathlib.Path:
    """Write the animation of a stored run group to ``path`` and return it.

    Parameters
    ----------
    ds : xarray.Dataset
        A stored run group (:func:`wgfsim.open_run`).
    path : str or Path
        The file written.
    fmt : {"gif", "mp4"}, optional
        Default: the suffix of ``path``.  GIF through matplotlib's Pillow
        writer; MP4 needs ``ffmpeg`` on the PATH.
    max_frames : int
        At most this many frames (:func:`frames`).
    dims : (int, int) or "i,j", optional
        The two data coordinates drawn (default the first two).
    fps : float
        Frames per second.
    dpi : int
        Pixels per inch of the frames.
    progress : bool
        A progress bar (tqdm, on stderr) while rendering.
    """
    from matplotlib import animation
    from tqdm.auto import tqdm

    path = pathlib.Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {list(FORMATS)}, got {fmt!r}")
    if not fps > 0:
        raise ValueError(f"fps: expected a positive number, got {fps!r}")
    picks = frames(ds, max_frames)
    if fmt == "mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise ValueError("format: mp4 needs ffmpeg on the PATH, and none was found; use gif")
        writer = animation.FFMpegWriter(fps=fps, codec="h264", extra_args=["-pix_fmt", "yuv420p"])
    else:
        writer = animation.PillowWriter(fps=fps)
    anim = animation_figure(ds, dims=dims, dpi=dpi)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer.saving(anim.figure, str(path), dpi), \
            tqdm(total=len(picks), unit="frame", desc=path.name, disable=not progress, file=sys.stderr,
                 dynamic_ncols=True) as bar:
        for ti in picks:
            anim.update(int(ti))
            writer.grab_frame()
            bar.update(1)
    return path
