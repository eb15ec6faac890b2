"""MLP generator ``x = G_theta(z)`` (residual or plain) with a hand-written backward pass.

Written once against the array namespace of its inputs
(``xp = wgfsim.backend.array_namespace(z)``), so the same code runs on NumPy
and CuPy arrays; no deep-learning framework.

Two architectures (``MLPConfig.architecture``).

``"residual"``: pre-activation residual blocks (He et al. 2016 "Identity
mappings in deep residual networks"), without normalisation::

    h_0     = z W_in + b_in                                   (B, width)
    for k = 0 .. depth-1:
        u_k     = act(h_k)                                    (B, width)
        a_k     = u_k W1_k + b1_k                             (B, width)
        r_k     = act(a_k)                                    (B, width)
        h_{k+1} = h_k + r_k W2_k + b2_k                       (B, width)
    x       = act(h_depth) W_out + b_out                      (B, out_dim)

The identity path ``h_{k+1} = h_k + ...`` carries the gradient unchanged
through every block.  ``depth = 0`` is allowed (residual only); with ``activation =
"identity"`` it is the (factored) *linear* generator
``x = (z W_in + b_in) W_out + b_out``.

``"mlp"``: a plain MLP with ``depth >= 1`` hidden layers of ``width`` units,
the network of Deng et al.'s toy demo at ``depth = 3`` (latent 32, width 256:
32-256-256-256-2, 140,546 parameters)::

    h_0     = z W_in + b_in                                   (B, width)
    for k = 1 .. depth-1:
        h_k     = act(h_{k-1}) W_k + b_k                      (B, width)
    x       = act(h_{depth-1}) W_out + b_out                  (B, out_dim)

Both end in ``x = act(h_last) W_out + b_out``; the cache's ``h`` lists the
``h_k`` (the residual stream, or the plain layers' pre-activations).

Parameters are a flat, ordered ``dict`` name -> array (``in.W``, ``in.b``,
``block{k}.W1``, ``block{k}.b1``, ``block{k}.W2``, ``block{k}.b2`` or
``layer{k}.W``, ``layer{k}.b``, ``out.W``, ``out.b``) so Adam and
checkpointing iterate over one mapping.
Weights are stored ``(fan_in, fan_out)`` (rows act on the batch from the
right, ``h @ W``).

Initialisation (``MLPConfig.init``; seeded from a ``numpy.random.Generator``,
drawn in float64 on the host in the fixed parameter order, then moved to
``xp``/``dtype``, so the same seed gives the same network on every backend).
``"torch"``: PyTorch's default for ``nn.Linear`` (Kaiming-uniform with
``a = sqrt(5)``), every weight and bias ``~ U(-1/sqrt(fan_in), +1/sqrt(fan_in))``,
variance ``1/(3 fan_in)``; each SiLU layer then shrinks the output's spread,
so the untrained generator starts nearly collapsed (spread about 0.01 at the
demo's sizes, see the test).  ``"he"``:

- ``in.W ~ N(0, 1/latent_dim)``: LeCun, the input ``z ~ N(0, I)`` is not
  activated;
- ``block.W1, out.W ~ N(0, gain^2/width)``: He (``gain^2 = 2``) after
  ``relu``/``silu``/``gelu``, LeCun (``gain^2 = 1``) after ``tanh``/``identity``;
- ``block.W2 ~ N(0, gain^2/(width * depth))``: the extra ``1/depth`` keeps
  the residual stream's variance bounded, ``prod_k (1 + c/depth) <= e^c``,
  instead of growing geometrically with depth;
- ``layer{k}.W ~ N(0, gain^2/width)`` (He) in the plain MLP;
- all biases zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ...errors import OptionError

from ...backend import array_namespace

__all__ = ["MLPConfig", "ACTIVATIONS", "ARCHITECTURES", "INITS", "init_params", "param_names", "forward", "backward", "apply", "n_params"]

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


def _silu_both(xp, x):
    # one sigmoid for the value and the derivative: silu' = s + x s (1 - s) = s + f (1 - s)
    s = _sigmoid(xp, x)
    f = x * s
    return f, s + f * (1.0 - s)


def _relu(xp, x):
    return x * xp.astype(x > 0, x.dtype)


def _drelu(xp, x):
    return xp.astype(x > 0, x.dtype)  # subgradient 0 at x == 0


def _tanh(xp, x):
    return xp.tanh(x)


def _dtanh(xp, x):
    t = xp.tanh(x)
    return 1.0 - t * t


def _tanh_both(xp, x):
    t = xp.tanh(x)
    return t, 1.0 - t * t


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
    """An activation ``f``, its derivative ``f'`` (both ``(xp, x) -> array``) and its init gain^2.

    ``both(xp, x) -> (f(x), f'(x))`` shares the transcendental call of the
    two (one sigmoid for SiLU); the forward pass caches both, so the backward
    pass evaluates no activation again.
    """

    f: Callable[[Any, Any], Any]
    df: Callable[[Any, Any], Any]
    gain2: float
    both: Callable[[Any, Any], tuple] | None = None

    def value_and_derivative(self, xp, x) -> tuple:
        return self.both(xp, x) if self.both is not None else (self.f(xp, x), self.df(xp, x))


ARCHITECTURES = ("residual", "mlp")
INITS = ("he", "torch")

ACTIVATIONS: dict[str, Activation] = {
    "silu": Activation(_silu, _dsilu, 2.0, _silu_both),
    "relu": Activation(_relu, _drelu, 2.0),
    "tanh": Activation(_tanh, _dtanh, 1.0, _tanh_both),
    "gelu": Activation(_gelu, _dgelu, 2.0),
    "identity": Activation(_identity, _didentity, 1.0),
}


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError("mlp", name, value, f"an integer >= {minimum}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class MLPConfig:
    """Shape of the MLP generator.

    Attributes
    ----------
    out_dim : int
        Data dimension ``d`` of the samples ``x`` (required).
    latent_dim : int
        Dimension of the latent ``z ~ N(0, I)``.
    width : int
        Width of the residual stream (of every hidden layer for ``"mlp"``).
    depth : int
        Number of residual blocks (``>= 0``), or of hidden layers for ``"mlp"`` (``>= 1``).
    activation : str
        One of ``silu``, ``relu``, ``tanh``, ``gelu`` (tanh approximation), ``identity``.
    architecture : str
        ``"residual"`` (pre-activation residual blocks) or ``"mlp"`` (plain MLP).
    init : str
        ``"he"`` (normal, He/LeCun scaled, zero biases) or ``"torch"``
        (PyTorch's ``nn.Linear`` default, uniform ``+-1/sqrt(fan_in)`` for
        weights and biases).
    """

    out_dim: int
    latent_dim: int = 16
    width: int = 256
    depth: int = 3
    activation: str = "silu"
    # the defaults are measured (docs/results.md, "The generator at the demo's sizes"): the plain MLP
    # with torch's init reaches the two-sample noise floor where the residual net with He's init blurs
    architecture: str = "mlp"
    init: str = "torch"

    def __post_init__(self):
        _positive_int("out_dim", self.out_dim)
        _positive_int("latent_dim", self.latent_dim)
        _positive_int("width", self.width)
        if self.architecture not in ARCHITECTURES:
            raise OptionError("mlp", "architecture", self.architecture, f"one of {ARCHITECTURES}")
        _positive_int("depth", self.depth, minimum=1 if self.architecture == "mlp" else 0)
        if self.activation not in ACTIVATIONS:
            raise OptionError("mlp", "activation", self.activation, f"one of {tuple(ACTIVATIONS)}")
        if self.init not in INITS:
            raise OptionError("mlp", "init", self.init, f"one of {INITS}")


def param_names(cfg: MLPConfig) -> list[str]:
    """The parameter names in their fixed order (the order of initialisation and of Adam)."""
    return list(_shapes(cfg))


def _shapes(cfg: MLPConfig) -> dict[str, tuple[int, ...]]:
    w, shapes = cfg.width, {"in.W": (cfg.latent_dim, cfg.width), "in.b": (cfg.width,)}
    if cfg.architecture == "mlp":
        for k in range(1, cfg.depth):
            shapes.update({f"layer{k}.W": (w, w), f"layer{k}.b": (w,)})
    else:
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
    shapes = _shapes(cfg)
    if cfg.init == "torch":
        # nn.Linear.reset_parameters: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight and the bias
        params = {}
        for name, shape in shapes.items():
            layer, leaf = name.rsplit(".", 1)  # a bias (b, b1, b2) shares its weight's (W, W1, W2) fan-in
            bound = 1.0 / math.sqrt(shapes[f"{layer}.{leaf.replace('b', 'W')}"][0])
            params[name] = xp.asarray(rng.uniform(-bound, bound, size=shape), dtype=dtype)
        return params
    gain2 = ACTIVATIONS[cfg.activation].gain2
    std = {"in.W": math.sqrt(1.0 / cfg.latent_dim), "out.W": math.sqrt(gain2 / cfg.width)}
    for k in range(cfg.depth):
        std[f"block{k}.W1"] = math.sqrt(gain2 / cfg.width)
        std[f"block{k}.W2"] = math.sqrt(gain2 / (cfg.width * cfg.depth))
        std[f"layer{k}.W"] = math.sqrt(gain2 / cfg.width)
    params = {}
    for name, shape in shapes.items():
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
        ``z``, the residual stream ``h`` (depth + 1 arrays (B, width); the
        plain layers' pre-activations for ``"mlp"``), the block
        pre-activations ``a`` (depth arrays (B, width)), and for each of
        them the activation and its derivative (``fh``, ``dh``, ``fa``,
        ``da``), so that the backward pass evaluates no activation again.
    """
    xp = array_namespace(z)
    act = ACTIVATIONS[cfg.activation]
    if z.ndim != 2 or z.shape[1] != cfg.latent_dim:
        raise ValueError(f"z: expected shape (batch, latent_dim={cfg.latent_dim}), got {tuple(z.shape)}")
    h = z @ params["in.W"] + params["in.b"]  # (B, W)
    hs, pre, fh, dh, fa, da = [h], [], [], [], [], []
    u, du = act.value_and_derivative(xp, h)
    fh.append(u)
    dh.append(du)
    if cfg.architecture == "mlp":
        for k in range(1, cfg.depth):
            h = u @ params[f"layer{k}.W"] + params[f"layer{k}.b"]  # (B, W)
            u, du = act.value_and_derivative(xp, h)
            hs.append(h)
            fh.append(u)
            dh.append(du)
    for k in range(cfg.depth if cfg.architecture == "residual" else 0):
        a = u @ params[f"block{k}.W1"] + params[f"block{k}.b1"]  # (B, W)
        r, dr = act.value_and_derivative(xp, a)
        h = h + r @ params[f"block{k}.W2"] + params[f"block{k}.b2"]  # (B, W)
        u, du = act.value_and_derivative(xp, h)
        pre.append(a)
        fa.append(r)
        da.append(dr)
        hs.append(h)
        fh.append(u)
        dh.append(du)
    x = u @ params["out.W"] + params["out.b"]  # (B, d)
    return x, {"z": z, "h": hs, "a": pre, "fh": fh, "dh": dh, "fa": fa, "da": da}


def backward(params: dict, cache: dict, grad_x, cfg: MLPConfig, *, with_z: bool = False) -> dict:
    """Reverse-mode gradients of a scalar loss given ``grad_x = dL/dx`` (B, out_dim).

    Returns a dict with the same keys and shapes as ``params`` holding
    ``dL/dtheta``; with ``with_z`` also ``"z"``: ``dL/dz`` (B, latent_dim).
    Activations and their derivatives come from the cache of :func:`forward`.
    """
    xp = array_namespace(grad_x)
    fh, dh, fa, da = cache["fh"], cache["dh"], cache["fa"], cache["da"]
    grads = {}
    grads["out.W"] = fh[-1].T @ grad_x  # (W, d)
    grads["out.b"] = xp.sum(grad_x, axis=0)  # (d,)
    g_h = (grad_x @ params["out.W"].T) * dh[-1]  # (B, W)  dL/dh_last
    if cfg.architecture == "mlp":
        for k in reversed(range(1, cfg.depth)):
            grads[f"layer{k}.W"] = fh[k - 1].T @ g_h  # (W, W): the layer's input is act(h_{k-1})
            grads[f"layer{k}.b"] = xp.sum(g_h, axis=0)  # (W,)
            g_h = (g_h @ params[f"layer{k}.W"].T) * dh[k - 1]  # (B, W)  dL/dh_{k-1}
    for k in reversed(range(cfg.depth if cfg.architecture == "residual" else 0)):
        # the residual add passes g_h to both h_k (identity) and the branch output
        grads[f"block{k}.W2"] = fa[k].T @ g_h  # (W, W)
        grads[f"block{k}.b2"] = xp.sum(g_h, axis=0)  # (W,)
        g_a = (g_h @ params[f"block{k}.W2"].T) * da[k]  # (B, W)
        grads[f"block{k}.W1"] = fh[k].T @ g_a  # (W, W)
        grads[f"block{k}.b1"] = xp.sum(g_a, axis=0)  # (W,)
        g_h = g_h + (g_a @ params[f"block{k}.W1"].T) * dh[k]  # (B, W)
    grads["in.W"] = cache["z"].T @ g_h  # (latent, W)
    grads["in.b"] = xp.sum(g_h, axis=0)  # (W,)
    if with_z:
        grads["z"] = g_h @ params["in.W"].T  # (B, latent)
    return {name: grads[name] for name in (*params, "z") if name in grads}


def apply(params: dict, z, cfg: MLPConfig):
    """``x = G_theta(z)`` (B, out_dim) without keeping a cache."""
    return forward(params, z, cfg)[0]
