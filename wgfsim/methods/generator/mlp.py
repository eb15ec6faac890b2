"""Residual MLP generator ``x = G_theta(z)`` with a hand-written backward pass.

Written once against the array namespace of its inputs
(``xp = wgfsim.backend.array_namespace(z)``), so the same code runs on NumPy
and CuPy arrays; no deep-learning framework.

Architecture (pre-activation residual blocks, He et al. 2016 "Identity
mappings in deep residual networks", without normalisation)::

    h_0     = z W_in + b_in                                   (B, width)
    for k = 0 .. depth-1:
        u_k     = act(h_k)                                    (B, width)
        a_k     = u_k W1_k + b1_k                             (B, width)
        r_k     = act(a_k)                                    (B, width)
        h_{k+1} = h_k + r_k W2_k + b2_k                       (B, width)
    x       = act(h_depth) W_out + b_out                      (B, out_dim)

The identity path ``h_{k+1} = h_k + ...`` carries the gradient unchanged
through every block.  ``depth = 0`` is allowed; with ``activation =
"identity"`` it is the (factored) *linear* generator
``x = (z W_in + b_in) W_out + b_out``.

Parameters are a flat, ordered ``dict`` name -> array (``in.W``, ``in.b``,
``block{k}.W1``, ``block{k}.b1``, ``block{k}.W2``, ``block{k}.b2``,
``out.W``, ``out.b``) so Adam and checkpointing iterate over one mapping.
Weights are stored ``(fan_in, fan_out)`` (rows act on the batch from the
right, ``h @ W``).

Initialisation (seeded from a ``numpy.random.Generator``, drawn in float64 on
the host in the fixed parameter order, then moved to ``xp``/``dtype``, so the
same seed gives the same network on every backend):

- ``in.W ~ N(0, 1/latent_dim)``: LeCun, the input ``z ~ N(0, I)`` is not
  activated;
- ``block.W1, out.W ~ N(0, gain^2/width)``: He (``gain^2 = 2``) after
  ``relu``/``silu``/``gelu``, LeCun (``gain^2 = 1``) after ``tanh``/``identity``;
- ``block.W2 ~ N(0, gain^2/(width * depth))``: the extra ``1/depth`` keeps
  the residual stream's variance bounded, ``prod_k (1 + c/depth) <= e^c``,
  instead of growing geometrically with depth;
- all biases zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ...errors import OptionError

from ...backend import array_namespace

__all__ = ["MLPConfig", "ACTIVATIONS", "init_params", "param_names", "forward", "backward", "apply", "n_params"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _sigmoid(xp, x):
    # tanh form: no overflow for large |x| (1/(1+exp(-x)) overflows exp for x << 0)
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def _silu(xp, x):
    return x * _sigmoid(xp, x)


def _dsilu(xp, x):
    s = _sigmoid(xp, x)
    return s * (1.0 + x * (1.0 - s))


def _relu(xp, x):
    return x * xp.astype(x > 0, x.dtype)


def _drelu(xp, x):
    return xp.astype(x > 0, x.dtype)  # subgradient 0 at x == 0


def _tanh(xp, x):
    return xp.tanh(x)


def _dtanh(xp, x):
    t = xp.tanh(x)
    return 1.0 - t * t


def _gelu(xp, x):
    # tanh approximation (Hendrycks & Gimpel 2016): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    return 0.5 * x * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x)))


def _dgelu(xp, x):
    t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x * x)


def _identity(xp, x):
    return x


def _didentity(xp, x):
    return xp.ones_like(x)


@dataclass(frozen=True)
class Activation:
    """An activation ``f``, its derivative ``f'`` (both ``(xp, x) -> array``) and its init gain^2."""

    f: Callable[[Any, Any], Any]
    df: Callable[[Any, Any], Any]
    gain2: float


