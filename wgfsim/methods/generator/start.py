"""One start for both methods: the generator fitted to ``[init]``, and particles drawn from the untrained generator.

Two ways to make the particle flow and the drifting generator start from the
same measure ``q_0``:

``[generator] start = "init"`` (:func:`fit_to_init`)
    before ``t = 0`` the network is fitted to the scenario's ``[init]``
    measure by **regression onto an optimal matching**: each fit step draws
    ``B`` latents ``z_i`` and ``B`` fresh init points ``y_j``, matches the
    generated ``x_i = G(z_i)`` to the ``y_j`` by the exact optimal assignment
    for ``|x - y|^2`` (a permutation ``s``: in 1-D by sorting both, in more
    dimensions by the network simplex of the ``w2_exact`` flow, whose field
    ``v(x_i) = y_{s(i)} - x_i`` is then the matching's displacement) and takes
    one Adam step on ``L = (1/B) sum_i |G(z_i) - y_{s(i)}|^2``.  This is the
    drifting regression (:mod:`.train`) with the exact W2 field towards the
    init measure and ``eta = 1``: the regression target is the matched init
    point itself, so each step asks the network for the whole transport, not
    an Euler fraction of it.  Why this one: the W2 field is the only field of
    the registry with no length scale, so it moves mass between distant modes
    (a kernel field would leave a 20/80 init at the untrained network's single
    blob, the very stall the study measures); the matching is a permutation
    of equal-size samples, so every init point is hit once per step and the
    mode masses of a batch are those of the init sample (exact for the
    stratified ``two_modes``).  The learning rate follows a cosine from
    ``learning_rate`` to 0 over ``start_steps`` to quiet the last steps'
    jitter; Adam's moments are then reset, so training starts as from a fresh
    initialisation, only at other parameters.
``[init] kind = "generator"`` (:func:`untrained_sample`)
    the particles are ``G_theta0(z)`` for the run's evaluation latents, with
    ``theta0`` the generator's seeded initialisation: the measure training
    starts from, point for point the generator's ``t = 0`` record when
    ``eval_n`` equals ``init.n``.

Random streams (seed ``s``, :mod:`wgfsim.runner`): the fit draws its latents
and init batches from ``[s, 5]`` and the quality's init sample from ``[s, 6]``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ...backend import array_namespace, to_numpy
from .adam import adam_init, adam_step
from .mlp import forward
from .train import GeneratorState, TrainConfig, loss_and_grads

__all__ = ["optimal_matching", "fit_to_init", "untrained_sample", "FIT_STREAM", "QUALITY_STREAM"]

FIT_STREAM = 5
QUALITY_STREAM = 6


def optimal_matching(x, y):
    """``y`` reordered so that row ``i`` is the point matched to ``x_i`` by the exact W2 assignment.

    ``x``, ``y``: (B, d), equal sizes; returns (B, d) on ``x``'s array module.
    1-D: the monotone rearrangement (sort both).  d > 1: the ``w2_exact``
    flow's plan (a permutation for equal uniform weights), read as
    ``x + v(x)``.
    """
    xp = array_namespace(x)
    if x.shape != y.shape:
        raise ValueError(f"x, y: expected equal shapes for a matching, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] == 1:
        xh, yh = to_numpy(x)[:, 0], to_numpy(y)[:, 0]
        out = np.empty_like(xh)
        out[np.argsort(xh, kind="stable")] = np.sort(yh, kind="stable")
        return xp.asarray(out[:, None], dtype=x.dtype)
    from ...flows import velocity

    return x + velocity("w2_exact", x, y, backend="numpy")


def fit_to_init(state: GeneratorState, cfg: TrainConfig, init_measure, rng: np.random.Generator,
                steps: int) -> GeneratorState:
    """Fit ``G`` to ``init_measure`` by regression onto an optimal matching; the state of ``t = 0``.

    Parameters
    ----------
    state : GeneratorState
        The seeded, untrained generator (:func:`wgfsim.methods.generator.init`).
    cfg : TrainConfig
        Its settings: ``batch_size`` points per fit step, ``learning_rate`` the
        cosine's start.
    init_measure : wgfsim.targets.Target
        The ``[init]`` distribution (``sample(n, rng)``).
    rng : numpy.random.Generator
        The fit's own stream (latents and init batches).
    steps : int
        Adam steps.

    Returns
    -------
    GeneratorState
        The state with the fitted parameters, fresh Adam moments, the moving
        average (if kept) equal to them, and ``step = 0``.
    """
    xp = array_namespace(state.target)
    dtype = state.target.dtype
    params, adam = state.params, adam_init(state.params)
    B, latent = cfg.batch_size, cfg.mlp.latent_dim
    for k in range(steps):
        z = xp.asarray(rng.standard_normal((B, latent)), dtype=dtype)  # (B, latent)
        y = xp.asarray(init_measure.sample(B, rng), dtype=dtype)  # (B, d)
        x, cache = forward(params, z, cfg.mlp)  # (B, d)
        matched = optimal_matching(x, y)  # (B, d): the regression target
        _, grads = loss_and_grads(params, z, matched, cfg.mlp, cache=cache)
        lr = cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * k / steps))
        params, adam = adam_step(params, grads, adam, lr)
    ema = dict(params) if state.ema is not None else None
    return dataclasses.replace(state, params=params, adam=adam_init(params), ema=ema, step=0)


def untrained_sample(spec: dict, dim: int, seed: int, n: int):
    """``G_theta0(z)`` (n, d), float64 host: the untrained generator of ``seed`` and the ``[generator]`` table ``spec``.

    The same parameters (stream ``[seed, 3]``, drawn first as in
    :func:`wgfsim.methods.generator.init`) and latents (stream ``[seed, 1]``,
    the generator's evaluation latents) as the generator method's ``t = 0``
    record, so the two coincide point for point (in float64) when ``eval_n == n``.
    """
    from .._common import rng
    from .mlp import MLPConfig, apply, init_params

    mlp = MLPConfig(out_dim=dim, **{f.name: spec[f.name] for f in dataclasses.fields(MLPConfig) if f.name != "out_dim"})
    params = init_params(mlp, rng(seed, 3))
    z = rng(seed, 1).standard_normal((n, mlp.latent_dim))  # (n, latent)
    return np.asarray(apply(params, z, mlp))
