"""Drifting regression: train a one-step generator towards a flow's fixed point.

Deng et al.'s drifting models; Gretton et al. eq. 1 and 46.  Each outer step

1. draws latents ``z_i ~ N(0, I)``, ``i = 1..B`` (``B = batch_size``), and
   generates ``x_i = G_theta(z_i)``;
2. evaluates the flow's velocity ``v_i = v[q_theta, p](x_i)`` against the
   target (a fresh minibatch of ``minibatch`` target rows, or the whole target
   sample when ``minibatch = 0``; with ``fresh_target`` and a sampler, that
   many rows drawn afresh from the target distribution, as Deng et al.'s
   toy demo does) with one persistent
   :class:`wgfsim.Field`, so Sinkhorn warm-starts from the previous step's
   potentials;
3. freezes the drifted targets ``t_i = stopgrad(x_i + eta v_i)``
   (``eta = drift_step``, one Euler step of the particle flow) and takes
   ``inner_steps`` Adam steps on the regression loss::

       L(theta) = (1/B) sum_i |G_theta(z_i) - t_i|^2          (sum over dims, mean over batch)
       dL/dx_i  = (2/B) (x_i - t_i)

At the current parameters ``x_i - t_i = -eta v_i``, so ``L = eta^2 mean_i
|v_i|^2`` and ``dL/dtheta = -(2 eta / B) sum_i v_i . dx_i/dtheta``.  For a
gradient flow ``v_i = -(1/a_i) c dF/dx_i`` this is a scaled gradient of the
functional (Gretton et al. Prop. 2, eq. 47).  For the Gaussian MMD flow
(``v_i = -(N sigma^2/2) dMMD^2/dx_i`` with ``a_i = 1/N``, ``N = B``)::

    dL/dtheta = eta sigma^2 dMMD^2/dtheta        (summed over bandwidths: sum_s eta sigma_s^2 dMMD_s^2/dtheta)

The constant ``2`` of the squared norm cancels the ``1/2`` of the MMD
velocity and the ``1/B`` of the batch mean cancels ``1/a_i = B``.

The trainer follows the particle engine's (jax-md style) ``init``/``step``
pair over a small :class:`GeneratorState`; :func:`checkpoint` and
:func:`restore` let a killed run resume bit-identically on the CPU.
Randomness: latents, minibatch indices and fresh target draws come from the state's
``numpy.random.Generator`` (drawn on the host, then moved to the parameters'
array module), the flow's own randomness (sliced directions, Monte-Carlo
draws) from the ``Field``'s generator; both are checkpointed.

Shapes: target (M, d); z (B, latent_dim); x, v, t (B, d).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ...backend import array_namespace, to_numpy
from ...flows import Field
from ...errors import OptionError, number
from ...io.snapshot import dumps, loads, restore_field, rng_from, rng_state, save_field
from ...io.snapshot import sample_digest as _target_digest  # a module name: tests count its calls
from .adam import AdamState, adam_init, adam_step
from .mlp import MLPConfig, apply, backward, forward, init_params

__all__ = [
    "TrainConfig",
    "GeneratorState",
    "init",
    "step",
    "samples",
    "regression_loss",
    "drift_loss",
    "loss_and_grads",
    "checkpoint",
    "restore",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "wgfsim.generator/1"
LR_SCHEDULES = ("constant", "cosine")


def _check_number(name, value, *, positive=True, integer=False, allow_zero=False):
    """The one number rule (:func:`wgfsim.errors.number`) with the generator's wording."""
    kind = "integer" if integer else "number"
    qualifier = "non-negative " if allow_zero else "positive " if positive else ""
    number("generator", name, value, integer=integer, minimum=0 if positive else None,
           open_minimum=positive and not allow_zero, expected=f"a {qualifier}{kind}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Hyper-parameters of the drifting regression.

    Attributes
    ----------
    mlp : MLPConfig
        The generator's shape.
    learning_rate : float
        Adam step size.
    inner_steps : int
        Adam steps per drift evaluation (the drifted targets stay frozen).
    batch_size : int
        Latents ``B`` per outer step.
    drift_step : float
        ``eta`` in ``t = x + eta v`` (units of the flow's time).
    minibatch : int
        Target rows drawn afresh (without replacement) each step; ``0`` uses
        the whole target sample.
    lr_schedule : {"constant", "cosine"}
        ``"cosine"`` anneals the step size as ``lr_k = lr (1 + cos(pi k / K)) / 2``
        over ``K = total_steps`` outer steps (Loshchilov and Hutter 2017).
    total_steps : int
        ``K`` of the cosine schedule (the run's steps); unused when constant.
    fresh_target : bool
        Draw the step's target rows afresh from the target distribution
        (the ``sampler`` given to :func:`init`), ``minibatch`` of them (the
        target sample's size when ``minibatch = 0``), instead of taking them
        from the fixed target sample.  Without a sampler (a target read from
        a file) the rows keep coming from the sample.
    ema_decay : float
        ``beta`` in [0, 1) of an exponential moving average of the parameters,
        ``theta_ema <- beta theta_ema + (1 - beta) theta`` after each step;
        :func:`samples` then draws from the averaged generator.  ``0`` keeps
        no average.  Both the schedule and the average damp the jitter that
        fresh latents and a noisy drift leave in the parameters (with Adam
        and ``inner_steps = 1``, ``eta`` only rescales a gradient that Adam
        normalises, so it cannot damp it).
    """

    mlp: MLPConfig
    learning_rate: float = 1e-3
    inner_steps: int = 1
    batch_size: int = 256
    drift_step: float = 1.0
    minibatch: int = 0
    lr_schedule: str = "constant"
    total_steps: int = 0
    ema_decay: float = 0.0
    fresh_target: bool = False

    def __post_init__(self):
        if not isinstance(self.mlp, MLPConfig):
            raise ValueError(f"generator: option 'mlp' expected an MLPConfig, got {type(self.mlp).__name__}")
        _check_number("learning_rate", self.learning_rate)
        _check_number("inner_steps", self.inner_steps, integer=True)
        _check_number("batch_size", self.batch_size, integer=True)
        _check_number("drift_step", self.drift_step)
        _check_number("minibatch", self.minibatch, integer=True, allow_zero=True)
        if self.lr_schedule not in LR_SCHEDULES:
            raise OptionError("generator", "lr_schedule", self.lr_schedule, f"one of {', '.join(LR_SCHEDULES)}")
        _check_number("total_steps", self.total_steps, integer=True, allow_zero=True)
        if self.lr_schedule == "cosine" and self.total_steps == 0:
            raise OptionError("generator", "total_steps", 0, "a positive integer with lr_schedule = 'cosine'")
        _check_number("ema_decay", self.ema_decay, allow_zero=True)
        if not self.ema_decay < 1:
            raise OptionError("generator", "ema_decay", self.ema_decay, "a number in [0, 1) (0: no moving average)")
        if not isinstance(self.fresh_target, (bool, np.bool_)):
            raise OptionError("generator", "fresh_target", self.fresh_target, "true or false")

    def learning_rate_at(self, step: int) -> float:
        """The Adam step size of outer step ``step`` (0-based) under :attr:`lr_schedule`."""
        if self.lr_schedule == "cosine":
            return self.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
        return self.learning_rate


@dataclass(frozen=True)
class GeneratorState:
    """Everything a generator run carries from step to step.

    ``rng`` and ``field`` are stateful objects shared by successive states
    (they advance as the run goes); the arrays are never mutated in place.
    """

    params: dict  # name -> array, see mlp.param_names
    adam: AdamState
    rng: np.random.Generator  # latents and target minibatches
    field: Field  # the flow, with its warm-start state and own generator
    target: Any  # (M, d) on the parameters' array module and dtype
    mlp: MLPConfig
    step: int = 0
    velocity_rms: float = math.nan  # RMS of v over the last step's batch (for the store)
    ema: dict | None = None  # name -> array: the parameters' moving average (TrainConfig.ema_decay > 0)
    sampler: Any = None  # (n, rng) -> (n, d) host array: fresh target draws (TrainConfig.fresh_target)
    target_digest: str = ""  # digest of the target sample, computed once (checkpoints carry it)
    # the last step's arrays (z, x, y, x_target) for its fit residual (.residual); not checkpointed
    batch: dict | None = None


def regression_loss(x, x_target):
    """``L = (1/B) sum_i |x_i - t_i|^2`` (float) and ``dL/dx = (2/B)(x - t)`` (B, d)."""
    xp = array_namespace(x)
    diff = x - x_target  # (B, d)
    batch = x.shape[0]
    return float(xp.sum(diff * diff)) / batch, (2.0 / batch) * diff


def loss_and_grads(params: dict, z, x_target, mlp: MLPConfig, cache=None) -> tuple[float, dict]:
    """Regression loss of ``G_theta(z)`` against frozen targets and its parameter gradients.

    ``cache`` (from :func:`wgfsim.methods.generator.mlp.forward` at these ``params``
    and ``z``) saves one forward pass.
    """
    if cache is None:
        x, cache = forward(params, z, mlp)
    else:
        x = _output_from_cache(params, cache, mlp)
    loss, grad_x = regression_loss(x, x_target)
    return loss, backward(params, cache, grad_x, mlp)


def _output_from_cache(params, cache, mlp):
    return cache["fh"][-1] @ params["out.W"] + params["out.b"]  # (B, d): act(h_last) is cached


def init(cfg: TrainConfig, target_sample, field: Field, rng: np.random.Generator, xp=np, dtype=None,
         sampler=None) -> GeneratorState:
    """Initial state: seeded parameters, zero Adam moments, the target on ``xp``.

    Parameters
    ----------
    cfg : TrainConfig
    target_sample : array (M, d)
        The target samples ``y`` the flow pulls towards.
    field : wgfsim.Field
        The bound flow (its warm-start state persists over the run).
    rng : numpy.random.Generator
        Consumed first by the parameter initialisation, then by the latents
        and minibatches of every step.
    xp : array module
        ``numpy`` or ``cupy``: where parameters and samples live.
    dtype : dtype, optional
        Parameter dtype; default the target's floating dtype, else float64.
    sampler : callable, optional
        ``sampler(n, rng) -> (n, d)`` host array, e.g. ``Target.sample``: the
        target distribution the fresh rows of ``cfg.fresh_target`` come from
        (drawn from ``rng``, so a checkpoint's generator state resumes them).
    """
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg: expected a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(field, Field):
        raise ValueError(f"field: expected a wgfsim.Field, got {type(field).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if not hasattr(target_sample, "dtype"):
        target_sample = np.asarray(target_sample)
    if dtype is None:
        floating = np.issubdtype(np.dtype(str(target_sample.dtype)), np.floating)
        dtype = target_sample.dtype if floating else np.float64
    target = xp.asarray(target_sample, dtype=dtype)
    sampler = sampler if cfg.fresh_target else None
    if sampler is not None and not callable(sampler):
        raise ValueError(f"sampler: expected a callable (n, rng) -> (n, d), got {type(sampler).__name__}")
    _check_target(target, cfg, sampler)
    params = init_params(cfg.mlp, rng, xp=xp, dtype=dtype)
    ema = dict(params) if cfg.ema_decay > 0 else None  # arrays are never updated in place
    return GeneratorState(params=params, adam=adam_init(params), rng=rng, field=field, target=target, mlp=cfg.mlp,
                          ema=ema, sampler=sampler, target_digest=_target_digest(target))


def _check_target(target, cfg: TrainConfig, sampler=None):
    if target.ndim != 2 or target.shape[0] == 0:
        raise ValueError(f"target_sample: expected a non-empty 2-D array (samples, dim), got shape {tuple(target.shape)}")
    if target.shape[1] != cfg.mlp.out_dim:
        raise ValueError(f"target_sample: has dimension {target.shape[1]} but mlp.out_dim is {cfg.mlp.out_dim}")
    if sampler is None and cfg.minibatch > target.shape[0]:
        raise ValueError(f"generator: option 'minibatch' expected at most the {target.shape[0]} target samples, got {cfg.minibatch}")


def _target_batch(state: GeneratorState, cfg: TrainConfig):
    xp = array_namespace(state.target)
    if state.sampler is not None:
        m = cfg.minibatch or state.target.shape[0]
        return xp.asarray(state.sampler(m, state.rng), dtype=state.target.dtype)  # (m, d) fresh draws
    if cfg.minibatch == 0:
        return state.target
    idx = state.rng.choice(state.target.shape[0], size=cfg.minibatch, replace=False)  # (m,) host
    return xp.take(state.target, xp.asarray(idx), axis=0)  # (m, d)


def _drift(state: GeneratorState, cfg: TrainConfig):
    """Draw a latent batch, generate, evaluate the flow: ``(z, x, cache, t = x + eta v, RMS v)``."""
    xp = array_namespace(state.target)
    z = xp.asarray(state.rng.standard_normal((cfg.batch_size, cfg.mlp.latent_dim)), dtype=state.target.dtype)  # (B, latent)
    y = _target_batch(state, cfg)  # (M or m, d)
    x, cache = forward(state.params, z, cfg.mlp)  # (B, d)
    v = state.field(x, y)  # (B, d)
    x_target = x + cfg.drift_step * v  # (B, d) frozen: no gradient flows through v
    return z, x, cache, x_target, float(xp.sqrt(xp.mean(xp.sum(v * v, axis=1)))), y


def drift_loss(state: GeneratorState, cfg: TrainConfig) -> tuple[float, float]:
    """The loss a step would start from, ``L = eta^2 mean_i |v_i|^2``, and ``RMS v``, without a step.

    For the last record of a run, where no step follows.  It draws a latent
    batch (and minibatch) from the state's generator and updates the flow's
    warm start, as a step would; the parameters are untouched.
    """
    _, x, _, x_target, velocity_rms, _ = _drift(state, cfg)
    return regression_loss(x, x_target)[0], velocity_rms


def step(state: GeneratorState, cfg: TrainConfig) -> tuple[GeneratorState, float]:
    """One drift evaluation and ``inner_steps`` Adam steps on the frozen drifted targets.

    Returns the new state and the loss at the step's start,
    ``L = eta^2 mean_i |v_i|^2`` (the regression loss before any update, as
    Deng et al. report it).
    """
    if cfg.mlp != state.mlp:
        raise ValueError(f"cfg.mlp: differs from the generator's shape {state.mlp} (got {cfg.mlp})")
    z, x, cache, x_target, velocity_rms, y = _drift(state, cfg)
    params, adam = state.params, state.adam
    lr = cfg.learning_rate_at(state.step)
    loss0 = math.nan
    for inner in range(cfg.inner_steps):
        loss, grads = loss_and_grads(params, z, x_target, cfg.mlp, cache=cache if inner == 0 else None)
        if inner == 0:
            loss0 = loss
        params, adam = adam_step(params, grads, adam, lr)
    ema = state.ema
    if cfg.ema_decay > 0:
        beta = cfg.ema_decay
        ema = {k: beta * ema[k] + (1.0 - beta) * p for k, p in params.items()} if ema is not None else dict(params)
    new = dataclasses.replace(state, params=params, adam=adam, step=state.step + 1, velocity_rms=velocity_rms, ema=ema,
                              batch={"z": z, "x": x, "y": y, "x_target": x_target})
    return new, loss0


def samples(state: GeneratorState, z_eval):
    """Generator samples ``G_theta(z_eval)`` (n, d) for latents ``z_eval`` (n, latent_dim).

    ``theta`` is the moving average when the run keeps one, else the current parameters.
    """
    xp = array_namespace(state.target)
    z = xp.asarray(z_eval, dtype=state.target.dtype)  # (n, latent)
    return apply(state.params if state.ema is None else state.ema, z, state.mlp)


# ---------------------------------------------------------------- checkpoints


def _field_id(field: Field) -> str:
    return f"{field.name}:{field.params!r}"


def checkpoint(state: GeneratorState) -> dict:
    """A host snapshot of ``state``: flat dict of NumPy arrays plus JSON strings.

    Keys: ``params/NAME``, ``adam/m/NAME``, ``adam/v/NAME``, ``ema/NAME``
    (when the run keeps a moving average) (arrays),
    ``adam/t``, ``step`` (0-d int64), ``rng``, ``field_rng`` (bit-generator
    states), ``field_state`` (the flow's carried state, arrays under
    ``field/...``), ``meta`` (format, MLP shape, target digest, flow).  It
    can be saved with ``numpy.savez`` or into HDF5 and passed to
    :func:`restore` as loaded.
    """
    ck: dict[str, Any] = {}
    for name, p in state.params.items():
        ck[f"params/{name}"] = np.array(to_numpy(p))
        ck[f"adam/m/{name}"] = np.array(to_numpy(state.adam.m[name]))
        ck[f"adam/v/{name}"] = np.array(to_numpy(state.adam.v[name]))
        if state.ema is not None:
            ck[f"ema/{name}"] = np.array(to_numpy(state.ema[name]))
    ck["adam/t"] = np.asarray(state.adam.t, dtype=np.int64)
    ck["step"] = np.asarray(state.step, dtype=np.int64)
    ck["velocity_rms"] = np.asarray(state.velocity_rms, dtype=np.float64)
    ck["rng"] = rng_state(state.rng)
    save_field(state.field, ck)
    ck["meta"] = dumps(
        {
            "format": CHECKPOINT_FORMAT,
            "mlp": dataclasses.asdict(state.mlp),
            "param_names": list(state.params),
            "target": state.target_digest or _target_digest(state.target),
            "field": _field_id(state.field),
        }
    )
    return ck


def restore(ckpt: Mapping, cfg: TrainConfig, target_sample, field: Field, xp=np, sampler=None) -> GeneratorState:
    """Rebuild the state saved by :func:`checkpoint`; the next :func:`step` continues the run bit for bit.

    ``target_sample`` must be the run's target (checked by digest) and
    ``field`` a ``Field`` of the same flow and options (checked); its
    generator and carried state are overwritten with the saved ones.
    ``sampler`` as for :func:`init`.  Parameters keep their saved dtype.
    """
    meta = loads(ckpt["meta"])
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint: expected format {CHECKPOINT_FORMAT!r}, got {meta.get('format')!r}")
    if meta["mlp"] != dataclasses.asdict(cfg.mlp):
        raise ValueError(f"cfg.mlp: checkpoint was written for {meta['mlp']}, got {dataclasses.asdict(cfg.mlp)}")
    if meta["field"] != _field_id(field):
        raise ValueError(f"field: checkpoint was written for {meta['field']}, got {_field_id(field)}")
    params = {name: xp.asarray(np.asarray(ckpt[f"params/{name}"])) for name in meta["param_names"]}
    m = {name: xp.asarray(np.asarray(ckpt[f"adam/m/{name}"])) for name in meta["param_names"]}
    v = {name: xp.asarray(np.asarray(ckpt[f"adam/v/{name}"])) for name in meta["param_names"]}
    has_ema = all(f"ema/{name}" in ckpt for name in meta["param_names"])
    ema = {name: xp.asarray(np.asarray(ckpt[f"ema/{name}"])) for name in meta["param_names"]} if has_ema else None
    dtype = params["out.W"].dtype
    target = xp.asarray(target_sample, dtype=dtype)
    sampler = sampler if cfg.fresh_target else None
    _check_target(target, cfg, sampler)
    digest = _target_digest(target)
    if digest != meta["target"]:
        raise ValueError("target_sample: differs from the target the checkpointed run trained on")
    restore_field(field, ckpt, xp)
    return GeneratorState(
        params=params,
        adam=AdamState(m=m, v=v, t=int(np.asarray(ckpt["adam/t"]))),
        rng=rng_from(ckpt["rng"]),
        field=field,
        target=target,
        mlp=cfg.mlp,
        step=int(np.asarray(ckpt["step"])),
        velocity_rms=float(np.asarray(ckpt["velocity_rms"])),
        ema=ema,
        sampler=sampler,
        target_digest=digest,
    )
