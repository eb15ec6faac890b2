"""One run group: drive each (target, init, flow, method, seed) point and hand its records to the store.

A scenario expands into run points (:func:`wgfsim.scenario.expand`); all
points of one file share the record schedule (every ``record_every`` steps
and the last step).  At a record step ``k`` the record holds the positions
``x_k``, the field ``v(x_k)`` and the metrics of ``x_k`` against the held-out
reference sample; then the Euler step (or the generator's drift-regression
step) is taken.

The loop is the same for every method (:mod:`wgfsim.methods`): it never
asks which one it drives.  Each run's full flow options (defaults included)
and method settings are written into the file (``flow_params``,
``method_params``), with ``t`` for every record, the target's mode centres
and masses: a reader needs nothing else (:mod:`wgfsim.io.schema`).

Crash safety: before each record the run's full state (positions in full
precision, every RNG, the flow's carried state such as Sinkhorn potentials,
the generator's parameters and Adam moments) is saved atomically to
``NAME.ckpt/run<r>.npz`` (:mod:`wgfsim.io.checkpoint`, no pickle), so ``--resume`` continues a killed run from its
last record and produces the same file as an uninterrupted run (bit for bit
on the CPU: every random draw comes from a seeded stream and the kernels are
deterministic).

Identity and ownership: the file carries the :func:`fingerprint` of the
resolved scenario, which ``--resume`` must match (a different scenario is
refused, naming the differing keys, never mixed into the file), and the
writer holds ``NAME.h5.lock`` (:mod:`wgfsim.io.lock`) for the whole run.
Divergence is a run failure, never a crash of the group nor a stored inf:
positions must be finite in the file's float32, and a field or metric that
can no longer be computed from a later state fails that run only.

Random streams of a point with seed ``s`` (``numpy.random.SeedSequence``):
``[s, 1]`` init sample, ``[s, 2]`` the flow's own draws, ``[s, 3]`` target
minibatches and latents, ``[s, 4]`` energy estimates, ``[s, 5]`` and ``[s, 6]`` the generator's fit to
``[init]`` and its quality sample; the target sample uses
``[target.seed, 0]`` and the reference sample ``[target.seed, 1]``.

The module is a little over 500 lines: the loop, its failure handling (divergence, I/O
faults, signals), the resume path and the run's final scores are one protocol with the
writer and the checkpoint, and splitting them would spread that protocol over files.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import pathlib
import re
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from . import metrics
from .methods import particles
from .backend import array_module, to_numpy
from .errors import ConvergenceWarning, NonFiniteError, OptionError
from .flows import Field, get as get_flow
from .io import checkpoint
from .io.fs import make_owned_dir, remove_owned_dir
from .io.lock import LockHeld, RunLock
from .io.schema import SCALAR_METRICS, Variable
from .io.writer import RunStore
from .methods import record as method_record
from .methods._common import rng as _rng
from .scenario import RunPoint, Scenario, ScenarioError, expand
from .scenario.identity import identity_hash as _fingerprint_hash
from .scenario.identity import run_identity

__all__ = ["run_scenario", "run_points", "output_path", "fingerprint", "run_identity", "final_scores", "RunFileError",
           "LockHeld", "clean_stale"]


@dataclass
class _Data:
    """What every point of a file shares: the target and reference samples and the modes."""

    target: np.ndarray  # (M, d)
    reference: np.ndarray  # (R, d)
    centres: np.ndarray | None  # (K, d)
    mode_names: list
    target_mode_mass: np.ndarray | None  # (K,)


def _data(sc: Scenario, point: RunPoint) -> _Data:
    tgt = point.target.build()
    target = tgt.sample(point.target.n, _rng(point.target.seed, 0))
    reference = tgt.sample(sc.metrics.reference_n, _rng(point.target.seed, 1))
    centres = tgt.centres
    names = list(tgt.mode_names) if centres is not None else []
    mass = metrics.mode_mass(target, centres) if centres is not None else None
    return _Data(target, reference, centres, names, mass)


def output_path(sc: Scenario, out_dir) -> pathlib.Path:
    return pathlib.Path(out_dir) / f"{sc.name}.h5"


# ---------------------------------------------------------------- the loop
def _record_steps(steps: int, every: int) -> list[int]:
    rec = list(range(0, steps + 1, every))
    if rec[-1] != steps:
        rec.append(steps)
    return rec


def _stored_metrics(sc: Scenario, points: list[RunPoint]) -> tuple[str, ...]:
    """The scalar metrics the file stores: those asked for (``energy`` only where some flow has one)."""
    names = set(sc.metrics.names)
    if not any(get_flow(p.flow).energy is not None for p in points):
        names.discard("energy")
    return tuple(m for m in SCALAR_METRICS if m in names)


def _axis_metrics(sc: Scenario) -> dict:
    """The metrics with a dimension of their own the file stores (``mmd2_at``): ``{name: (dim, values)}``."""
    options = dataclasses.asdict(sc.metrics)
    return {name: (r.axis.dim, tuple(options[r.axis.option])) for name, r in metrics.axis_records().items()
            if name in sc.metrics.names and options.get(r.axis.option) is not None}


def _extra_variables(points: list[RunPoint]) -> dict:
    """The per-record numbers the runs' methods declare (their records' ``variables``)."""
    out: dict = {}
    for p in points:
        out.update(method_record(p.method).variables)
        for name, long_name, units in get_flow(p.flow).diagnostics:  # a flow's solver diagnostics (Sinkhorn's)
            out[name] = Variable(("run", "time"), "float64", long_name, units)
    return out


def _metrics(sc: Scenario, point: RunPoint, data: _Data, x, v, step: int) -> dict:
    names = sc.metrics.names
    pair = [n for n in names if n in metrics.METRICS]
    want_modes = "mode_mass" in names and data.centres is not None
    out = metrics.compute(x, data.reference, pair + (["mode_mass"] if want_modes else []),
                          centres=data.centres if want_modes else None, backend=sc.run.backend,
                          options=metrics.options_of(pair, dataclasses.asdict(sc.metrics)))
    if "velocity_rms" in names and v is not None:
        out["velocity_rms"] = metrics.velocity_rms(v)
    if "energy" in names and get_flow(point.flow).energy is not None:
        # its own seeded stream: estimating the energy never changes the trajectory
        field = Field(point.flow, params=point.flow_params or point.params, rng=_rng(point.seed, 4, step),
                      backend=sc.run.backend, prune_tol=sc.run.prune_tol)
        try:
            out["energy"] = field.energy(x, data.target)
        except NonFiniteError:  # the functional overflows at this state (huge particles): NaN, like the metrics
            out["energy"] = math.nan
    return out


# errors of a computation on a valid run's state: at step 0 they are the user's inputs (re-raised), later
# the state has run away (huge finite positions: a median bandwidth or an epsilon of inf)
_STATE_ERRORS = (ValueError, FloatingPointError, OverflowError, ZeroDivisionError)
_F32_MAX = float(np.finfo(np.float32).max)


def _storable(name: str, arr: np.ndarray, step: int) -> np.ndarray:
    """``arr`` if finite in the storage dtype (float32), else :class:`particles.SimulationError` (never stored inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        ok = bool(np.isfinite(arr.astype(np.float32, copy=False)).all())
        biggest = float(np.nanmax(np.abs(arr))) if arr.size and not np.isnan(arr).all() else math.nan
    if not ok:
        raise particles.SimulationError(
            f"step {step}: the {name} left the float32 range of the run file (max |value| {biggest:.3g}, "
            f"float32 holds up to {_F32_MAX:.3g}): the run diverged; try a smaller run.step_size"
        )
    return arr


def _max_abs(x) -> float:
    a = to_numpy(x)
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.nanmax(np.abs(a))) if a.size and not np.isnan(a).all() else math.nan


