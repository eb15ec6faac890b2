"""Planning a sweep: one file per point, named by its coordinates and a hash of what determines it.

File names.  ``<slug>`` spells the swept coordinates (``kl_kde_bandwidth-0.5_seed-1``)
and ``<hash>`` is the first 12 hex digits of the hash of the point's run
identity (:func:`wgfsim.scenario.identity.run_identity`, the same resolved
description the runner fingerprints for ``--resume``): the point's flow with
its resolved options (a default written out or left implicit is one point),
method, seed, target and init, and the scenario's ``[run]``, ``[metrics]``
and method tables.  Editing the scenario (more steps, another step size)
changes the hashes, so stale files are never mistaken for finished points.

Tied data axes: see :func:`plan`.  The manifest ``sweep.json`` lists every
point's file and coordinates (:func:`read_manifest`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from ..scenario import RunPoint, Scenario, ScenarioError, expand
from ..scenario.identity import canonical as _canonical
from ..scenario.identity import identity_hash, run_identity


from ..io.manifest import MANIFEST, MANIFEST_FORMAT, read_manifest, write_manifest as _write_json  # noqa: F401

THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_INSTALL_HINT = "pip install 'wgfsim[dist]'  (or: pip install 'dask[distributed]')"


class DistributedMissing(ImportError):
    """A Dask executor was asked for but ``dask.distributed`` is not installed."""


# ---------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedPoint:
    """One point of a sweep: the run point, its file name (in the sweep folder) and its coords."""

    point: RunPoint
    file: str
    coords: dict


def point_hash(sc: Scenario, point: RunPoint) -> str:
    """12 hex digits of the hash of the point's run identity (stable across processes and spellings)."""
    return identity_hash(run_identity(sc, [point]))[:12]


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def _slug(coords: dict, keys: Sequence[str], limit: int = 80) -> str:
    """``kl_kde_bandwidth-0.5_seed-1``: the flow and the swept values, file-name safe (the hash disambiguates)."""
    parts = [str(coords["flow"])] + [f"{k}-{coords[k]}" for k in keys if k != "flow" and k in coords]
    text = _UNSAFE.sub("-", "_".join(parts)).strip("-_.")
    return text[:limit].rstrip("-_.") or "point"


def _varying_keys(coords_list: list[dict]) -> list[str]:
    """Keys whose value differs between points (or that some points lack), in first-seen order."""
    keys: list[str] = []
    for c in coords_list:
        for k in c:
            if k not in keys:
                keys.append(k)
    out = []
    for k in keys:
        seen = {json.dumps(c.get(k), sort_keys=True, default=repr) if k in c else "<absent>" for c in coords_list}
        if len(seen) > 1:
            out.append(k)
    return out


def _tie_pairs(points: list[RunPoint], tie) -> list[tuple[str, str]]:
    """The (init key, target key) pairs to tie; ``"auto"``: init.K next to target.K swept over the same values."""
    if tie == "auto":
        pairs = []
        keys = {k for p in points for k in p.coords}
        for k in sorted(keys):
            if not k.startswith("init."):
                continue
            other = "target." + k[len("init.") :]
            if other not in keys:
                continue
            a = {json.dumps(p.coords.get(k), default=repr) for p in points}
            b = {json.dumps(p.coords.get(other), default=repr) for p in points}
            if a == b:
                pairs.append((k, other))
        return pairs
    if tie is None:
        return []
    out = []
    for pair in tie:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise ValueError(f"tie: expected 'auto' or pairs of coordinate names such as ('init.separation', 'target.separation'), got {pair!r}")
        out.append((pair[0], pair[1]))
    return out


def plan(sc: Scenario, *, tie="auto", points: Sequence[RunPoint] | None = None) -> tuple[list[PlannedPoint], dict]:
    """The points of a sweep with their file names, and the manifest that describes them.

    Parameters
    ----------
    sc : Scenario
    tie : "auto", sequence of (key, key) pairs, or None / ()
        Data axes to tie rather than cross (see the module docstring).
    points : sequence of RunPoint, optional
        A subset of ``expand(sc, allow_data_sweeps=True)`` to run (default: all).

    Returns
    -------
    (list of PlannedPoint, manifest dict)
    """
    pts = list(points) if points is not None else expand(sc, allow_data_sweeps=True)
    pairs = _tie_pairs(pts, tie)
    for a, b in pairs:
        missing = [k for k in (a, b) if not any(k in p.coords for p in pts)]
        if missing:
            raise ValueError(f"tie: {missing[0]!r} is not a swept coordinate of {sc.source}; swept: {_varying_keys([p.coords for p in pts])}")
        pts = [p for p in pts if json.dumps(p.coords.get(a), default=repr) == json.dumps(p.coords.get(b), default=repr)]
    if not pts:
        raise ScenarioError(f"{sc.source}: the sweep has no points left (tie={tie!r})")
    coords_list = [dict(p.coords) for p in pts]
    keys = _varying_keys(coords_list)
    planned, names = [], set()
    slug_keys = [k for k in keys if k not in {a for a, _ in pairs}]  # a tied key repeats its partner
    for p, c in zip(pts, coords_list):
        name = f"{_slug(c, slug_keys)}_{point_hash(sc, p)}.h5"
        if name in names:  # two points that run identically: expand() refuses this, a hand-made list may not
            raise ValueError(f"points: two points would write the same file {name}; remove the duplicate")
        names.add(name)
        planned.append(PlannedPoint(point=p, file=name, coords=c))
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": sc.name,
        "source": sc.source,
        "scenario": sc.text,
        "overrides": list(sc.overrides),
        "steps": sc.run.steps,
        "step_size": sc.run.step_size,
        "record_every": sc.run.record_every,
        "keys": keys,
        "tied": {a: b for a, b in pairs},
        "points": [{"file": pp.file, "label": pp.point.label, "coords": _canonical(pp.coords)} for pp in planned],
    }
    return planned, manifest



