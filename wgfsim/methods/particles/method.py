"""The particle method: Euler steps of the flow (:mod:`.engine`) behind the method protocol.

Built from its own settings (:class:`ParticleSettings`: the Euler step and
the target minibatch), which the runner translates from ``[run]`` with
:func:`settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import engine as particles
from ...backend import to_numpy
from ...io.snapshot import restore_field, rng_from, rng_state, sample_digest, save_field
from .._common import field, rng

__all__ = ["ParticlesMethod", "ParticleSettings", "settings"]


@dataclass(frozen=True)
class ParticleSettings:
    step_size: float  # eta of x <- x + eta v
    minibatch: int = 0  # 0: the whole target sample each step


def settings(run, spec, dim: int, init_n: int) -> ParticleSettings:
    """The runner's translation: ``[run]``'s step size and minibatch (the method has no table of its own)."""
    return ParticleSettings(step_size=run.step_size, minibatch=run.minibatch)


class ParticlesMethod:
    """``x_{k+1} = x_k + step_size * v[q_k, p](x_k)``; ``t = step * step_size``."""

    name = "particles"

    def __init__(self, settings: ParticleSettings, point, target, xp, dtype, backend: str, prune_tol=None):
        self.cfg, self.point, self.xp, self.dtype = settings, point, xp, dtype
        self.backend, self.prune_tol = backend, prune_tol
        self.target = xp.asarray(target, dtype=dtype)
        self.n_points = point.init.n

    def init(self):
        if self.point.init.kind == "generator":  # the untrained generator's samples (methods/generator/start.py)
            from ..generator.start import untrained_sample

            x0 = untrained_sample(self.point.init.options["generator"], self.target.shape[1], self.point.seed,
                                  self.point.init.n)
        else:
            x0 = self.point.init.build().sample(self.point.init.n, rng(self.point.seed, 1))
        return particles.init(self.xp.asarray(x0, dtype=self.dtype), field(self.point, self.backend, self.prune_tol),
                              rng(self.point.seed, 3))

    def evaluate(self, state):
        return particles.velocity(state, self.target, self.cfg.minibatch)

    def record(self, state, v):
        return state.x, v, {}

    def advance(self, state, v):
        return particles.advance(state, v, self.cfg.step_size), {}

    def final(self, state):
        return {}

    def _target_digest(self) -> str:
        """The digest of the target sample the run flows to (computed once): a checkpoint holds it."""
        if getattr(self, "_digest", None) is None:
            self._digest = sample_digest(self.target)
        return self._digest

    def snapshot(self, state) -> dict:
        ck = {"x": np.array(to_numpy(state.x)), "step": np.asarray(state.step, dtype=np.int64),
              "rng": rng_state(state.rng), "target_digest": np.asarray(self._target_digest())}
        save_field(state.field, ck)
        return ck

    def restore(self, snap):
        if "target_digest" in snap and str(snap["target_digest"]) != self._target_digest():
            from ...io.checkpoint import CheckpointError

            raise CheckpointError("the checkpoint was written for another target sample (the data changed since "
                                  "the run was stopped); start the run afresh with --overwrite")
        state = self.init()
        state.x = self.xp.asarray(np.asarray(snap["x"]), dtype=self.dtype)
        state.step = int(np.asarray(snap["step"]))
        state.rng = rng_from(snap["rng"])
        restore_field(state.field, snap, self.xp)
        return state

    def t(self, step: int) -> float:
        return step * self.cfg.step_size

    def settings(self) -> dict:
        return {"step_size": self.cfg.step_size, "minibatch": self.cfg.minibatch, "n": self.point.init.n,
                "init": self.point.init.kind}