def _run_one(sc, point, method, r, store, data, ckdir, bar, unconverged: list) -> str | None:
    """Run point ``r`` (resuming from its checkpoint); returns an error message if the run failed.

    A run fails (its records so far kept, the other runs going on) when a step
    produces NaN/inf, when its positions or velocities leave the float32 range
    of the file, or when a later step's field or metrics cannot be computed
    from its state (huge finite positions); the record of that step is kept
    with its positions whenever they are storable.
    """
    ck_path = ckdir / f"run{r}.npz"
    snap = checkpoint.load(ck_path)
    if snap is not None and "done" in snap:
        bar.update(sc.run.steps)
        error = str(snap.get("error", ""))
        return error or None
    state = method.restore(snap) if snap is not None else method.init()
    step = int(np.asarray(snap["step"])) if snap is not None else 0
    # step -> record index: one lookup per step, not a scan of the record list
    record_at = {k: i for i, k in enumerate(_record_steps(sc.run.steps, sc.run.record_every))}
    bar.update(step)
    n_store = store.n_particles
    stored = set(store.metrics) | set(store.axis_metrics)
    diagnostics = tuple(name for name, _, _ in get_flow(point.flow).diagnostics)
    tol = getattr(point.flow_params, "tol", math.inf)  # Sinkhorn's: the bar of its recorded error
    while True:
        is_record = step in record_at
        if is_record:
            checkpoint.save(ck_path, method.snapshot(state))
        rec = None
        try:
            try:
                v = method.evaluate(state)
                if is_record:
                    x, v_rec, extra = method.record(state, v)
                    rec = {"step": step, "t": method.t(step),
                           "position": _pad(_storable("positions", to_numpy(x), step), n_store)}
                    if v_rec is not None and sc.run.record_velocity:
                        rec["velocity"] = _pad(_storable("velocities", to_numpy(v_rec), step), n_store)
                    rec.update(_metrics(sc, point, data, x, v_rec, step))
                    rec.update(_solver_stats(state, diagnostics))
                    if rec.get("sinkhorn_error", 0.0) >= tol:
                        unconverged.append((step, rec["sinkhorn_error"], rec["sinkhorn_iterations"]))
                    rec.update(extra)
                if step == sc.run.steps:
                    if is_record:
                        rec.update(method.final(state))
                        store.write_record(r, record_at[step], _keep(rec, stored))
                    break
                state, extra = method.advance(state, v)
            except _STATE_ERRORS as err:
                if step == 0:
                    raise  # the run's own inputs: a user error, reported as such
                where = f"max |x| = {_max_abs(state.x):.3g}" if hasattr(state, "x") else "its state"
                raise particles.SimulationError(
                    f"step {step}: the field or the metrics cannot be computed from the particles ({where}): "
                    f"{err}; the run diverged, try a smaller run.step_size"
                ) from None
            if is_record:
                rec.update(extra)
                store.write_record(r, record_at[step], _keep(rec, stored))
                bar.set_postfix_str(_postfix(point, rec), refresh=False)
        except particles.SimulationError as err:
            if rec is not None:  # the positions of this record are storable: keep them (metrics NaN)
                store.write_record(r, record_at[step], _keep(rec, stored))
            checkpoint.save(ck_path, {"done": True, "error": str(err)})
            return str(err)
        step += 1
        bar.update(1)
    checkpoint.save(ck_path, {"done": True})
    return None


