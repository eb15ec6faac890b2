"""The amortized method: a one-step generator trained by drifting regression (:mod:`wgfsim.methods.generator`).

Each step regresses ``G(z)`` onto ``G(z) + eta v(G(z))`` on fresh latents
(Deng et al. 2026); records hold ``G`` on a fixed set of evaluation latents,
so they are comparable from record to record; ``t = step * drift_step``.
With ``fresh_target`` each step's target rows are drawn afresh from the
target's distribution (``Target.sample``, on the run's stream ``[seed, 3]``
with the latents); a ``from_file`` target has no distribution beyond its rows
and keeps sampling them.
Each record taken before a step stores that step's ``fit_residual``
(:mod:`.residual`); with ``start = "init"`` the network is first fitted to
the ``[init]`` measure (:mod:`.start`) and the first record stores the fit's
``start_mmd2`` (MMD^2 to a fresh init sample; its mode masses are the
record's ``mode_mass``).

The method is built from its own settings (:class:`GeneratorSettings`: the
training configuration and ``eval_n``); the runner translates a scenario's
``[generator]`` table (:data:`GeneratorSpec`, derived from the generator's
own configs) and ``[run]`` into them with :func:`settings`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...errors import OptionError
from . import train as gen_train
from .mlp import MLPConfig, n_params
from .residual import fit_residual
from .._common import field, rng

STARTS = ("random", "init")

__all__ = ["GeneratorMethod", "GeneratorSettings", "GeneratorSpec", "check_option", "memory", "settings"]

# the options a scenario's [generator] table may give: the generator's own configs, less what the run sets
# (the data dimension, the minibatch, the schedule's length), plus eval_n, start and start_steps
_MLP_FIELDS = tuple(f for f in dataclasses.fields(MLPConfig) if f.name != "out_dim")
_TRAIN_FIELDS = tuple(f for f in dataclasses.fields(gen_train.TrainConfig)
                      if f.name not in ("mlp", "minibatch", "total_steps"))

GeneratorSpec = dataclasses.make_dataclass(
    "GeneratorSpec",
    [(f.name, f.type, dataclasses.field(default=f.default)) for f in _MLP_FIELDS + _TRAIN_FIELDS]
    + [("eval_n", "int | None", dataclasses.field(default=None)),
       ("start", "str", dataclasses.field(default="random")),
       ("start_steps", "int", dataclasses.field(default=2000))],
    frozen=True,
)
GeneratorSpec.__module__ = __name__
GeneratorSpec.__doc__ = """The ``[generator]`` table: the amortized one-step generator's settings.

