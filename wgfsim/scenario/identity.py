"""One identity per run: the resolved description that determines a run file, and its hash.

:func:`run_identity` is the fully resolved scenario behind a file of run
points: overrides applied, every default filled (each flow's ``Params`` as
expansion resolved it, never the options as written), so ``bandwidth = 1.0``
written out and the same default left implicit are one run.  It serves both
the runner's resume fingerprint (the file's ``fingerprint`` and
``resolved_scenario`` attributes) and a sweep's point-file names
(:mod:`wgfsim.sweep.plan`), so a resumed sweep finds every finished point.
The provenance text (comments, how a value was spelled, the scenario's path,
the folder relative paths start from) is not part of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from .spec import DistSpec, RunPoint, Scenario

__all__ = ["run_identity", "identity_hash", "resolved_dist", "canonical"]


def canonical(obj):
    """``obj`` as plain JSON values (dataclasses, tuples and NumPy scalars resolved)."""
    def default(o):
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, np.generic):
            return o.item()
        return str(o)

    return json.loads(json.dumps(obj, default=default))


def resolved_dist(spec: DistSpec) -> dict:
    """A target or init as it determines the run: kind, n, seed and options (``base_dir`` left out).

    Data read from a file (``from_file``) adds ``content``: the SHA-256 and
    size of the file (:meth:`DistSpec.content`), so data edited in place
    is a different run (refused by ``--resume``, run again by a sweep)
    while a moved or touched file with the same bytes is the same one.
    """
    out = {"kind": spec.kind, "n": spec.n, "seed": spec.seed, "options": spec.options}
    content = spec.content()
    return out if content is None else {**out, "content": content}


def _params(point: RunPoint) -> dict:
    if point.flow_params is not None:
        return dataclasses.asdict(point.flow_params)
    from .. import flows  # a hand-made point without resolved Params

    return dataclasses.asdict(flows.make_params(point.flow, **point.params))


def run_identity(sc: Scenario, points: list[RunPoint]) -> dict:
    """The resolved description of a file holding ``points`` (plain JSON values).

    Holds the data (target and init, resolved; the reference sample size),
    the shared ``[run]``, ``[metrics]`` and method tables, and per run its
    flow with every option (its resolved ``Params``), its method, its seed and
    coordinates.  Two descriptions that are equal write identical files.
    """
    runs = [{"flow": p.flow, "params": _params(p), "method": p.method, "seed": p.seed, "coords": p.coords}
            for p in points]
    ident = {
        "target": resolved_dist(points[0].target),
        "init": {k: v for k, v in resolved_dist(points[0].init).items() if k != "seed"},  # the seed is each run's
        "run": dataclasses.asdict(sc.run),
        "metrics": dataclasses.asdict(sc.metrics),
        "tables": {name: dataclasses.asdict(spec) for name, spec in sorted(sc.tables.items())},
        "runs": runs,
    }
    return canonical(ident)


def identity_hash(ident: dict) -> str:
    """SHA-256 of the identity's canonical JSON text (sorted keys)."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