def _solver_stats(state, names: tuple) -> dict:
    """What the flow's solver reported for the field just evaluated (its record's ``diagnostics``)."""
    carried = getattr(getattr(getattr(state, "field", None), "ctx", None), "state", None) or {}
    return {name: float(carried[name]) for name in names if name in carried}


def _keep(rec: dict, stored: set) -> dict:
    """The record without the metrics the file does not store."""
    axis = metrics.axis_records()
    return {k: v for k, v in rec.items() if (k not in SCALAR_METRICS and k not in axis) or k in stored}


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] == n:
        return x
    out = np.full((n, x.shape[1]), np.nan, dtype=x.dtype)
    out[: x.shape[0]] = x
    return out


def _postfix(point: RunPoint, rec: dict) -> str:
    parts = [point.flow]
    if "mmd2" in rec:
        parts.append(f"mmd2={rec['mmd2']:.2e}")
    if "mode_mass" in rec:
        parts.append("mass=" + "/".join(f"{m:.2f}" for m in rec["mode_mass"]))
    return " ".join(parts)


def _json(obj) -> str:
    return json.dumps(obj, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))


def _run_text(points: list[RunPoint], methods: list, ident: dict) -> dict:
    """Per run: the flow's full options (its resolved Params, as in the identity) and the method's settings, as JSON."""
    flow_params, method_params = [], []
    for p, m, run in zip(points, methods, ident["runs"]):
        flow_params.append(_json({"flow": p.flow, **run["params"]}))
        method_params.append(_json({"method": p.method, **m.settings()}))
    return {"flow_params": flow_params, "method_params": method_params}


