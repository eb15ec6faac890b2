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

Random streams of a point with seed ``s`` (``numpy.random.SeedSequence``):
``[s, 1]`` init sample, ``[s, 2]`` the flow's own draws, ``[s, 3]`` target
minibatches and latents, ``[s, 4]`` energy estimates; the target sample uses
``[target.seed, 0]`` and the reference sample ``[target.seed, 1]``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import sys
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from . import metrics, particles
from .backend import array_module, to_numpy
from .flows import Field, get as get_flow, make_params
from .io import checkpoint
from .io.schema import SCALAR_METRICS
from .io.writer import RunStore
from .methods import get as get_method
from .methods._common import rng as _rng
from .scenario import RunPoint, Scenario, ScenarioError, expand

__all__ = ["run_scenario", "run_points", "output_path"]

# metrics of (x, reference) computed by wgfsim.metrics.compute
_PAIR_METRICS = ("mmd2", "energy_distance", "sinkhorn", "w2")


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
    """The scalar metrics the file stores: those asked for, plus the generator's loss when it runs."""
    names = set(sc.metrics.names)
    if not any(get_flow(p.flow).energy is not None for p in points):
        names.discard("energy")
    if any(p.method == "generator" for p in points):
        names.add("loss")
    return tuple(m for m in SCALAR_METRICS if m in names)


def _metrics(sc: Scenario, point: RunPoint, data: _Data, x, v, step: int) -> dict:
    names = sc.metrics.names
    scalar = [n for n in names if n in _PAIR_METRICS]
    options = {"w2": {"max_points": sc.metrics.w2_max_points}}
    if sc.metrics.sinkhorn_epsilon is not None:
        options["sinkhorn"] = {"epsilon": sc.metrics.sinkhorn_epsilon}
    want_modes = "mode_mass" in names and data.centres is not None
    out = metrics.compute(x, data.reference, scalar + (["mode_mass"] if want_modes else []),
                          centres=data.centres if want_modes else None, backend=sc.run.backend,
                          options={k: o for k, o in options.items() if k in scalar})
    if "velocity_rms" in names and v is not None:
        out["velocity_rms"] = metrics.velocity_rms(v)
    if "energy" in names and get_flow(point.flow).energy is not None:
        # its own seeded stream: estimating the energy never changes the trajectory
        field = Field(point.flow, rng=_rng(point.seed, 4, step), backend=sc.run.backend, **point.params)
        out["energy"] = field.energy(x, data.target)
    return out


def _run_one(sc, point, method, r, store, data, ckdir, bar) -> str | None:
    """Run point ``r`` (resuming from its checkpoint); returns an error message if the run failed."""
    ck_path = ckdir / f"run{r}.npz"
    snap = checkpoint.load(ck_path)
    if snap is not None and "done" in snap:
        bar.update(sc.run.steps)
        error = str(snap.get("error", ""))
        return error or None
    state = method.restore(snap) if snap is not None else method.init()
    step = int(np.asarray(snap["step"])) if snap is not None else 0
    record_at = _record_steps(sc.run.steps, sc.run.record_every)
    bar.update(step)
    n_store = store.n_particles
    stored = set(store.metrics)
    while True:
        is_record = step in record_at
        if is_record:
            checkpoint.save(ck_path, method.snapshot(state))
        try:
            v = method.evaluate(state)
            if is_record:
                x, v_rec, extra = method.record(state, v)
                rec = _metrics(sc, point, data, x, v_rec, step)
                rec.update(extra)
                rec.update(step=step, t=method.t(step), position=_pad(to_numpy(x), n_store))
                if v_rec is not None and sc.run.record_velocity:
                    rec["velocity"] = _pad(to_numpy(v_rec), n_store)
            if step == sc.run.steps:
                if is_record:
                    rec.update(method.final(state))
                    store.write_record(r, record_at.index(step), _keep(rec, stored))
                break
            state, extra = method.advance(state, v)
            if is_record:
                rec.update(extra)
                store.write_record(r, record_at.index(step), _keep(rec, stored))
                bar.set_postfix_str(_postfix(point, rec), refresh=False)
        except particles.SimulationError as err:
            checkpoint.save(ck_path, {"done": True, "error": str(err)})
            return str(err)
        step += 1
        bar.update(1)
    checkpoint.save(ck_path, {"done": True})
    return None