Its fields are those of :class:`wgfsim.methods.generator.mlp.MLPConfig` (``latent_dim``,
``width``, ``depth``, ``activation``, ``architecture``, ``init``) and :class:`wgfsim.methods.generator.TrainConfig`
(``learning_rate``, ``inner_steps``, ``batch_size``, ``drift_step``,
``lr_schedule``, ``ema_decay``, ``fresh_target``), with their defaults, derived from them so the
two never drift apart; plus ``eval_n`` (samples drawn for metrics, default the
init's n), ``start`` (``"random"``: t = 0 is the seeded untrained network;
``"init"``: the network is first fitted to the ``[init]`` measure,
:mod:`wgfsim.methods.generator.start`) and ``start_steps`` (Adam steps of
that fit).  The run supplies the data dimension, the minibatch and the
schedule's length (``run.steps``).
"""


def check_option(key: str, value):
    """One ``[generator]`` option judged by the generator's own configs: the normalised value, or OptionError."""
    if key in ("eval_n", "start_steps"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError("generator", key, value, "a positive integer")
        return value
    if key == "start":
        if value not in STARTS:
            raise OptionError("generator", key, value, f"one of {', '.join(STARTS)}")
        return value
    if key in {f.name for f in _MLP_FIELDS}:
        MLPConfig(out_dim=1, **{key: value})
    else:
        gen_train.TrainConfig(mlp=MLPConfig(out_dim=1), total_steps=1, **{key: value})
    default = getattr(GeneratorSpec(), key)
    return float(value) if isinstance(default, float) else value


@dataclass(frozen=True)
class GeneratorSettings:
    """What the generator method needs: its training configuration and the evaluation sample size."""

    train: gen_train.TrainConfig
    eval_n: int
    start: str = "random"  # "init": fitted to the [init] measure before t = 0 (.start)
    start_steps: int = 2000
    record_steps: frozenset = frozenset()  # steps whose record precedes them: their fit residual is stored


def settings(run, spec, dim: int, init_n: int) -> GeneratorSettings:
    """The runner's translation: ``[run]`` (minibatch, steps) and the ``[generator]`` table -> settings."""
    if spec is None:
        raise OptionError("generator", "[generator]", None, "a [generator] table for the method 'generator'")
    # every field of the table goes to the config it came from (no list to keep in step with the configs)
    mlp = MLPConfig(out_dim=dim, **{f.name: getattr(spec, f.name) for f in _MLP_FIELDS})
    cfg = gen_train.TrainConfig(mlp=mlp, minibatch=run.minibatch, total_steps=run.steps,
                                **{f.name: getattr(spec, f.name) for f in _TRAIN_FIELDS})
    every = run.record_every
    return GeneratorSettings(train=cfg, eval_n=spec.eval_n or init_n, start=spec.start, start_steps=spec.start_steps,
                             record_steps=frozenset(range(0, run.steps, every)))


def memory(spec, d: int) -> dict:
    """Bytes of the network with its Adam moments and EMA (4 copies of the weights), one batch's activations,
    and the ``eval_n`` samples of a record (their latents, one layer's activations, the samples, their field)."""
    if spec is None:
        return {}
    g = spec
    weights = n_params(MLPConfig(out_dim=d, latent_dim=g.latent_dim, width=g.width, depth=g.depth,
                                 architecture=g.architecture))
    out = {"generator": 4.0 * 8 * weights + 4.0 * 8 * g.batch_size * g.width}
    if g.eval_n:  # the samples drawn at each record: latents, activations of one layer, samples and their field
        out["generator evaluation samples"] = 8.0 * g.eval_n * (g.latent_dim + g.width + 4 * d)
    return out


class GeneratorMethod:
    name = "generator"

    def __init__(self, settings: GeneratorSettings, point, target, xp, dtype, backend: str, prune_tol=None):
        self.point, self.xp, self.dtype, self.backend, self.prune_tol = point, xp, dtype, backend, prune_tol
        self.cfg = settings.train
        self.start, self.start_steps, self.record_steps = settings.start, settings.start_steps, settings.record_steps
        self.target_host = target
        self.n_points = settings.eval_n
        # fresh rows need a distribution: every kind but from_file (whose rows are all it knows)
        fresh = self.cfg.fresh_target and point.target.kind != "from_file"
        self.sampler = point.target.build().sample if fresh else None
        # a fixed evaluation latent set: records are comparable step to step
        self.z_eval = xp.asarray(rng(point.seed, 1).standard_normal((self.n_points, self.cfg.mlp.latent_dim)),
                                 dtype=dtype)

    def _field(self):
        return field(self.point, self.backend, self.prune_tol)

    def init(self):
        state = gen_train.init(self.cfg, self.target_host, self._field(), rng(self.point.seed, 3), xp=self.xp,
                               dtype=self.dtype, sampler=self.sampler)
        if self.start == "init":
            from .start import FIT_STREAM, fit_to_init

            state = fit_to_init(state, self.cfg, self.point.init.build(), rng(self.point.seed, FIT_STREAM),
                                self.start_steps)
        return state

    def _start_mmd2(self, x) -> float:
        """MMD^2 (the ``mmd2`` metric's kernel) between the fitted ``G(z_eval)`` and a fresh init sample."""
        from ... import metrics
        from .start import QUALITY_STREAM

        ref = self.point.init.build().sample(self.point.init.n, rng(self.point.seed, QUALITY_STREAM))
        return metrics.mmd2(x, ref, backend=self.backend)

    def evaluate(self, state):
        return None  # the drift is evaluated inside each training step

    def record(self, state, v):
        x = gen_train.samples(state, self.z_eval)
        extra = {"start_mmd2": self._start_mmd2(x)} if self.start == "init" and state.step == 0 else {}
        return x, None, extra

    def advance(self, state, v):
        old = state.params
        state, loss = gen_train.step(state, self.cfg)
        extra = {"loss": loss, "velocity_rms": state.velocity_rms}
        if state.step - 1 in self.record_steps:
            extra["fit_residual"] = fit_residual(old, state.params, self.cfg.mlp, self.cfg.drift_step, state.batch,
                                                 self.z_eval, self.point.flow, self.point.params, backend=self.backend)
        return state, extra

    def final(self, state):
        loss, rms = gen_train.drift_loss(state, self.cfg)  # no step follows: the drift without one
        return {"loss": loss, "velocity_rms": rms}

    def snapshot(self, state) -> dict:
        return gen_train.checkpoint(state)

    def restore(self, snap):
        return gen_train.restore(snap, self.cfg, self.target_host, self._field(), xp=self.xp, sampler=self.sampler)

    def t(self, step: int) -> float:
        return step * self.cfg.drift_step

    def settings(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k != "mlp"}
        out.update(mlp=dataclasses.asdict(self.cfg.mlp), eval_n=self.n_points, init=self.point.init.kind,
                   start=self.start, start_steps=self.start_steps)
        return out
