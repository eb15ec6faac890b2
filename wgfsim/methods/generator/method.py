"""The amortized method: a one-step generator trained by drifting regression (:mod:`wgfsim.methods.generator`).

Each step regresses ``G(z)`` onto ``G(z) + eta v(G(z))`` on fresh latents
(Deng et al. 2026); records hold ``G`` on a fixed set of evaluation latents,
so they are comparable from record to record; ``t = step * drift_step``.
Each record taken before a step stores that step's ``fit_residual``
(:mod:`.residual`); with ``start = "init"`` the network is first fitted to
the ``[init]`` measure (:mod:`.start`) and the first record stores the fit's
``start_mmd2`` (MMD^2 to a fresh init sample; its mode masses are the
record's ``mode_mass``).
"""

from __future__ import annotations

import dataclasses

from . import train as gen_train
from .mlp import MLPConfig
from .residual import fit_residual
from .._common import field, rng

__all__ = ["GeneratorMethod"]


class GeneratorMethod:
    name = "generator"

    def __init__(self, sc, point, target, xp, dtype, *, start=None, n_points=None):
        spec = sc.generator
        if spec is None:
            raise ValueError(f"{sc.source}: generator: method 'generator' needs a [generator] table")
        self.sc, self.point, self.xp, self.dtype = sc, point, xp, dtype
        self.cfg = gen_train.TrainConfig(
            mlp=MLPConfig(out_dim=target.shape[1], latent_dim=spec.latent_dim, width=spec.width, depth=spec.depth,
                          activation=spec.activation),
            learning_rate=spec.learning_rate,
            inner_steps=spec.inner_steps,
            batch_size=spec.batch_size,
            drift_step=spec.drift_step,
            minibatch=sc.run.minibatch,
            lr_schedule=spec.lr_schedule,
            total_steps=sc.run.steps,
            ema_decay=spec.ema_decay,
        )
        self.target_host = target
        self.n_points = n_points or spec.eval_n or point.init.n
        self.start = spec.start if start is None else start
        self.start_steps = spec.start_steps
        # steps whose record is taken just before them: their advance() stores the step's fit residual
        every = sc.run.record_every
        self.record_steps = set(range(0, sc.run.steps, every))
        # a fixed evaluation latent set: records are comparable step to step
        self.z_eval = xp.asarray(rng(point.seed, 1).standard_normal((self.n_points, spec.latent_dim)), dtype=dtype)

    def init(self):
        state = gen_train.init(self.cfg, self.target_host, field(self.point, self.sc.run.backend),
                               rng(self.point.seed, 3), xp=self.xp, dtype=self.dtype)
        if self.start == "init":
            from .start import FIT_STREAM, fit_to_init

            state = fit_to_init(state, self.cfg, self._init_measure(), rng(self.point.seed, FIT_STREAM),
                                self.start_steps)
        return state

    def _init_measure(self):
        return self.point.init.build()  # the loader refuses start = "init" with [init] kind = "generator"

    def _start_mmd2(self, x) -> float:
        """MMD^2 (the ``mmd2`` metric's kernel) between the fitted ``G(z_eval)`` and a fresh init sample."""
        from ... import metrics
        from .start import QUALITY_STREAM

        ref = self._init_measure().sample(self.point.init.n, rng(self.point.seed, QUALITY_STREAM))
        return metrics.mmd2(x, ref, backend=self.sc.run.backend)

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
                                                 self.z_eval, self.point.flow, self.point.params,
                                                 backend=self.sc.run.backend)
        return state, extra

    def final(self, state):
        loss, rms = gen_train.drift_loss(state, self.cfg)  # no step follows: the drift without one
        return {"loss": loss, "velocity_rms": rms}

    def snapshot(self, state) -> dict:
        return gen_train.checkpoint(state)

    def restore(self, snap):
        return gen_train.restore(snap, self.cfg, self.target_host, field(self.point, self.sc.run.backend), xp=self.xp)

    def t(self, step: int) -> float:
        return step * self.cfg.drift_step

    def settings(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k != "mlp"}
        out.update(mlp=dataclasses.asdict(self.cfg.mlp), eval_n=self.n_points, init=self.point.init.kind,
                   start=self.start, start_steps=self.start_steps)
        return out
