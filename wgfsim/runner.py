"""One run group: drive each (target, init, flow, method, seed) point and hand its records to the store.

A scenario expands into run points (:func:`wgfsim.scenario.expand`); all
points of one file share the record schedule (every ``record_every`` steps
and the last step).  At a record step ``k`` the record holds the positions
``x_k``, the field ``v(x_k)`` and the metrics of ``x_k`` against the held-out
reference sample; then the Euler step (or the generator's drift-regression
step) is taken.

Crash safety: before each record the run's full state (positions in full
precision, every RNG, the flow's carried state such as Sinkhorn potentials,
the generator's parameters and Adam moments) is pickled atomically to
``NAME.ckpt/run<r>.pkl``, so ``--resume`` continues a killed run from its
last record and produces the same file as an uninterrupted run (bit for bit
on the CPU: every random draw comes from a seeded stream and the kernels are
deterministic).

Random streams of a point with seed ``s`` (``numpy.random.SeedSequence``):
``[s, 1]`` init sample, ``[s, 2]`` the flow's own draws, ``[s, 3]`` target
minibatches and latents, ``[s, 4]`` energy estimates; the target sample uses
``[target.seed, 0]`` and the reference sample ``[target.seed, 1]``.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import shutil
import sys
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from . import metrics, particles
from .backend import array_module, to_numpy
from .flows import Field, get as get_flow
from .generator import train as gen_train
from .generator.mlp import MLPConfig
from .scenario import RunPoint, Scenario, ScenarioError, expand
from .store import RunStore

__all__ = ["run_scenario", "run_points", "output_path"]

_SCALAR_METRICS = ("mmd2", "energy_distance", "sinkhorn", "w2")


def _rng(*words) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(w) for w in words]))


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


# ---------------------------------------------------------------- methods
class _Particles:
    """The particle method: Euler steps of the flow (wgfsim.particles)."""

    name = "particles"

    def __init__(self, sc, point, data, xp, dtype):
        self.sc, self.point, self.xp, self.dtype = sc, point, xp, dtype
        self.target = xp.asarray(data.target, dtype=dtype)

    def start(self):
        x0 = self.point.init.build().sample(self.point.init.n, _rng(self.point.seed, 1))
        field = Field(self.point.flow, rng=_rng(self.point.seed, 2), backend=self.sc.run.backend, **self.point.params)
        return particles.init(self.xp.asarray(x0, dtype=self.dtype), field, _rng(self.point.seed, 3))

    def snapshot(self, state):
        return {"x": to_numpy(state.x), "step": state.step, "rng": state.rng, "field_rng": state.field.ctx.rng, "field_state": _host(state.field.ctx.state)}

    def restore(self, snap):
        state = self.start()
        state.x = self.xp.asarray(snap["x"], dtype=self.dtype)
        state.step = snap["step"]
        state.rng = snap["rng"]
        state.field.ctx.rng = snap["field_rng"]
        state.field.ctx.state.update(_device(snap["field_state"], self.xp))
        return state

    def evaluate(self, state, is_record=True):
        """Positions, the velocity there, and what else the record holds."""
        v = particles.velocity(state, self.target, self.sc.run.minibatch)
        return state.x, v, {}

    def advance(self, state, v):
        return particles.advance(state, v, self.sc.run.step_size)

    def t(self, step):
        return step * self.sc.run.step_size


class _Generator:
    """The amortized method: a one-step generator trained by drifting regression (wgfsim.generator)."""

    name = "generator"

    def __init__(self, sc, point, data, xp, dtype):
        self.sc, self.point, self.xp, self.dtype = sc, point, xp, dtype
        spec = sc.generator
        if spec is None:
            raise ScenarioError(f"{sc.source}: generator: method 'generator' needs a [generator] table")
        self.cfg = gen_train.TrainConfig(
            mlp=MLPConfig(out_dim=data.target.shape[1], latent_dim=spec.latent_dim, width=spec.width, depth=spec.depth, activation=spec.activation),
            learning_rate=spec.learning_rate,
            inner_steps=spec.inner_steps,
            batch_size=spec.batch_size,
            drift_step=spec.drift_step,
            minibatch=sc.run.minibatch,
            lr_schedule=spec.lr_schedule,
            total_steps=sc.run.steps,
            ema_decay=spec.ema_decay,
        )
        self.data = data
        # a fixed evaluation latent set: records are comparable step to step
        n_eval = spec.eval_n or point.init.n
        self.z_eval = xp.asarray(_rng(point.seed, 1).standard_normal((n_eval, spec.latent_dim)), dtype=dtype)
        self.target = xp.asarray(data.target, dtype=dtype)
        self.pending_loss = np.nan

    def _field(self):
        return Field(self.point.flow, rng=_rng(self.point.seed, 2), backend=self.sc.run.backend, **self.point.params)

    def start(self):
        return gen_train.init(self.cfg, self.data.target, self._field(), _rng(self.point.seed, 3), xp=self.xp, dtype=self.dtype)

    def snapshot(self, state):
        return {"checkpoint": gen_train.checkpoint(state), "step": state.step}

    def restore(self, snap):
        return gen_train.restore(snap["checkpoint"], self.cfg, self.data.target, self._field(), xp=self.xp)

    def evaluate(self, state, is_record=True):
        # the samples on the evaluation latents are only needed for records (a forward pass of eval_n)
        x = gen_train.samples(state, self.z_eval) if is_record else None
        return x, None, {}

    def advance(self, state, v):
        state, loss = gen_train.step(state, self.cfg)
        return state, loss

    def t(self, step):
        return step * self.cfg.drift_step


METHODS = {"particles": _Particles, "generator": _Generator}


def _host(state: dict) -> dict:
    """The flow's carried state with arrays copied to the host (picklable everywhere)."""
    out = {}
    for k, v in state.items():
        out[k] = tuple(None if a is None else to_numpy(a) for a in v) if isinstance(v, tuple) else v
    return out


