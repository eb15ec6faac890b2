"""Sweeps: every point of a scenario's lists as its own task and its own file (``wgfsim sweep``).

A scenario's lists expand into run points (:func:`wgfsim.scenario.expand`,
``allow_data_sweeps=True``): flow hyper-parameters, ``[target]``/``[init]``
options such as ``separation``, methods and seeds, crossed.  :func:`run_sweep`
runs each point as one task, ``runner.run_points(sc, [point], path)``, into
its own file ``OUT_DIR/<slug>_<hash>.h5`` and writes a manifest
``OUT_DIR/sweep.json`` (file -> coords).  :func:`wgfsim.open_sweep` (the
one reader, :mod:`wgfsim.io.reader`) combines the files into one ``xarray.Dataset``.

File names.  ``<slug>`` spells the swept coordinates (``kl_kde_bandwidth-0.5_seed-1``)
and ``<hash>`` is the first 12 hex digits of the hash of the point's run
identity (:func:`wgfsim.scenario.identity.run_identity`, the resolved
description the runner also fingerprints for ``--resume``): the point's flow
with its resolved options, method, seed, target and init, and the scenario's
``[run]``, ``[metrics]`` and method tables.  A default written out or left
implicit is the same point.  Re-running a sweep skips every point whose final ``.h5`` exists, continues a
point whose ``.h5.partial`` a killed sweep left (the runner's checkpoints), and
runs the rest.  Editing the scenario (more steps, another step size) changes
the hashes, so stale files are never mistaken for finished points; they stay
on disk, outside the new manifest.

Tied data axes.  ``[target]`` and ``[init]`` lists are crossed by
:func:`~wgfsim.scenario.expand`.  When both sweep the same option with the same
values (``separation = [2.0, 3.0]`` in both: particles start on the target's
modes), ``tie="auto"`` (the default) keeps only the points where the init's
value equals the target's, so ``init.separation`` follows ``target.separation``
instead of crossing it.  ``tie=()`` keeps the full product; ``tie=[("init.separation",
"target.separation")]`` names the pairs explicitly.

Executors (a registry, :data:`EXECUTORS`, in :mod:`wgfsim.sweep.executors`): ``local``
(a process pool of ``workers``), ``dask`` (an existing ``dask.distributed``
cluster at ``scheduler``), ``dask-local`` (a ``LocalCluster`` of ``dask_local``
workers started for the sweep).

Threads.  Several workers on one machine would each start a numba (and BLAS)
thread pool of all cores.  With more than one worker (and always on Dask) each
task runs with ``threads=1``: the variables ``NUMBA_NUM_THREADS``,
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` are in the
worker's environment from its start (the local pool is spawned while the
parent's environment holds them; ``LocalCluster`` gets them as ``env``), and
every task also calls ``numba.set_num_threads`` (which takes effect even where
numba was imported before, e.g. on an existing Dask cluster).  Each outcome
reports the thread count numba used.

Dask is optional: ``pip install 'wgfsim[dist]'``.

Public calls: :func:`run_sweep`, :func:`plan`,
:func:`read_manifest`, :class:`SweepResult`, :class:`PointOutcome`,
:data:`EXECUTORS`.
"""


from __future__ import annotations

import json
import math
import multiprocessing
import pathlib
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence


from ..scenario import RunPoint, Scenario


from .executors import EXECUTORS, _distributed, _executor_name, clean_finished, run_point_task
from .plan import MANIFEST, PlannedPoint, DistributedMissing, plan, read_manifest, _write_json, point_hash

__all__ = [
    "run_sweep",
    "plan",
    "read_manifest",
    "run_point_task",
    "point_hash",
    "SweepResult",
    "PointOutcome",
    "PlannedPoint",
    "EXECUTORS",
    "MANIFEST",
    "DistributedMissing",
]


