"""Sweeps: every point of a scenario's lists as its own task and its own file (``wgfsim sweep``).

A scenario's lists expand into run points (:func:`wgfsim.scenario.expand`,
``allow_data_sweeps=True``): flow hyper-parameters, ``[target]``/``[init]``
options such as ``separation``, methods and seeds, crossed.  :func:`run_sweep`
runs each point as one task, ``runner.run_points(sc, [point], path)``, into
its own file ``OUT_DIR/<slug>_<hash>.h5`` and writes a manifest
``OUT_DIR/sweep.json`` (file -> coords).  :func:`open_sweep` combines the
files into one ``xarray.Dataset``.

File names.  ``<slug>`` spells the swept coordinates (``kl_kde_bandwidth-0.5_seed-1``)
and ``<hash>`` is the first 12 hex digits of a SHA-1 of everything that
determines the run: the point (flow, options, method, seed, target and init
specs) and the scenario's ``[run]``, ``[metrics]`` and ``[generator]`` tables.
Re-running a sweep skips every point whose final ``.h5`` exists, continues a
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

Executors (a registry, :data:`EXECUTORS`):

==============  ==============================================================
``local``       ``concurrent.futures.ProcessPoolExecutor`` of ``workers`` processes
                (``spawn`` start method: no forked numba thread pools); no server
``dask``        an existing ``dask.distributed`` cluster, ``scheduler="tcp://HOST:PORT"``;
                its workers need wgfsim installed and ``out_dir`` on a shared file system
``dask-local``  a ``LocalCluster(n_workers=dask_local, threads_per_worker=1,
                processes=True)`` started for the sweep and closed after
==============  ==============================================================

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

Public calls: :func:`run_sweep`, :func:`plan`, :func:`open_sweep`,
:func:`read_manifest`, :class:`SweepResult`, :class:`PointOutcome`,
:data:`EXECUTORS`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import pathlib
import re
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as _futures_as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .scenario import RunPoint, Scenario, ScenarioError, expand

__all__ = [
    "run_sweep",
    "plan",
    "open_sweep",
    "read_manifest",
    "SweepResult",
    "PointOutcome",
    "PlannedPoint",
    "EXECUTORS",
    "MANIFEST",
    "DistributedMissing",
]

MANIFEST = "sweep.json"
MANIFEST_FORMAT = "wgfsim-sweep/1"
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


def _canonical(value):
    """A JSON-able, order-independent form of a value (tuples as lists, keys sorted by json)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def _dist_identity(spec) -> dict:
    # base_dir is left out: moving the scenario folder must not make finished points look new
    return {"kind": spec.kind, "n": spec.n, "options": _canonical(spec.options), "seed": spec.seed}


