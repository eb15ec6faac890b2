"""The amortized method: a one-step generator trained by drifting regression (:mod:`wgfsim.methods.generator`).

Each step regresses ``G(z)`` onto ``G(z) + eta v(G(z))`` on fresh latents
(Deng et al. 2026); records hold ``G`` on a fixed set of evaluation latents,
so they are comparable from record to record; ``t = step * drift_step``.
With ``fresh_target`` each step's target rows are drawn afresh from the
target's distribution (``Target.sample``, on the run's stream ``[seed, 3]``
with the latents); a ``from_file`` target has no distribution beyond its rows
and keeps sampling them.
"""

from __future__ import annotations

import dataclasses

from . import train as gen_train
from .mlp import MLPConfig
from .._common import field, rng

__all__ = ["GeneratorMethod"]


class GeneratorMethod:
    name = "generator"

    def __init__(self, sc, point, target, xp, dtype):
        spec = sc.generator
        if spec is None:
            raise ValueError(f"{sc.source}: generator: method 'generator' needs a [generator] table")
        self.sc, self.point, self.xp, self.dtype = sc, point, xp, dtype
        self.cfg = gen_train.TrainConfig(
            mlp=MLPConfig(out_dim=target.shape[1], latent_dim=spec.latent_dim, width=spec.width, depth=spec.depth,
                          activation=spec.activation, architecture=spec.architecture, init=spec.init),
            learning_rate=spec.learning_rate,
            inner_steps=spec.inner_steps,
            batch_size=spec.batch_size,
            drift_step=spec.drift_step,
            minibatch=sc.run.minibatch,
            lr_schedule=spec.lr_schedule,
            total_steps=sc.run.steps,
            ema_decay=spec.ema_decay,
            fresh_target=spec.fresh_target,
        )
        self.target_host = target
        # fresh rows need a distribution: every kind but from_file (whose rows are all it knows)
        self.sampler = point.target.build().sample if spec.fresh_target and point.target.kind != "from_file" else None
        self.n_points = spec.eval_n or point.init.n
        # a fixed evaluation latent set: records are comparable step to step
        self.z_eval = xp.asarray(rng(point.seed, 1).standard_normal((self.n_points, spec.latent_dim)), dtype=dtype)

    def init(self):
        return gen_train.init(self.cfg, self.target_host, field(self.point, self.sc.run.backend),
                              rng(self.point.seed, 3), xp=self.xp, dtype=self.dtype, sampler=self.sampler)

    def evaluate(self, state):
        return None  # the drift is evaluated inside each training step

    def record(self, state, v):
        return gen_train.samples(state, self.z_eval), None, {}

    def advance(self, state, v):
        state, loss = gen_train.step(state, self.cfg)
        return state, {"loss": loss, "velocity_rms": state.velocity_rms}

    def final(self, state):
        loss, rms = gen_train.drift_loss(state, self.cfg)  # no step follows: the drift without one
        return {"loss": loss, "velocity_rms": rms}

    def snapshot(self, state) -> dict:
        return gen_train.checkpoint(state)

    def restore(self, snap):
        return gen_train.restore(snap, self.cfg, self.target_host, field(self.point, self.sc.run.backend), xp=self.xp,
                                 sampler=self.sampler)

    def t(self, step: int) -> float:
        return step * self.cfg.drift_step

    def settings(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k != "mlp"}
        out.update(mlp=dataclasses.asdict(self.cfg.mlp), eval_n=self.n_points, init=self.point.init.kind)
        return out