def _device(state: dict, xp) -> dict:
    out = {}
    for k, v in state.items():
        out[k] = tuple(None if a is None else xp.asarray(a) for a in v) if isinstance(v, tuple) else v
    return out


# ---------------------------------------------------------------- checkpoints
def _ckpt_dir(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name[: -len(".h5")] + ".ckpt")


def _save(path: pathlib.Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)  # atomic: a kill leaves the old checkpoint or the new one


def _load(path: pathlib.Path):
    if not path.exists():
        return None
    with open(path, "rb") as fh:
        return pickle.load(fh)


# ---------------------------------------------------------------- the loop
def _record_steps(steps: int, every: int) -> list[int]:
    rec = list(range(0, steps + 1, every))
    if rec[-1] != steps:
        rec.append(steps)
    return rec


def _metrics(sc: Scenario, point: RunPoint, data: _Data, x, v, step: int) -> dict:
    names = sc.metrics.names
    scalar = [n for n in names if n in _SCALAR_METRICS]
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


def _run_one(sc, point, r, store, data, xp, dtype, ckdir, bar) -> str | None:
    """Run point ``r`` (resuming from its checkpoint); returns an error message if the run failed."""
    method = METHODS[point.method](sc, point, data, xp, dtype)
    ck_path = ckdir / f"run{r}.pkl"
    snap = _load(ck_path)
    if snap is not None and snap.get("done"):
        bar.update(sc.run.steps)
        return snap.get("error")
    state = method.restore(snap["state"]) if snap is not None else method.start()
    step = snap["state"]["step"] if snap is not None else 0
    record_at = _record_steps(sc.run.steps, sc.run.record_every)
    bar.update(step)
    n_store = store.n_particles
    while True:
        is_record = step in record_at
        if is_record:
            _save(ck_path, {"state": method.snapshot(state)})
        try:
            x, v, extra = method.evaluate(state, is_record)
            if is_record:
                rec = _metrics(sc, point, data, x, v, step)
                rec.update(step=step, t=method.t(step), position=_pad(to_numpy(x), n_store), **extra)
                if v is not None and sc.run.record_velocity:
                    rec["velocity"] = _pad(to_numpy(v), n_store)
                if point.method == "generator":
                    rec["velocity_rms"] = np.nan  # filled below from the drift step at these parameters
            if step == sc.run.steps:
                if is_record:
                    if point.method == "generator":  # no step follows: evaluate the drift without one
                        rec["loss"], rec["velocity_rms"] = gen_train.drift_loss(state, method.cfg)
                    store.write_record(r, record_at.index(step), rec)
                break
            result = method.advance(state, v)
            if point.method == "generator":
                state, loss = result
                if is_record:
                    rec["loss"] = loss
                    rec["velocity_rms"] = state.velocity_rms
            else:
                state = result
            if is_record:
                store.write_record(r, record_at.index(step), rec)
                bar.set_postfix_str(_postfix(point, rec), refresh=False)
        except particles.SimulationError as err:
            _save(ck_path, {"done": True, "error": str(err)})
            return str(err)
        step += 1
        bar.update(1)
    _save(ck_path, {"done": True})
    return None


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
    n_particles = max(p.init.n if p.method == "particles" else (sc.generator.eval_n or p.init.n) for p in points)
    ckdir = _ckpt_dir(path)
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
            attrs=_attrs(sc, data),
            record_velocity=sc.run.record_velocity,
            overwrite=True,
        )
    ckdir.mkdir(parents=True, exist_ok=True)
    failed = {}
    total = len(points) * sc.run.steps
    try:
        with tqdm(total=total, disable=not progress, unit="step", dynamic_ncols=True, file=sys.stderr) as bar:
            for r, point in enumerate(points):
                bar.set_description(point.label)
                err = _run_one(sc, point, r, store, data, xp, dtype, ckdir, bar)
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


def _attrs(sc: Scenario, data: _Data) -> dict:
    attrs = {
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
    if data.centres is not None:
        attrs["mode_centres"] = json.dumps(np.asarray(data.centres).tolist())
        attrs["target_mode_mass"] = json.dumps(np.asarray(data.target_mode_mass).tolist())
    return attrs


def run_scenario(sc: Scenario, out_dir, *, resume: bool = False, progress: bool = True) -> pathlib.Path:
    """Run every point of a scenario (no data sweeps) into ``out_dir/NAME.h5``."""
    points = expand(sc, allow_data_sweeps=False)
    return run_points(sc, points, output_path(sc, out_dir), resume=resume, progress=progress)