def point_hash(sc: Scenario, point: RunPoint) -> str:
    """12 hex digits of SHA-1 over everything that determines the point's run (stable across processes)."""
    ident = {
        "flow": point.flow,
        "params": _canonical(point.params),
        "method": point.method,
        "seed": point.seed,
        "target": _dist_identity(point.target),
        "init": _dist_identity(point.init),
        "run": _canonical(sc.run),
        "metrics": _canonical(sc.metrics),
        "generator": _canonical(sc.generator),
    }
    text = json.dumps(ident, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


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


def _write_json(path: pathlib.Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=repr) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a killed sweep leaves the old manifest or the new one


def read_manifest(out_dir) -> dict:
    """The ``sweep.json`` of a sweep folder (FileNotFoundError naming the folder when absent)."""
    path = pathlib.Path(out_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sweep manifest; is {out_dir} a folder written by `wgfsim sweep`?")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}; expected {MANIFEST_FORMAT!r}")
    return manifest


# ---------------------------------------------------------------- the task (runs in the worker)


def _set_thread_env(threads: int | None) -> None:
    if threads is not None:
        for var in THREAD_VARS:
            os.environ[var] = str(threads)


def _limit_threads(threads: int | None) -> tuple[int, int]:
    """Cap numba's threads for this thread of this process.

    Returns ``(threads used by parallel kernels, size of numba's thread pool)``;
    the pool size is 1 only where ``NUMBA_NUM_THREADS=1`` was in the
    environment before numba was imported (the local pool and LocalCluster).
    """
    _set_thread_env(threads)  # for anything not loaded yet (a BLAS, a fresh numba)
    import numba

    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    return int(numba.get_num_threads()), int(numba.config.NUMBA_NUM_THREADS)


def _watch_parent(ppid: int) -> None:
    """Exit this worker when the sweep that started it is gone (killed): no orphan writes a file."""
    while True:
        time.sleep(0.5)
        if os.getppid() != ppid:
            os._exit(3)


def _init_local_worker(threads: int | None, ppid: int) -> None:
    """``ProcessPoolExecutor`` initializer: thread limits (again) and the orphan watchdog."""
    _set_thread_env(threads)
    threading.Thread(target=_watch_parent, args=(ppid,), daemon=True, name="wgfsim-watch-parent").start()


def _failed_runs(path: pathlib.Path) -> dict:
    import h5py

    with h5py.File(path, "r") as h:
        raw = h.attrs.get("failed_runs", "{}")
    raw = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        failed = json.loads(raw)
    except json.JSONDecodeError:
        return {"?": raw}
    return failed if isinstance(failed, dict) else {"?": str(failed)}


def run_point_task(payload: dict) -> dict:
    """Run one sweep point in this process: ``runner.run_points(sc, [point], path)``.

    ``payload`` holds ``sc``, ``point``, ``path`` (the final ``.h5``) and
    ``threads``.  Never raises for a failing point: returns a dict with
    ``status`` (``finished``, ``skipped`` or ``failed``), ``error`` (text),
    ``seconds``, ``threads`` (numba's thread count during the run),
    ``pool_threads`` (numba's thread pool size in this process) and ``pid``.
    """
    start = time.perf_counter()
    out = {"status": "failed", "error": None, "seconds": 0.0, "threads": None, "pool_threads": None, "pid": os.getpid()}
    try:
        out["threads"], out["pool_threads"] = _limit_threads(payload.get("threads"))
        from . import runner  # imported here: in a fresh worker, after the thread limits

        sc, point, path = payload["sc"], payload["point"], pathlib.Path(payload["path"])
        if path.exists():
            out["status"] = "skipped"
            return out
        partial = path.with_name(path.name + ".partial")
        if partial.exists():
            try:  # a killed sweep left this point half-done: continue from its checkpoints
                runner.run_points(sc, [point], path, resume=True, progress=False)
            except ScenarioError:
                raise
            except Exception as err:  # an unreadable leftover: start the point afresh
                print(f"wgfsim sweep: cannot resume {partial.name} ({err}); starting it afresh", file=sys.stderr)
                runner.run_points(sc, [point], path, resume=False, progress=False)
        else:
            runner.run_points(sc, [point], path, resume=False, progress=False)
        failed = _failed_runs(path)
        if failed:
            out["error"] = "; ".join(f"{err}" for err in failed.values()) + " (records kept in the file)"
        else:
            out["status"] = "finished"
    except Exception as err:  # noqa: BLE001 - reported with the point's parameters, the sweep goes on
        tb = traceback.format_exception(type(err), err, err.__traceback__)
        out["error"] = f"{type(err).__name__}: {err}\n" + "".join(tb[-3:])
    finally:
        out["seconds"] = time.perf_counter() - start
    return out


# ---------------------------------------------------------------- executors


class _Executor:
    """Runs task payloads and yields ``(index, outcome dict)`` as they complete."""

    name = ""

    def __init__(self, *, workers: int, scheduler: str | None, dask_local: int | None):
        self.workers = workers
        self.scheduler = scheduler
        self.dask_local = dask_local

    threads: int | None = None  # numba/BLAS threads per task (None: leave as is)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, payloads: list[dict]) -> Iterator[tuple[int, dict]]:
        raise NotImplementedError


class _LocalExecutor(_Executor):
    """A pool of spawned processes (no server)."""

    name = "local"

    def __enter__(self):
        self.threads = 1 if self.workers > 1 else None
        return self

    def run(self, payloads):
        env = {v: str(self.threads) for v in THREAD_VARS} if self.threads is not None else {}
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_local_worker, initargs=(self.threads, os.getpid())
        )
        try:
            # workers are spawned during submit(): they inherit this environment from their first instruction,
            # before numba or a BLAS is imported; the parent runs no kernel meanwhile
            with _environ(env):
                futures = {pool.submit(run_point_task, p): i for i, p in enumerate(payloads)}
            for fut in _futures_as_completed(futures):
                yield futures[fut], _outcome_of(fut.result, fut.exception)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _outcome_of(result: Callable, exception: Callable) -> dict:
    """A future's outcome dict; a worker that died (BrokenProcessPool, KilledWorker) becomes a failure."""
    err = exception()
    if err is None:
        return result()
    hint = (
        " (a worker process died: killed, out of memory, or a script that calls run_sweep without "
        "`if __name__ == \"__main__\":` around it, which spawned workers re-run on import)"
    )
    return {"status": "failed", "error": f"{type(err).__name__}: {err}{hint}", "seconds": math.nan, "threads": None,
            "pool_threads": None, "pid": None}