class RunFileError(ValueError):
    """The run file cannot be written or continued as asked (another scenario, no --resume, unreadable)."""


def fingerprint(sc: Scenario, points: list[RunPoint], methods: list | None = None) -> dict:
    """The run file's identity: :func:`wgfsim.scenario.identity.run_identity` (``methods`` is not needed).

    For a ``from_file`` target or init it holds the SHA-256 of the data file's
    content (``target.content``), so data edited between a kill and
    ``--resume`` is refused by name.
    """
    return run_identity(sc, points)


def _flatten(obj, prefix: str = ""):
    """``("runs[1].params.bandwidth", 0.5)`` pairs of a nested JSON value."""
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list) and obj and any(isinstance(v, (dict, list)) for v in obj):
        for i, v in enumerate(obj):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def _differing_keys(stored: dict, current: dict) -> list[str]:
    a, b = dict(_flatten(stored)), dict(_flatten(current))
    keys = list(a) + [k for k in b if k not in a]
    def text(v):  # NaN (a generator-only step_size) equals itself here
        return json.dumps(v, sort_keys=True)

    return [k for k in keys if text(a.get(k, "<absent>")) != text(b.get(k, "<absent>"))]


def _check_identity(file: pathlib.Path, ident: dict, how: str) -> None:
    """Refuse (RunFileError) unless ``file`` was written for the fingerprint ``ident``."""
    import h5py

    try:
        with h5py.File(file, "r", locking=False) as h:
            stored_hash = h.attrs.get("fingerprint")
            stored_text = h.attrs.get("resolved_scenario")
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise RunFileError(f"{file}: cannot {how}: not a readable run file ({_short(err)}); "
                           "start afresh with --overwrite") from None
    if stored_hash is None or stored_text is None:
        raise RunFileError(f"{file}: cannot {how}: the file has no scenario fingerprint (a foreign file, or one "
                           "written by an older wgfsim); start afresh with --overwrite")
    stored_hash = stored_hash.decode() if isinstance(stored_hash, bytes) else str(stored_hash)
    if stored_hash == _fingerprint_hash(ident):
        return
    try:
        stored = json.loads(stored_text.decode() if isinstance(stored_text, bytes) else str(stored_text))
    except ValueError:
        stored = {}
    keys = []
    for k in _differing_keys(stored, ident):  # runs[0].seed, runs[1].seed, ... read as runs[*].seed
        k = re.sub(r"^runs\[\d+\]", "runs[*]", k)
        if k not in keys:
            keys.append(k)
    keys = keys or ["(unknown)"]
    shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    raise RunFileError(f"{file}: cannot {how}: it was written for another scenario (differing: {shown}); "
                       "give the same scenario and --set values, or start afresh with --overwrite")


def _short(err: BaseException) -> str:
    return " ".join((str(err) or type(err).__name__).split())