@dataclass
class PointOutcome:
    """What happened to one point: its file, parameters, status and (for a failure) the error text."""

    file: pathlib.Path
    label: str
    coords: dict
    status: str  # finished | skipped | failed
    error: str | None = None
    seconds: float = math.nan
    threads: int | None = None
    pool_threads: int | None = None
    pid: int | None = None

    @property
    def params(self) -> dict:
        return self.coords


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`, one :class:`PointOutcome` per point in ``finished``, ``skipped`` or ``failed``."""

    out_dir: pathlib.Path
    manifest: pathlib.Path
    executor: str
    finished: list[PointOutcome] = field(default_factory=list)
    skipped: list[PointOutcome] = field(default_factory=list)
    failed: list[PointOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [
            f"{self.out_dir}: {len(self.finished)} finished, {len(self.skipped)} skipped (already done), "
            f"{len(self.failed)} failed in {self.seconds:.1f} s ({self.executor})"
        ]
        for o in self.failed:
            first = (o.error or "").strip().splitlines()[0] if o.error else "unknown error"
            lines.append(f"  FAILED {o.label} {json.dumps(o.coords, default=repr)}: {first}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------- the driver


def run_sweep(
    sc: Scenario,
    out_dir,
    *,
    executor: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    progress: bool = True,
    tie="auto",
    points: Sequence[RunPoint] | None = None,
) -> SweepResult:
    """Run every point of a scenario's sweep, one task and one ``.h5`` each, into ``out_dir``.

    Parameters
    ----------
    sc : Scenario
    out_dir : path
        The sweep folder (created); holds the point files and ``sweep.json``.
    executor : {"local", "dask", "dask-local"}, optional
        Default: ``"dask"`` with ``scheduler``, ``"dask-local"`` with
        ``dask_local``, else ``"local"``.
    workers : int, optional
        Local worker processes (default 1); only with the ``local`` executor.
    scheduler : str, optional
        Address of an existing dask.distributed scheduler, ``"tcp://HOST:PORT"``.
    dask_local : int, optional
        Start a LocalCluster of this many worker processes for the sweep.
    progress : bool
        A tqdm bar counting points (on stderr).
    tie, points
        See :func:`plan`.

    Returns
    -------
    SweepResult
        ``finished``, ``skipped`` (final file already there) and ``failed``
        (parameters and error text) points.  A failing point never stops the
        others.  Raises :class:`~wgfsim.scenario.ScenarioError` for scenario
        mistakes, ``ValueError`` for bad arguments, :class:`DistributedMissing`
        when a Dask executor is asked for without dask.distributed.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "run_sweep: called while a spawned worker process was importing the main script; "
            'put the call under `if __name__ == "__main__":` (worker processes are spawned, not forked)'
        )
    name = _executor_name(executor, scheduler, dask_local)
    if workers is not None and name != "local":
        raise ValueError(f"workers: local worker processes do not go with the {name!r} executor (its workers are "
                         "the cluster's); give one of them")
    workers = 1 if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    if dask_local is not None and (isinstance(dask_local, bool) or not isinstance(dask_local, int) or dask_local < 1):
        raise ValueError(f"dask_local: expected a positive number of workers, got {dask_local!r}")
    if name == "dask" and not (isinstance(scheduler, str) and scheduler):
        raise ValueError('scheduler: the "dask" executor needs an address, e.g. scheduler="tcp://127.0.0.1:8786"')
    if name != "local":
        _distributed()  # fail before any work, with the install hint
    out = pathlib.Path(out_dir)
    planned, manifest = plan(sc, tie=tie, points=points)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    _write_json(manifest_path, manifest)

    result = SweepResult(out_dir=out, manifest=manifest_path, executor=name)
    t0 = time.perf_counter()
    todo: list[PlannedPoint] = []
    for pp in planned:
        if (out / pp.file).exists():
            clean_finished(out / pp.file)
            result.skipped.append(PointOutcome(out / pp.file, pp.point.label, pp.coords, "skipped"))
        else:
            todo.append(pp)

    from tqdm.auto import tqdm

    with tqdm(total=len(planned), initial=len(result.skipped), unit="point", desc=sc.name, disable=not progress,
              dynamic_ncols=True, file=sys.stderr) as bar:
        if todo:
            with EXECUTORS[name](workers=workers, scheduler=scheduler, dask_local=dask_local) as ex:
                from ..flows import LIMITS  # the size check as this process has it (--no-size-check included)

                payloads = [{"sc": sc, "point": pp.point, "path": str((out / pp.file).resolve()), "threads": ex.threads,
                             "limits": dict(LIMITS)} for pp in todo]
                for i, o in ex.run(payloads):
                    pp = todo[i]
                    outcome = PointOutcome(out / pp.file, pp.point.label, pp.coords, o["status"], o.get("error"),
                                           o.get("seconds", math.nan), o.get("threads"), o.get("pool_threads"), o.get("pid"))
                    getattr(result, outcome.status).append(outcome)
                    if outcome.status == "failed" and progress:
                        first = (outcome.error or "").strip().splitlines()[0] if outcome.error else ""
                        bar.write(f"wgfsim sweep: point '{pp.point.label}' failed: {first}", file=sys.stderr)
                    bar.update(1)
    order = {pp.file: k for k, pp in enumerate(planned)}
    for lst in (result.finished, result.skipped, result.failed):
        lst.sort(key=lambda o: order[o.file.name])
    result.seconds = time.perf_counter() - t0
    return result