@contextlib.contextmanager
def _environ(values: dict):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _distributed():
    try:
        import distributed
    except ImportError as err:
        raise DistributedMissing(f"the Dask executors need dask.distributed, which is not installed ({err}); {_INSTALL_HINT}") from None
    return distributed


class _DaskExecutor(_Executor):
    """An existing dask.distributed cluster at ``scheduler``."""

    name = "dask"

    def _client(self):
        distributed = _distributed()
        return distributed.Client(self.scheduler, set_as_default=False)

    def __enter__(self):
        self.threads = 1
        self._distributed = _distributed()
        self._stack = contextlib.ExitStack()
        try:
            self.client = self._stack.enter_context(self._client())
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def run(self, payloads):
        futures = {}
        for i, p in enumerate(payloads):
            key = f"wgfsim-{pathlib.Path(p['path']).stem}-{os.getpid()}-{time.monotonic_ns()}"
            futures[self.client.submit(run_point_task, p, key=key, pure=False, retries=0)] = i
        for fut in self._distributed.as_completed(list(futures), loop=self.client.loop):
            yield futures[fut], _outcome_of(fut.result, fut.exception)


class _DaskLocalExecutor(_DaskExecutor):
    """A LocalCluster of ``dask_local`` single-threaded worker processes, for this sweep only."""

    name = "dask-local"

    def _client(self):
        distributed = _distributed()
        threads = 1
        stack = contextlib.ExitStack()
        cluster = stack.enter_context(
            distributed.LocalCluster(
                n_workers=self.dask_local,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env={v: str(threads) for v in THREAD_VARS},
            )
        )
        client = stack.enter_context(distributed.Client(cluster, set_as_default=False))

        @contextlib.contextmanager
        def both():
            with stack:
                yield client

        return both()


EXECUTORS: dict[str, type[_Executor]] = {
    "local": _LocalExecutor,
    "dask": _DaskExecutor,
    "dask-local": _DaskLocalExecutor,
}


def _executor_name(executor: str | None, scheduler, dask_local) -> str:
    """The registry key: given, or implied by ``scheduler`` / ``dask_local``."""
    implied = [name for name, given in (("dask", scheduler), ("dask-local", dask_local)) if given]
    if len(implied) > 1:
        raise ValueError("scheduler and dask_local: give one of them (an existing cluster, or a LocalCluster to start)")
    chosen = executor or (implied[0] if implied else "local")
    if chosen not in EXECUTORS:
        raise ValueError(f"executor: unknown executor {chosen!r}; expected one of {sorted(EXECUTORS)}")
    if implied and implied[0] != chosen:
        raise ValueError(f"executor={chosen!r} does not go with {'scheduler' if scheduler else 'dask_local'}; drop one of them")
    return chosen


# ---------------------------------------------------------------- results


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
    workers: int = 1,
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
    workers : int
        Local worker processes.
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
            result.skipped.append(PointOutcome(out / pp.file, pp.point.label, pp.coords, "skipped"))
        else:
            todo.append(pp)

    from tqdm.auto import tqdm

    with tqdm(total=len(planned), initial=len(result.skipped), unit="point", desc=sc.name, disable=not progress,
              dynamic_ncols=True, file=sys.stderr) as bar:
        if todo:
            with EXECUTORS[name](workers=workers, scheduler=scheduler, dask_local=dask_local) as ex:
                payloads = [{"sc": sc, "point": pp.point, "path": str((out / pp.file).resolve()), "threads": ex.threads} for pp in todo]
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


# ---------------------------------------------------------------- reading a sweep back


def open_sweep(out_dir, *, layout: str = "grid", variables: Sequence[str] | None = None):
    """Combine a sweep folder's point files into one dataset: :func:`wgfsim.io.open_sweep`."""
    from .io.reader import open_sweep as _open_sweep

    return _open_sweep(out_dir, layout=layout, variables=variables)