ACTIVATIONS: dict[str, Activation] = {
    "silu": Activation(_silu, _dsilu, 2.0),
    "relu": Activation(_relu, _drelu, 2.0),
    "tanh": Activation(_tanh, _dtanh, 1.0),
    "gelu": Activation(_gelu, _dgelu, 2.0),
    "identity": Activation(_identity, _didentity, 1.0),
}


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError("mlp", name, value, f"an integer >= {minimum}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class MLPConfig:
    """Shape of the residual MLP generator.

    Attributes
    ----------
    out_dim : int
        Data dimension ``d`` of the samples ``x`` (required).
    latent_dim : int
        Dimension of the latent ``z ~ N(0, I)``.
    width : int
        Width of the residual stream.
    depth : int
        Number of residual blocks (``>= 0``).
    activation : str
        One of ``silu``, ``relu``, ``tanh``, ``gelu`` (tanh approximation), ``identity``.
    """

    out_dim: int
    latent_dim: int = 16
    width: int = 256
    depth: int = 4
    activation: str = "silu"

    def __post_init__(self):
        _positive_int("out_dim", self.out_dim)
        _positive_int("latent_dim", self.latent_dim)
        _positive_int("width", self.width)
        _positive_int("depth", self.depth, minimum=0)
        if self.activation not in ACTIVATIONS:
            raise OptionError("mlp", "activation", self.activation, f"one of {tuple(ACTIVATIONS)}")


def param_names(cfg: MLPConfig) -> list[str]:
    """The parameter names in their fixed order (the order of initialisation and of Adam)."""
    names = ["in.W", "in.b"]
    for k in range(cfg.depth):
        names += [f"block{k}.W1", f"block{k}.b1", f"block{k}.W2", f"block{k}.b2"]
    return names + ["out.W", "out.b"]


def _shapes(cfg: MLPConfig) -> dict[str, tuple[int, ...]]:
    w, shapes = cfg.width, {"in.W": (cfg.latent_dim, cfg.width), "in.b": (cfg.width,)}
    for k in range(cfg.depth):
        shapes.update({f"block{k}.W1": (w, w), f"block{k}.b1": (w,), f"block{k}.W2": (w, w), f"block{k}.b2": (w,)})
    shapes.update({"out.W": (w, cfg.out_dim), "out.b": (cfg.out_dim,)})
    return shapes


def n_params(cfg: MLPConfig) -> int:
    """Total number of scalar parameters."""
    return sum(math.prod(s) for s in _shapes(cfg).values())


def init_params(cfg: MLPConfig, rng: np.random.Generator, xp=np, dtype=np.float64) -> dict:
    """Seeded initial parameters (see the module docstring for the scalings).

    Parameters
    ----------
    cfg : MLPConfig
    rng : numpy.random.Generator
        The only source of randomness; draws happen on the host in float64 in
        the order of :func:`param_names`.
    xp : array module
        Where the parameters live (``numpy`` or ``cupy``).
    dtype : dtype
        Parameter dtype (float64 for gradient checks, float32 on the GPU).

    Returns
    -------
    dict
        name -> array, ordered as :func:`param_names`.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    gain2 = ACTIVATIONS[cfg.activation].gain2
    std = {"in.W": math.sqrt(1.0 / cfg.latent_dim), "out.W": math.sqrt(gain2 / cfg.width)}
    for k in range(cfg.depth):
        std[f"block{k}.W1"] = math.sqrt(gain2 / cfg.width)
        std[f"block{k}.W2"] = math.sqrt(gain2 / (cfg.width * cfg.depth))
    params = {}
    for name, shape in _shapes(cfg).items():
        host = rng.standard_normal(shape) * std[name] if name in std else np.zeros(shape)  # biases start at 0
        params[name] = xp.asarray(host, dtype=dtype)
    return params


def forward(params: dict, z, cfg: MLPConfig):
    """Generator output and the activations the backward pass needs.

    Parameters
    ----------
    params : dict
        From :func:`init_params`.
    z : array (B, latent_dim)
    cfg : MLPConfig

    Returns
    -------
    x : array (B, out_dim)
    cache : dict
        ``z``, the residual stream ``h`` (depth + 1 arrays (B, width)) and the
        block pre-activations ``a`` (depth arrays (B, width)).
    """
    xp = array_namespace(z)
    act = ACTIVATIONS[cfg.activation]
    if z.ndim != 2 or z.shape[1] != cfg.latent_dim:
        raise ValueError(f"z: expected shape (batch, latent_dim={cfg.latent_dim}), got {tuple(z.shape)}")
    h = z @ params["in.W"] + params["in.b"]  # (B, W)
    hs, pre = [h], []
    for k in range(cfg.depth):
        a = act.f(xp, h) @ params[f"block{k}.W1"] + params[f"block{k}.b1"]  # (B, W)
        h = h + act.f(xp, a) @ params[f"block{k}.W2"] + params[f"block{k}.b2"]  # (B, W)
        pre.append(a)
        hs.append(h)
    x = act.f(xp, h) @ params["out.W"] + params["out.b"]  # (B, d)
    return x, {"z": z, "h": hs, "a": pre}


def backward(params: dict, cache: dict, grad_x, cfg: MLPConfig, *, with_z: bool = False) -> dict:
    """Reverse-mode gradients of a scalar loss given ``grad_x = dL/dx`` (B, out_dim).

    Returns a dict with the same keys and shapes as ``params`` holding
    ``dL/dtheta``; with ``with_z`` also ``"z"``: ``dL/dz`` (B, latent_dim).
    Activations are recomputed from the cached pre-activations (cheaper in
    memory than caching both).
    """
    xp = array_namespace(grad_x)
    act = ACTIVATIONS[cfg.activation]
    hs, pre = cache["h"], cache["a"]
    grads = {}
    h = hs[-1]
    grads["out.W"] = act.f(xp, h).T @ grad_x  # (W, d)
    grads["out.b"] = xp.sum(grad_x, axis=0)  # (d,)
    g_h = (grad_x @ params["out.W"].T) * act.df(xp, h)  # (B, W)  dL/dh_depth
    for k in reversed(range(cfg.depth)):
        h, a = hs[k], pre[k]
        # the residual add passes g_h to both h_k (identity) and the branch output
        grads[f"block{k}.W2"] = act.f(xp, a).T @ g_h  # (W, W)
        grads[f"block{k}.b2"] = xp.sum(g_h, axis=0)  # (W,)
        g_a = (g_h @ params[f"block{k}.W2"].T) * act.df(xp, a)  # (B, W)
        grads[f"block{k}.W1"] = act.f(xp, h).T @ g_a  # (W, W)
        grads[f"block{k}.b1"] = xp.sum(g_a, axis=0)  # (W,)
        g_h = g_h + (g_a @ params[f"block{k}.W1"].T) * act.df(xp, h)  # (B, W)
    grads["in.W"] = cache["z"].T @ g_h  # (latent, W)
    grads["in.b"] = xp.sum(g_h, axis=0)  # (W,)
    if with_z:
        grads["z"] = g_h @ params["in.W"].T  # (B, latent)
    return {name: grads[name] for name in (*params, "z") if name in grads}


def apply(params: dict, z, cfg: MLPConfig):
    """``x = G_theta(z)`` (B, out_dim) without keeping a cache."""
    return forward(params, z, cfg)[0]
