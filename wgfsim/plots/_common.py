"""What every figure shares: run labels and order, colours, records, limits, and what the file says.

Everything is read from the stored dataset (:func:`wgfsim.open_run`,
:func:`wgfsim.open_sweep`): the run coordinates, the variables and the global
attributes.  Nothing here re-parses the scenario text kept in the file as
provenance.  The run dimension may be a plain index or a ``pandas.MultiIndex``
over flow, method, seed and the swept keys; runs are reached by position
(``ds.isel``) and coordinates by ``ds[name].values``, which work either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure

DPI = 100  # every saved PNG: pixel size = figure size in inches x DPI
METHOD_ORDER = ("particles", "generator")
METHOD_STYLE = {"particles": "-", "generator": "--"}
METHOD_COLOUR = {"particles": "C0", "generator": "C3"}
TARGET_COLOUR = "0.72"
# coordinates on run that identify it but are not hyper-parameters
OWN_COORDS = ("flow", "method", "seed")


# ------------------------------------------------------------------ runs, labels, records


@dataclass(frozen=True)
class Run:
    index: int  # position along the dataset's run (or point) dimension
    key: str  # flow, varying options and seed: what particles and generator runs share
    label: str  # key plus the method (when methods vary)
    method: str
    flow: str


def fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value.item() if isinstance(value, np.generic) else value)


def missing(value) -> bool:
    return value == "" or value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def run_coords(ds, dim: str = "run") -> list[str]:
    """The coordinates along ``dim`` other than the dimension's own index (flat or MultiIndex)."""
    return [c for c in ds.coords if c != dim and ds[c].dims == (dim,)]


def values(ds, name: str) -> list:
    """A coordinate's values as Python scalars (a MultiIndex level or a plain coordinate alike)."""
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(ds[name].values).tolist()]


def runs(ds, dim: str = "run") -> list[Run]:
    """The runs in display order: by first appearance of their key, methods adjacent.

    A run's key is its flow, the hyper-parameters that differ between runs and
    (when seeds differ) its seed; its label adds the method when the dataset
    holds both methods.
    """
    n = ds.sizes[dim]
    hyper = [c for c in run_coords(ds, dim) if c not in OWN_COORDS]
    columns = {c: values(ds, c) for c in hyper}
    varying = [c for c in hyper if len({repr(v) for v in columns[c] if not missing(v)}) > 1]
    flows = [str(v) for v in values(ds, "flow")] if "flow" in ds.coords else ["run"] * n
    methods = [str(v) for v in values(ds, "method")] if "method" in ds.coords else [""] * n
    seeds = [int(v) for v in values(ds, "seed")] if "seed" in ds.coords else [0] * n
    show_seed, show_method = len(set(seeds)) > 1, len(set(methods)) > 1
    out = []
    for r in range(n):
        parts = [flows[r]] + [f"{c}={fmt(columns[c][r])}" for c in varying if not missing(columns[c][r])]
        if show_seed:
            parts.append(f"seed={seeds[r]}")
        key = " ".join(parts)
        label = f"{key} {methods[r]}" if show_method else key
        out.append(Run(r, key, label, methods[r], flows[r]))
    first = {}
    for run in out:
        first.setdefault(run.key, len(first))
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(out, key=lambda run: (first[run.key], rank.get(run.method, len(rank)), run.index))


def key_colours(runs_) -> dict[str, object]:
    """One colour per key (particles and generator runs of one key share it)."""
    keys = list(dict.fromkeys(run.key for run in runs_))
    cmap = matplotlib.colormaps["tab10" if len(keys) <= 10 else "tab20"]
    return {key: cmap(i % cmap.N) for i, key in enumerate(keys)}


def written(ds) -> np.ndarray:
    """Indices along ``time`` of the records some run has written (t is NaN elsewhere)."""
    t = np.asarray(ds["t"].values, dtype=float)
    return np.flatnonzero(np.isfinite(t).any(axis=0)) if t.ndim == 2 else np.flatnonzero(np.isfinite(t))


def record(ds, index: int) -> int:
    """A record index (negative counts from the last written record) -> index along ``time``."""
    done = written(ds)
    if done.size == 0:
        raise ValueError("the dataset holds no records yet")
    if not -done.size <= index < done.size:
        raise ValueError(f"time: expected a record index in {-done.size}..{done.size - 1}, got {index}")
    return int(done[index])


def scalar_metrics(ds, dim: str = "run") -> list[str]:
    """The scalar metrics the file stores: data variables on ``(dim, time)`` with a finite value, in file order."""
    return [name for name, var in ds.data_vars.items()
            if var.dims == (dim, "time") and var.dtype.kind == "f" and np.isfinite(var.values).any()]


def name(ds, default: str = "wgfsim") -> str:
    """The scenario name for titles: the ``scenario_name`` attribute (never parsed out of the scenario text)."""
    value = ds.attrs.get("scenario_name")
    return value if isinstance(value, str) and value else default


