"""Amortized method: a one-step generator trained by drifting regression.

``mlp``
    MLP ``x = G_theta(z)`` (plain, the default, or residual) with a manual backward pass, on the array
    namespace of its inputs (NumPy or CuPy);
``adam``
    Adam with bias correction on a dict of parameters;
``train``
    Deng et al.'s drifting regression (Gretton et al. eq. 1 and 46) as an
    ``init``/``step`` pair over a :class:`GeneratorState`, with
    bit-identical :func:`checkpoint` / :func:`restore`.

Typical use::

    from wgfsim import Field
    from wgfsim.methods.generator import MLPConfig, TrainConfig, init, step, samples

    cfg = TrainConfig(mlp=MLPConfig(out_dim=2), learning_rate=1e-3)
    state = init(cfg, y, Field("sinkhorn", epsilon=0.05), np.random.default_rng(0))
    for _ in range(1000):
        state, loss = step(state, cfg)
    x = samples(state, np.random.default_rng(1).standard_normal((4096, cfg.mlp.latent_dim)))
"""

from .adam import AdamState, adam_init, adam_step
from .method import GeneratorMethod
from .mlp import ACTIVATIONS, MLPConfig, apply, backward, forward, init_params, n_params, param_names
from .train import (
    GeneratorState,
    TrainConfig,
    checkpoint,
    init,
    loss_and_grads,
    drift_loss,
    regression_loss,
    restore,
    samples,
    step,
)

__all__ = [
    "GeneratorMethod",
    "ACTIVATIONS",
    "MLPConfig",
    "init_params",
    "param_names",
    "n_params",
    "forward",
    "backward",
    "apply",
    "AdamState",
    "adam_init",
    "adam_step",
    "TrainConfig",
    "GeneratorState",
    "init",
    "step",
    "samples",
    "drift_loss",
    "regression_loss",
    "loss_and_grads",
    "checkpoint",
    "restore",
]