def clean_stale(path: pathlib.Path) -> None:
    """Remove what a run killed right after its final rename left beside a complete ``NAME.h5``.

    Only names derived from ``path`` (``NAME.h5.partial``, its shadow, swap and
    ``.new``, and the ``NAME.ckpt`` folder) are touched, in ``path``'s folder;
    the folder only when it carries our marker (:mod:`wgfsim.io.fs`), and in it
    only our checkpoint files: a user's folder of that name is left alone.
    """
    partial = path.with_name(path.name + ".partial")
    for p in (partial, partial.with_name(partial.name + ".shadow"), partial.with_name(partial.name + ".swap"),
              partial.with_name(partial.name + ".new")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    remove_owned_dir(checkpoint.ckpt_dir(path), path.name, "checkpoints", strict=False)


def _output_folder(folder: pathlib.Path) -> None:
    """Create the output folder, or one line saying why it cannot be used."""
    if folder.exists() and not folder.is_dir():
        raise RunFileError(f"{folder}: the output folder is a file; give -o a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):  # the environment's: exit 1 like a full disk
            raise OSError(err.errno, f"{folder}: cannot create the output folder ({err.strerror})") from None
        raise RunFileError(f"{folder}: cannot create the output folder ({err.strerror or _short(err)})") from None
    probe = folder / f".wgfsim-write-test-{os.getpid()}"
    full = (errno.ENOSPC, errno.EDQUOT, errno.EIO)  # the environment's (exit 1), not the user's choice of folder
    try:  # O_EXCL|O_NOFOLLOW: a planted symlink at the probe's name is never written through
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        probe.unlink()
    except FileExistsError:
        pass  # a leftover probe or a planted name: the folder exists; the real writes below check their own names
    except OSError as err:
        if err.errno in full:  # a full disk, no inodes left: like any full disk later in the run
            raise OSError(err.errno, f"{folder}: cannot write in the output folder ({err.strerror}; a file system "
                          "with no free inodes says so too)") from None
        raise RunFileError(f"{folder}: cannot write in the output folder ({err.strerror or _short(err)})") from None


def run_points(sc: Scenario, points: list[RunPoint], path, *, resume: bool = False, overwrite: bool = False,
               progress: bool = True, sweep_point: str | None = None) -> pathlib.Path:
    """Run ``points`` into one file ``path`` (``NAME.h5``, written as ``NAME.h5.partial``); return the final path.

    A run whose step produces NaN/inf (or positions beyond float32, or a
    state whose field or metrics cannot be computed) stops there: its records
    so far are kept, the other runs go on, and the file's ``failed_runs``
    attribute lists it (the CLI then exits 1).

    The file carries the :func:`fingerprint` of the resolved scenario
    (attributes ``fingerprint``, a SHA-256, and ``resolved_scenario``, its
    JSON).  ``resume=True`` continues ``NAME.h5.partial`` only when its
    fingerprint matches (else :class:`RunFileError` naming the differing
    keys); without ``resume`` an existing ``.partial`` is refused unless
    ``overwrite=True``.  The lock ``NAME.h5.lock`` is held throughout
    (:class:`~wgfsim.io.lock.LockHeld` when another process holds it).
    ``sweep_point``: the identity a sweep gives this point (the hash in its
    file name), stored as the attribute ``sweep_point`` so that
    :func:`wgfsim.io.open_sweep` can refuse a file of another point.
    """
    path = pathlib.Path(path)
    if not points:
        raise ScenarioError(f"{sc.source}: the scenario expands to no runs")
    backend = sc.run.backend
    xp = array_module(backend)
    dtype = np.dtype(sc.run.dtype)
    data = _data(sc, points[0])
    try:
        methods = [_method(sc, p, data, xp, dtype) for p in points]
    except OptionError as err:
        raise ScenarioError(f"{sc.source}: {err}", source=sc.source) from None
    ident = run_identity(sc, points)
    _output_folder(path.parent)
    with RunLock(path):
        return _run_locked(sc, points, methods, data, ident, path, resume=resume, overwrite=overwrite,
                           progress=progress, extra={"sweep_point": sweep_point} if sweep_point else {})


def _method(sc: Scenario, point: RunPoint, data: _Data, xp, dtype):
    """The point's method, built from its own settings: the runner translates ``[run]`` and the method's table."""
    rec = method_record(point.method)
    table = sc.tables.get(rec.table) if rec.table else None
    settings = rec.settings(sc.run, table, data.target.shape[1], point.init.n)
    return rec.cls(settings, point, data.target, xp, dtype, sc.run.backend, sc.run.prune_tol)


def _run_locked(sc, points, methods, data, ident, path, *, resume, overwrite, progress, extra) -> pathlib.Path:
    n_particles = max(m.n_points for m in methods)
    # what the file stores beside positions: derived once, used to create it and to score its runs at the end
    axis_metrics = _axis_metrics(sc)
    extra_variables = _extra_variables(points)
    stored = _stored_metrics(sc, points) + tuple(axis_metrics)
    ckdir = checkpoint.ckpt_dir(path)
    partial = path.with_name(path.name + ".partial")
    if path.exists() and (partial.exists() or ckdir.exists()):
        # a kill right after the final rename leaves these behind: the complete file supersedes them
        # (a new run removes NAME.h5 before it creates its .partial, so the two never hold different runs)
        clean_stale(path)
    if resume and path.exists():
        _check_identity(path, ident, "resume it")
        return path  # already complete
    if resume and partial.exists():
        _check_identity(partial, ident, "resume it")
        try:
            store = RunStore.reopen(path)
        except (OSError, KeyError, RuntimeError) as err:
            raise RunFileError(f"{partial}: cannot resume it: not a readable run file ({_short(err)}); "
                               "start afresh with --overwrite") from None
    else:
        if partial.exists() and not overwrite:
            raise RunFileError(f"{partial}: an unfinished run is here; continue it with --resume (same scenario "
                               "and --set values), or discard it with --overwrite")
        if resume:
            print(f"wgfsim: nothing to resume at {partial}; starting afresh", file=sys.stderr)
        # a stale checkpoint folder of ours goes; anything else at that name is refused, never removed
        remove_owned_dir(ckdir, path.name, "checkpoints")
        store = RunStore.create(
            path,
            run_coords=_run_coords(points),
            n_particles=n_particles,
            dim=data.target.shape[1],
            mode_names=data.mode_names or 0,
            target=data.target,
            reference=data.reference,
            attrs={**_attrs(sc, points[0]), **extra, "fingerprint": _fingerprint_hash(ident),
                   "resolved_scenario": json.dumps(ident, sort_keys=True)},
            record_velocity=sc.run.record_velocity,
            overwrite=True,
            metrics=stored,
            metric_axes={dim: values for dim, values in axis_metrics.values()},
            extra_variables=extra_variables,
            mode_centres=data.centres,
            target_mode_mass=data.target_mode_mass,
            run_text=_run_text(points, methods, ident),
        )
    make_owned_dir(ckdir, path.name, "checkpoints")  # refuses a symlink or a folder we did not write
    failed = {}
    total = len(points) * sc.run.steps
    try:
        with tqdm(total=total, disable=not progress, unit="step", dynamic_ncols=True, file=sys.stderr) as bar:
            for r, (point, method) in enumerate(zip(points, methods)):
                bar.set_description(point.label)
                unconverged: list = []
                with warnings.catch_warnings():  # recorded per step and summarised below, not one warning a step
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    err = _run_one(sc, point, method, r, store, data, ckdir, bar, unconverged)
                if unconverged:
                    _report_unconverged(point, unconverged, sc.run.steps // sc.run.record_every + 1)
                if err is not None:
                    failed[point.label] = err
                    print(f"wgfsim: run '{point.label}' stopped: {err}", file=sys.stderr)
        # the metrics (mmd2_at too) and e.g. the loss
        scores = final_scores(partial, stored + tuple(extra_variables), sc.metrics.final_window)
        final = store.finish({"failed_runs": json.dumps(failed), **scores})
    except BaseException:
        store.close()  # the .partial keeps every record; --resume continues from the checkpoints
        raise
    remove_owned_dir(ckdir, path.name, "checkpoints", strict=False)
    return final


def _report_unconverged(point: RunPoint, unconverged: list, n_records: int) -> None:
    """One line per run whose Sinkhorn solves missed their tolerance at some records."""
    step, err, it = max(unconverged, key=lambda u: u[1])
    print(f"wgfsim: run '{point.label}': Sinkhorn did not reach its tol at {len(unconverged)} of about {n_records} "
          f"records (largest marginal error {err:.3g}, at step {step} after {it:.0f} iterations); the file records "
          "sinkhorn_error and sinkhorn_iterations per record: raise max_iter or use scaling", file=sys.stderr)


def final_scores(file, names, window: int) -> dict:
    """Each run's final score: mean and spread of each scalar metric over its last ``window`` records.

    One record is one latent batch (generator) or one particle cloud, so its
    value is partly luck; the mean over the last ``window`` records of a run
    (its finite values, the final record included) and their sample standard
    deviation (NaN from fewer than two) are the score to compare.  Returns
    attributes ``final_window`` and per metric ``final_<name>_mean`` and
    ``final_<name>_std`` (one number per run), read back from ``file``.  A
    metric with a dimension of its own (``mmd2_at`` over ``mmd2_bandwidth``)
    gets one pair per value of it, named by the value: ``final_mmd2_at_0.05_mean``.
    """
    import h5py

    out: dict = {"final_window": int(window)}
    with h5py.File(file, "r", locking=False) as h:
        for name in names:
            if name not in h:
                continue
            values = np.asarray(h[name][...], dtype=np.float64)  # (run, time) or (run, time, B)
            if values.ndim == 3:  # mmd2_at: one score per bandwidth, named by it
                axis = np.asarray(h[metrics.RECORDS[name].axis.dim][...], dtype=np.float64)  # (B,)
                for b, value in enumerate(axis):
                    out.update(_window_scores(f"{name}_{value:g}", values[:, :, b], window))
            else:
                out.update(_window_scores(name, values, window))
    return out


def _window_scores(name: str, values: np.ndarray, window: int) -> dict:
    """``final_<name>_mean``/``_std``: per run (row of ``values``, (run, time)), over its last ``window`` finite values."""
    means, stds = [], []
    for row in values:
        last = row[np.isfinite(row)][-window:]
        means.append(float(last.mean()) if last.size else math.nan)
        stds.append(float(last.std(ddof=1)) if last.size > 1 else math.nan)
    return {f"final_{name}_mean": means, f"final_{name}_std": stds}


def _run_coords(points: list[RunPoint]) -> dict:
    keys = []
    for p in points:
        for k in p.coords:
            if k not in keys:
                keys.append(k)
    return {k: [p.coords.get(k) for p in points] for k in keys}


def _dist(spec) -> str:
    """A target or init description as JSON: kind, n, seed and options."""
    return _json({"kind": spec.kind, "n": spec.n, "seed": spec.seed, **spec.options})


def _attrs(sc: Scenario, point: RunPoint) -> dict:
    """Provenance (the scenario as given: text and overrides), the data's description, the shared run settings."""
    return {
        "target": _dist(point.target),
        "init": _dist(point.init),
        "scenario": sc.text,
        "scenario_name": sc.name,
        "scenario_source": sc.source,
        "overrides": json.dumps(list(sc.overrides)),
        "backend": sc.run.backend,
        "dtype": sc.run.dtype,
        "step_size": sc.run.step_size,
        "steps": sc.run.steps,
        "record_every": sc.run.record_every,
        "prune_tol": sc.run.prune_tol,
    }


def run_scenario(sc: Scenario, out_dir, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True) -> pathlib.Path:
    """Run every point of a scenario (no data sweeps) into ``out_dir/NAME.h5`` (see :func:`run_points`)."""
    points = expand(sc, allow_data_sweeps=False)
    return run_points(sc, points, output_path(sc, out_dir), resume=resume, overwrite=overwrite, progress=progress)