def _keep(rec: dict, stored: set) -> dict:
    """The record without scalar metrics the file does not store."""
    return {k: v for k, v in rec.items() if k not in SCALAR_METRICS or k in stored}


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


def _run_text(points: list[RunPoint], methods: list) -> dict:
    """Per run: the flow's full options (defaults included) and the method's settings, as JSON."""
    flow_params, method_params = [], []
    for p, m in zip(points, methods):
        params = dataclasses.asdict(make_params(p.flow, **p.params))
        flow_params.append(_json({"flow": p.flow, **params}))
        method_params.append(_json({"method": p.method, **m.settings()}))
    return {"flow_params": flow_params, "method_params": method_params}


def run_points(sc: Scenario, points: list[RunPoint], path, *, resume: bool = False, progress: bool = True) -> pathlib.Path:
    """Run ``points`` into one file ``path`` (``NAME.h5``, written as ``NAME.h5.partial``); return the final path.

    A run whose step produces NaN/inf stops there: its records so far are
    kept, the other runs go on, and the file's ``failed_runs`` attribute
    lists it (the CLI then exits 1).
    """
    path = pathlib.Path(path)
    if not points:
        raise ScenarioError(f"{sc.source}: the scenario expands to no runs")
    backend = sc.run.backend
    xp = array_module(backend)
    dtype = np.dtype(sc.run.dtype)
    data = _data(sc, points[0])
    try:
        methods = [get_method(p.method)(sc, p, data.target, xp, dtype) for p in points]
    except ValueError as err:
        raise ScenarioError(str(err)) from None
    n_particles = max(m.n_points for m in methods)
    ckdir = checkpoint.ckpt_dir(path)
    partial = path.with_name(path.name + ".partial")
    if resume and path.exists():
        return path  # already complete
    if resume and partial.exists():
        store = RunStore.reopen(path)
    else:
        if resume:
            print(f"wgfsim: nothing to resume at {partial}; starting afresh", file=sys.stderr)
        shutil.rmtree(ckdir, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = RunStore.create(
            path,
            run_coords=_run_coords(points),
            n_particles=n_particles,
            dim=data.target.shape[1],
            mode_names=data.mode_names or 0,
            target=data.target,
            reference=data.reference,
            attrs=_attrs(sc, points[0]),
            record_velocity=sc.run.record_velocity,
            overwrite=True,
            metrics=_stored_metrics(sc, points),
            mode_centres=data.centres,
            target_mode_mass=data.target_mode_mass,
            run_text=_run_text(points, methods),
        )
    ckdir.mkdir(parents=True, exist_ok=True)
    failed = {}
    total = len(points) * sc.run.steps
    try:
        with tqdm(total=total, disable=not progress, unit="step", dynamic_ncols=True, file=sys.stderr) as bar:
            for r, (point, method) in enumerate(zip(points, methods)):
                bar.set_description(point.label)
                err = _run_one(sc, point, method, r, store, data, ckdir, bar)
                if err is not None:
                    failed[point.label] = err
                    print(f"wgfsim: run '{point.label}' stopped: {err}", file=sys.stderr)
    except BaseException:
        store.close()  # the .partial keeps every record; --resume continues from the checkpoints
        raise
    final = store.finish({"failed_runs": json.dumps(failed)})
    shutil.rmtree(ckdir, ignore_errors=True)
    return final


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
    }


def run_scenario(sc: Scenario, out_dir, *, resume: bool = False, progress: bool = True) -> pathlib.Path:
    """Run every point of a scenario (no data sweeps) into ``out_dir/NAME.h5``."""
    points = expand(sc, allow_data_sweeps=False)
    return run_points(sc, points, output_path(sc, out_dir), resume=resume, progress=progress)
