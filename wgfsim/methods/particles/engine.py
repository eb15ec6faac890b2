"""The particle method: Euler steps of a McKean-Vlasov flow, as an ``init``/``step`` pair.

The particles ``x`` (N, d) follow ``dx/dt = v[q_t](x)``, where ``v`` depends on
their own empirical measure ``q_t``; one explicit Euler step is::

    x_{k+1} = x_k + step_size * v[q_k, p](x_k)

``p`` is the whole target sample by default, or a fresh minibatch of
``minibatch`` target rows each step.  The state is a small dataclass
(jax-md style): positions, step count, the run's RNG and the bound
:class:`wgfsim.flows.Field` (which carries e.g. Sinkhorn's warm-start
potentials).  A step whose velocity is not finite raises
:class:`SimulationError` before touching the positions, so the state and
everything recorded so far stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...backend import array_namespace
from ...flows import Field

__all__ = ["ParticleState", "SimulationError", "init", "step", "velocity", "advance", "target_batch"]


class SimulationError(RuntimeError):
    """A step produced NaN or inf; the message names the step, the flow and a hint."""


@dataclass
class ParticleState:
    x: object  # (N, d) positions, NumPy or CuPy
    step: int
    rng: np.random.Generator  # target minibatches
    field: Field
    velocity: object = None  # (N, d) the last step's velocity


def init(x0, field: Field, rng: np.random.Generator) -> ParticleState:
    """Start the particles at ``x0`` (N, d) under ``field``."""
    return ParticleState(x=x0, step=0, rng=rng, field=field)


def target_batch(target, minibatch: int, rng: np.random.Generator):
    """The whole target (``minibatch == 0``) or ``minibatch`` rows drawn without replacement."""
    if minibatch == 0 or minibatch >= target.shape[0]:
        return target
    xp = array_namespace(target)
    rows = rng.choice(target.shape[0], size=minibatch, replace=False)
    return xp.take(target, xp.asarray(rows), axis=0)


def velocity(state: ParticleState, target, minibatch: int = 0):
    """The field ``v[q_k, p](x_k)`` (N, d) at the current positions; raises on NaN/inf."""
    xp = array_namespace(state.x)
    y = target_batch(target, minibatch, state.rng)
    v = state.field(state.x, y)  # (N, d)
    if not bool(xp.all(xp.isfinite(v))):
        raise SimulationError(
            f"step {state.step}: flow {state.field.name!r} produced NaN or inf velocities; "
            "the step size may be too large for this flow, or the bandwidth/epsilon too small "
            'for float32 (try dtype = "float64")'
        )
    return v


def advance(state: ParticleState, v, step_size: float) -> ParticleState:
    """The Euler update ``x <- x + step_size * v`` with a velocity from :func:`velocity`."""
    xp = array_namespace(state.x)
    x = state.x + step_size * v
    if not bool(xp.all(xp.isfinite(x))):
        raise SimulationError(
            f"step {state.step}: flow {state.field.name!r} sent particles to inf (step size {step_size}); "
            "the step size is too large for this flow"
        )
    state.x = x
    state.velocity = v
    state.step += 1
    return state


def step(state: ParticleState, target, step_size: float, minibatch: int = 0) -> ParticleState:
    """One Euler step ``x <- x + step_size * v(x)``; returns the updated state."""
    return advance(state, velocity(state, target, minibatch), step_size)
