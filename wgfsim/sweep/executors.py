"""Running sweep points: the task each worker runs, thread limits, and the executors (a registry).

==============  ==============================================================
``local``       ``concurrent.futures.ProcessPoolExecutor`` of ``workers`` processes
                (``spawn`` start method: no forked numba thread pools); no server
``dask``        an existing ``dask.distributed`` cluster, ``scheduler="tcp://HOST:PORT"``;
                its workers need wgfsim installed and ``out_dir`` on a shared file system
``dask-local``  a ``LocalCluster(n_workers=dask_local, threads_per_worker=1,
                processes=True)`` started for the sweep and closed after
==============  ==============================================================
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import pathlib
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures import as_completed as _futures_as_completed
from typing import Callable, Iterator


from ..scenario import ScenarioError


from .plan import THREAD_VARS, _INSTALL_HINT, DistributedMissing


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
    # tqdm's default lock is a multiprocessing semaphore; a worker stopped mid-point (the sweep interrupted)
    # would leave it registered and the resource tracker would warn about a leak: a thread lock serves here
    from tqdm import tqdm as _tqdm

    _tqdm.set_lock(threading.RLock())
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


def clean_finished(path: pathlib.Path) -> None:
    """Remove a stale ``.partial``/checkpoint beside a finished point file (a kill right after its final rename)."""
    from ..io.lock import LockHeld, RunLock
    from ..runner import clean_stale

    leftovers = [path.with_name(path.name + ".partial"), path.with_name(path.stem + ".ckpt")]
    if not any(p.exists() for p in leftovers):
        return
    try:
        with RunLock(path):
            clean_stale(path)
    except (LockHeld, OSError):
        pass  # someone is at work on it, or the folder is read-only: leave it


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
        from .. import runner  # imported here: in a fresh worker, after the thread limits
        from ..flows import LIMITS

        LIMITS.update(payload.get("limits") or {})  # the parent's size check (--no-size-check) holds here too

        sc, point, path = payload["sc"], payload["point"], pathlib.Path(payload["path"])
        if path.exists():
            clean_finished(path)
            out["status"] = "skipped"
            return out
        partial = path.with_name(path.name + ".partial")
        ident = {"sweep_point": path.name[: -len(".h5")].rsplit("_", 1)[-1]}  # the point hash of its file name
        if partial.exists():
            try:  # a killed sweep left this point half-done: continue from its checkpoints
                runner.run_points(sc, [point], path, resume=True, progress=False, **ident)
            except (ScenarioError, runner.LockHeld):
                raise  # the scenario's mistake, or another sweep writing this point: never overwrite
            except Exception as err:  # an unreadable leftover: start the point afresh
                print(f"wgfsim sweep: cannot resume {partial.name} ({err}); starting it afresh", file=sys.stderr)
                runner.run_points(sc, [point], path, resume=False, overwrite=True, progress=False, **ident)
        else:
            runner.run_points(sc, [point], path, resume=False, overwrite=True, progress=False, **ident)
        failed = _failed_runs(path)
        if failed:
            out["error"] = "; ".join(f"{err}" for err in failed.values()) + " (records kept in the file)"
        else:
            out["status"] = "finished"
    except Exception as err:  # noqa: BLE001 - reported with the point's parameters, the sweep goes on
        tb = traceback.format_exception(type(err), err, err.__traceback__)
        kept = ""
        if isinstance(err, OSError) and pathlib.Path(str(payload.get("path", "")) + ".partial").exists():
            kept = " (an I/O fault: the point is kept resumable; run the same sweep again to continue it)"
        out["error"] = f"{type(err).__name__}: {err}{kept}\n" + "".join(tb[-3:])
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

    retries = 2  # times a point lost with a dead worker is run again (it resumes from its checkpoints)

    def run(self, payloads):
        """Run every payload; when a worker dies (``BrokenProcessPool``) a fresh pool retries the lost points.

        A dead worker breaks the whole pool: every point not finished by then
        is lost with it, not failed.  Each is retried up to :attr:`retries`
        times (a point that kills its worker every time is then reported
        failed); the point that was running resumes from its ``.partial``.
        """
        env = {v: str(self.threads) for v in THREAD_VARS} if self.threads is not None else {}
        ctx = multiprocessing.get_context("spawn")
        pending = list(range(len(payloads)))
        tries = {i: 0 for i in pending}
        while pending:
            lost = []
            pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_init_local_worker,
                initargs=(self.threads, os.getpid())
            )
            try:
                # workers are spawned during submit(): they inherit this environment from their first instruction,
                # before numba or a BLAS is imported; the parent runs no kernel meanwhile
                with _environ(env):
                    futures = {pool.submit(run_point_task, payloads[i]): i for i in pending}
                for fut in _futures_as_completed(futures):
                    i = futures[fut]
                    if isinstance(fut.exception(), BrokenProcessPool) and tries[i] < self.retries:
                        tries[i] += 1
                        lost.append(i)
                        continue
                    yield i, _outcome_of(fut.result, fut.exception)
            except BaseException:  # interrupted (Ctrl-C, SIGTERM): stop the workers, their .partial files resume
                _stop_workers(pool)
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            if lost:
                print(f"wgfsim sweep: a worker process died; running its {len(lost)} lost point(s) again",
                      file=sys.stderr)
            pending = sorted(lost)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes (the pool itself is then shut down normally)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except (OSError, AttributeError):
            pass
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.join(5)
        except (OSError, AttributeError, AssertionError):
            pass


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

    connect_timeout = 10.0  # seconds to reach the scheduler before giving up with one line

    def _client(self):
        distributed = _distributed()
        try:
            return distributed.Client(self.scheduler, set_as_default=False, timeout=self.connect_timeout)
        except (OSError, TimeoutError) as err:  # refused, unknown host, or no answer in time
            reason = " ".join(str(err).split())[:200] or type(err).__name__
            raise ConnectionError(
                f"scheduler {self.scheduler}: cannot connect within {self.connect_timeout:g} s ({reason}); "
                "check that the dask scheduler runs at this address (dask scheduler --port PORT)"
            ) from None

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

