"""Adam (Kingma & Ba 2015, Algorithm 1) on a dict of parameter arrays.

For each parameter ``theta`` with gradient ``g`` at step ``t = 1, 2, ...``::

    m_t     = beta1 m_{t-1} + (1 - beta1) g
    v_t     = beta2 v_{t-1} + (1 - beta2) g^2
    m_hat   = m_t / (1 - beta1^t)                 (bias correction)
    v_hat   = v_t / (1 - beta2^t)
    theta_t = theta_{t-1} - lr * m_hat / (sqrt(v_hat) + eps)

``eps`` is added to ``sqrt(v_hat)`` as in the paper's Algorithm 1 (and
PyTorch), not to ``sqrt(v_t)`` as in the paper's "efficient" variant.
Arithmetic uses the arrays' own namespace, so NumPy and CuPy parameters work
alike.  :func:`adam_step` returns new arrays and a new state; it never
mutates its inputs, so an old state stays a valid snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...backend import array_namespace

__all__ = ["AdamState", "adam_init", "adam_step"]


@dataclass(frozen=True)
class AdamState:
    """First and second moment estimates (same keys and shapes as the parameters) and the step count ``t``."""

    m: dict
    v: dict
    t: int = 0


def adam_init(params: dict) -> AdamState:
    """Zero moments for every parameter, ``t = 0``."""
    m = {k: array_namespace(p).zeros_like(p) for k, p in params.items()}
    v = {k: array_namespace(p).zeros_like(p) for k, p in params.items()}
    return AdamState(m=m, v=v, t=0)


def adam_step(
    params: dict,
    grads: dict,
    state: AdamState,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[dict, AdamState]:
    """One Adam update of every parameter; returns ``(new_params, new_state)``.

    Parameters
    ----------
    params, grads : dict
        name -> array; ``grads`` must hold every key of ``params``.
    state : AdamState
    lr : float
        Step size ``alpha``.
    betas : (float, float)
        Decay rates ``(beta1, beta2)`` in [0, 1).
    eps : float
        Added to ``sqrt(v_hat)``.
    """
    b1, b2 = betas
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"adam: betas expected two numbers in [0, 1), got {betas!r}")
    missing = set(params) - set(grads)
    if missing:
        raise ValueError(f"adam: gradients missing for parameters {sorted(missing)}")
    t = state.t + 1
    c1, c2 = 1.0 - b1**t, 1.0 - b2**t  # bias corrections
    new_params, new_m, new_v = {}, {}, {}
    for k, p in params.items():
        xp = array_namespace(p)
        g = grads[k]
        m = b1 * state.m[k] + (1.0 - b1) * g
        v = b2 * state.v[k] + (1.0 - b2) * (g * g)
        new_params[k] = p - lr * (m / c1) / (xp.sqrt(v / c2) + eps)
        new_m[k], new_v[k] = m, v
    return new_params, AdamState(m=new_m, v=new_v, t=t)