def title(ds, what: str) -> str:
    partial = " (partial run)" if ds.attrs.get("status") == "partial" else ""
    return f"{name(ds)}: {what}{partial}"


def figure(width: float, height: float, dpi: int = DPI) -> Figure:
    # whole pixels, so the saved image is exactly figsize x dpi
    return Figure(figsize=(round(width * dpi) / dpi, round(height * dpi) / dpi), dpi=dpi, layout="constrained")


def legend(fig: Figure, handles, labels, title_=None) -> None:
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, title=title_, title_fontsize=8,
                   ncols=1 if len(labels) <= 24 else 2, frameon=False)


# ------------------------------------------------------------------ projections and limits


def parse_dims(dims, dim: int) -> tuple[int, int] | tuple[int]:
    """The data coordinates to draw: ``(i, j)`` for a 2-D projection, ``(0,)`` for 1-D data.

    ``dims`` is None (the first two coordinates), a pair of integers or the
    text ``"i,j"``; each must lie in ``0..dim-1`` and differ.
    """
    if dim == 1:
        if dims not in (None, (0,), [0], "0"):
            raise ValueError(f"dims: the data are 1-D; expected nothing or 0, got {dims!r}")
        return (0,)
    if dims is None:
        return (0, 1)
    if isinstance(dims, str):
        try:
            dims = tuple(int(p) for p in dims.split(","))
        except ValueError:
            raise ValueError(f"dims: expected two coordinate indices like '0,3', got {dims!r}") from None
    dims = tuple(int(i) for i in dims)
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= i < dim for i in dims):
        raise ValueError(f"dims: expected two different coordinate indices in 0..{dim - 1} (the data are {dim}-D), "
                         f"got {','.join(map(str, dims))}")
    return dims


def axis_label(i: int) -> str:
    return f"$x_{{{i + 1}}}$"


def limits(target: np.ndarray, points: np.ndarray, pad: float = 0.08):
    """(lo, hi) per column: the target's whole range and the points' 0.5-99.5 percentiles.

    Percentiles of the points, so one diverged particle cannot flatten the view.
    """
    target = target[np.isfinite(target).all(axis=1)]
    points = points[np.isfinite(points).all(axis=1)]
    if target.size:
        lo, hi = target.min(axis=0), target.max(axis=0)
    else:
        lo, hi = np.full(points.shape[1], np.inf), np.full(points.shape[1], -np.inf)
    if points.size:
        lo = np.minimum(lo, np.percentile(points, 0.5, axis=0))
        hi = np.maximum(hi, np.percentile(points, 99.5, axis=0))
    lo, hi = np.where(np.isfinite(lo), lo, -1.0), np.where(np.isfinite(hi), hi, 1.0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return lo - pad * span, hi + pad * span


def panel_height(lo, hi, ndims: int, width: float) -> tuple[float, bool]:
    """Height (inches) of a panel ``width`` wide, and whether it keeps an equal aspect.

    Equal axes (circles stay circles) when the data's height/width ratio is
    within 1/3..3; the panel is then shaped like the data.
    """
    if ndims < 2:
        return 0.8 * width, False
    ratio = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
    if not 1 / 3 <= ratio <= 3:
        return 0.9 * width, False
    return 0.45 + width * float(np.clip(ratio, 0.4, 1.2)), True


# ------------------------------------------------------------------ what the file says about the target


def mode_centres(ds) -> np.ndarray | None:
    """The target's mode centres ``(K, dim)``: the variable ``mode_centre`` (None where a sweep's points differ in it)."""
    k = ds.sizes.get("mode", 0)
    if k == 0:
        return None
    if "mode_centre" in ds and ds["mode_centre"].dims == ("mode", "dim"):
        return np.asarray(ds["mode_centre"].values, dtype=float)
    return None  # the reader refuses files of schema 1 (which kept the centres as an attribute)


def target_mode_mass(ds) -> np.ndarray | None:
    """The target sample's mode masses ``(K,)``, or None when the file does not say where the modes are.

    Sources in order: the variable ``target_mode_mass``; the nearest-centre
    masses of the stored ``target`` sample about :func:`mode_centres` (the rule
    of :func:`wgfsim.metrics.mode_mass`).
    """
    k = ds.sizes.get("mode", 0)
    if k == 0:
        return None
    if "target_mode_mass" in ds and ds["target_mode_mass"].dims == ("mode",):
        return np.asarray(ds["target_mode_mass"].values, dtype=float)
    centres = mode_centres(ds)
    if centres is None or ds["target"].dims != ("sample", "dim"):
        return None
    from ..metrics import mode_mass

    return mode_mass(np.asarray(ds["target"].values, dtype=float), centres)


def hyper(flow: str) -> str | None:
    """The option a study sweeps for ``flow`` (its hyper-parameter): the flow registry's ``hyper``."""
    from .. import flows

    try:
        return flows.get(flow).hyper
    except ValueError:  # a flow this wgfsim does not know (a file from another version)
        return None
