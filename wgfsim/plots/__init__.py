"""Figures drawn from stored files alone: a run group's stills and animation, a sweep's grids.

Every figure can be remade from the files: the functions take the datasets of
:func:`wgfsim.open_run` / :func:`wgfsim.open_sweep` (or paths) and never look at
a live run nor re-parse the scenario text a file keeps as provenance.  They
build ``matplotlib.figure.Figure`` objects directly (rendered by Agg when
saved), so importing this package neither touches pyplot's global state nor
changes the caller's backend.

- :mod:`.runs`: :func:`snapshots`, :func:`metric_curves`,
  :func:`mode_mass_curves`, :func:`velocity_quiver`, and :func:`plot_all`
  (every still that applies, as PNG);
- :mod:`.animate`: :func:`animate` (GIF or MP4 of every run side by side);
- :mod:`.sweeps`: :func:`sample_grid` (paper Figure 3: final-sample histograms,
  flows x hyper-parameter values, one figure per target),
  :func:`final_metric_figure` (paper Figure 2: final metric against the
  hyper-parameter) and :func:`plot_sweep` (both, as PNG).
"""

from ._common import DPI
from .animate import FORMATS, MAX_FRAMES, animate, animation_figure, frames
from .runs import metric_curves, mode_mass_curves, plot_all, snapshots, velocity_quiver
from .sweeps import final_metric_figure, plot_sweep, sample_grid, sweep_summary

__all__ = ["plot_all", "snapshots", "metric_curves", "mode_mass_curves", "velocity_quiver", "DPI", "animate",
           "animation_figure", "frames", "MAX_FRAMES", "FORMATS", "sample_grid", "final_metric_figure",
           "plot_sweep", "sweep_summary", "open_path"]


def open_path(path):
    """``("run", dataset)`` for a stored run file, ``("sweep", dataset)`` for a sweep folder.

    Raises FileNotFoundError (no such file or folder, or a sweep with no
    point file yet) and ValueError (a file or folder wgfsim did not write),
    each naming the path.
    """
    import pathlib

    from ..io import open_run, open_sweep
    from .sweeps import SWEEP_VARIABLES

    p = pathlib.Path(path)
    if p.is_dir():
        if not (p / "sweep.json").is_file():
            raise ValueError(f"{p}: a folder, but not a wgfsim sweep (no sweep.json in it)")
        return "sweep", open_sweep(p, layout="points", variables=list(SWEEP_VARIABLES))
    if not p.exists() and not p.with_name(p.name + ".partial").exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    try:
        return "run", open_run(p)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{p}: not a wgfsim run file ({err})") from None
