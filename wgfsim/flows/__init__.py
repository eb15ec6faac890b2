"""The velocity fields, one module each, registered by name (docs/math.md, one section each).

A flow is a frozen ``Params`` dataclass (its options, validated on
construction) and a function ``velocity(x, y, a, b, params, ctx) -> v`` written
against :mod:`wgfsim.primitives` and array-namespace arithmetic, plus
``energy(...) -> float`` for the true gradient flows.  ``Field`` binds a flow
to its options, a backend and a random generator, and keeps the state a flow
carries between calls (Sinkhorn's potentials for warm starts).

Public calls: :func:`velocity`, :func:`energy`, :func:`names`, :func:`get`,
:func:`make_params`, :class:`Field`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import primitives
from ..backend import array_namespace, resolve_backend
from ._registry import (GAP_LAWS, LIMITS, CarriedState, Context, Flow, ResourceError, _REGISTRY, check_call, get,
                        kernel_gap_decay, kernel_pairs, set_limits,
                        largest_bandwidth, make_params, names, options, register, sqrt_largest_epsilon,
                        transport_gap_decay)

__all__ = ["Flow", "Context", "CarriedState", "Field", "register", "get", "names", "make_params", "options", "velocity", "energy",
           "field_at", "largest_bandwidth", "sqrt_largest_epsilon", "kernel_gap_decay", "transport_gap_decay",
           "kernel_pairs", "GAP_LAWS", "LIMITS", "set_limits", "ResourceError"]


def _check_real(arr, argname):
    """The dtype rule of every input: float32 and float64 are kept, integers become float64, the rest is refused.

    float16 and longer floats are refused rather than cast (the kernels compute in
    float32 or float64, and the velocity keeps x's dtype); bool, complex, strings
    and objects are refused rather than coerced.
    """
    dt = np.dtype(arr.dtype)
    if dt.kind in "iu" or dt in (np.dtype(np.float32), np.dtype(np.float64)):
        return
    if dt.kind == "f":
        raise ValueError(
            f"{argname}: dtype {dt} is not supported (wgfsim computes in float32 or float64); "
            f"cast with {argname}.astype(numpy.float32) or numpy.float64"
        )
    raise ValueError(f"{argname}: expected real numbers (float32 or float64; integers are converted to float64), got dtype {dt}")


def _shape(arr):
    """The shape of an array or nested list without copying it (None where it has none)."""
    shape = getattr(arr, "shape", None)
    if shape is not None:
        return tuple(shape)
    try:
        return np.shape(arr) if isinstance(arr, (list, tuple)) else None
    except ValueError:  # ragged
        return None


def _as_points(arr, argname, dtype=None):
    xp = array_namespace(arr) if not isinstance(arr, (list, tuple)) else np
    arr = xp.asarray(arr)
    _check_real(arr, argname)
    if arr.ndim == 1:
        raise ValueError(f"{argname}: expected a 2-D array (points, dim), got 1-D shape {arr.shape}; use {argname}[:, None] for 1-D points")
    if arr.ndim != 2:
        raise ValueError(f"{argname}: expected a 2-D array (points, dim), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{argname}: expected at least one point, got an empty array")
    if not xp.isdtype(arr.dtype, "real floating"):
        arr = xp.astype(arr, xp.float64)
    if dtype is not None:
        arr = xp.astype(arr, dtype)
    if not bool(xp.all(xp.isfinite(arr))):
        raise ValueError(f"{argname}: contains NaN or inf")
    return arr


def _as_weights(w, n, argname, like):
    if w is None:
        return None
    xp = array_namespace(like)
    w = xp.asarray(w)
    _check_real(w, argname)
    w = xp.asarray(w, dtype=like.dtype)
    if w.shape != (n,):
        raise ValueError(f"{argname}: expected shape ({n},), got {tuple(w.shape)}")
    if not bool(xp.all(xp.isfinite(w))) or bool(xp.any(w < 0)):
        raise ValueError(f"{argname}: weights must be finite and non-negative")
    total = float(xp.sum(w))
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{argname}: weights must sum to 1, got {total:.8g}")
    return w


def _rng(rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng: expected a numpy.random.Generator or an int seed, got {type(rng).__name__}")


class Field:
    """A flow bound to its options: ``Field("sinkhorn", epsilon=0.01)(x, y)`` is its velocity.

    The bound field keeps the state a flow carries from call to call (Sinkhorn
    warm starts, :attr:`state`), so a particle loop holds one ``Field`` per run.
    ``params``: the flow's resolved ``Params`` (or a dict of options), instead
    of keyword options; ``prune_tol``: the block-sparse kernel's tolerance for
    this field's calls (None: :data:`wgfsim.primitives.DEFAULT_PRUNE_TOL`; 0:
    every pair).
    """

    def __init__(self, name: str, *, params=None, rng=None, backend: str = "auto", prune_tol=None, **options):
        self.flow = get(name)
        if params is not None and options:
            raise ValueError(f"{name}: give the options either as params= or as keywords, not both")
        if isinstance(params, self.flow.Params):
            self.params = params
        else:
            self.params = make_params(name, **(params or options))
        with primitives.pruning(prune_tol):  # validates it
            pass
        self.prune_tol = prune_tol
        self.ctx = Context(backend=backend, rng=_rng(rng))

    @property
    def name(self) -> str:
        return self.flow.name

    @property
    def state(self) -> CarriedState:
        """The carried state (string keys, plain data); the checkpoint saves and restores it."""
        return self.ctx.state

    def _prepare(self, x, y, a, b, rows: int | None = None):
        self._check_size(x, y, rows)  # from the shapes, before any copy or check allocates
        x = _as_points(x, "x")
        y = _as_points(y, "y", dtype=x.dtype)
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"x and y: dimensions differ (x has {x.shape[1]}, y has {y.shape[1]})")
        if (a is not None or b is not None) and not self.flow.weights:
            raise ValueError(f"{self.name}: does not take particle or target weights (a, b); pass uniform samples")
        a = _as_weights(a, x.shape[0], "a", x)
        b = _as_weights(b, y.shape[0], "b", x)
        backend = resolve_backend(self.ctx.backend, x, y)
        return x, y, a, b, backend

    def _check_size(self, x, y, rows=None) -> None:
        """Refuse a call beyond the available memory or the pair limit (:func:`~._registry.check_call`)."""
        sx, sy = _shape(x), _shape(y)
        if sx is None or sy is None or len(sx) != 2 or len(sy) != 2 or sx[1] != sy[1]:
            return  # _as_points names what is wrong with them
        dtype = getattr(x, "dtype", None)
        floating = dtype is not None and np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))
        itemsize = 4 if floating and np.dtype(dtype) == np.dtype(np.float32) else 8
        check_call(self.flow, max(int(sx[0]), rows or 0), int(sy[0]), int(sx[1]), self.params, itemsize,
                   converted=not floating)

    def __call__(self, x, y, a=None, b=None):
        """The velocity v(x) (N, d), same type and dtype as x.

        Refused before anything is allocated (:class:`~wgfsim.flows.ResourceError`) when the call would need
        more memory than is available or more point pairs than ``LIMITS["max_pairs"]``
        (the flow record's ``memory`` and ``pairs``).

        Raises :class:`~wgfsim.errors.NonFiniteError` (a ``ValueError``) when
        the field of these finite inputs is NaN or inf (an overflow), never
        returning it.
        """
        x, y, a, b, backend = self._prepare(x, y, a, b)
        ctx = dataclasses.replace(self.ctx, backend=backend)
        ctx.state = self.ctx.state  # share the carried state, not a copy
        with primitives.pruning(self.prune_tol):
            v = self.flow.velocity(x, y, a, b, self.params, ctx)
        xp = array_namespace(v)
        if not bool(xp.all(xp.isfinite(v))):
            raise _non_finite(self, "velocity", x, y, int(xp.sum(~xp.isfinite(v))), v.size)
        return v

    def energy(self, x, y, a=None, b=None) -> float:
        """The flow's own functional at (q, p); only for true gradient flows."""
        if self.flow.energy is None:
            raise ValueError(
                f"{self.name}: is not a Wasserstein gradient flow (Gretton et al. Prop. 3.2), so it has no energy; "
                f"flows with one: {[n for n in names() if _REGISTRY[n].energy is not None]}"
            )
        x, y, a, b, backend = self._prepare(x, y, a, b)
        ctx = Context(backend=backend, rng=self.ctx.rng, state=self.ctx.state)
        with np.errstate(over="ignore", invalid="ignore"), primitives.pruning(self.prune_tol):
            value = float(self.flow.energy(x, y, a, b, self.params, ctx))
        if not math.isfinite(value):
            raise _non_finite(self, "energy", x, y, 1, 1)
        return value


def _non_finite(f: Field, what: str, x, y, bad: int, total: int) -> Exception:
    from ..errors import NonFiniteError

    def biggest(arr) -> float:
        xp = array_namespace(arr)
        return float(xp.max(xp.abs(arr)))

    return NonFiniteError(
        f"{f.name}: the {what} is not finite ({bad} of {total} values NaN or inf) although the inputs are "
        f"(max |x| {biggest(x):.3g}, max |y| {biggest(y):.3g}, dtype {x.dtype}); the inputs or the options "
        f"({_shown_options(f.params)}) overflow the arithmetic: rescale the data or change the option"
    )


def _shown_options(params) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(params).items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool))


def velocity(name: str, x, y, *, a=None, b=None, rng=None, backend: str = "auto", prune_tol=None, **params):
    """Velocity of flow ``name`` at particles ``x`` (N, d) towards targets ``y`` (M, d).

    ``a`` (N,) and ``b`` (M,) are particle and target weights (default uniform);
    ``rng`` a ``numpy.random.Generator`` or an int seed (sliced directions,
    Monte-Carlo draws); ``prune_tol`` the block-sparse kernel's tolerance
    (None: the default 1e-12; 0: every pair); ``params`` the flow's options
    (see :func:`options`).
    Returns an array of x's shape, type and dtype.  One Euler step is
    ``x + eta * v``.
    """
    return Field(name, rng=rng, backend=backend, prune_tol=prune_tol, **params)(x, y, a, b)


def field_at(name: str, z, x, y, *, a=None, b=None, rng=None, backend: str = "auto", prune_tol=None, **params):
    """The field of flow ``name`` at points ``z`` (K, d), with the particles ``x`` (N, d) and targets ``y`` held fixed.

    ``z`` is a massless test point: it enters no normaliser of the particle
    system, so this is the field a new particle at ``z`` would feel.  For the
    kernel fields (``kl_kde``, ``mmd``) and the proxy (without
    ``exclude_self``) ``field_at(x, x, y) == velocity(x, y)``; for
    ``drift_da2`` it differs at the particles by the self mask.  Flows whose
    field depends on the particles only through a coupling (Sinkhorn, sliced,
    W2) have no such evaluation and raise ``ValueError``.
    """
    f = Field(name, rng=rng, backend=backend, prune_tol=prune_tol, **params)
    if f.flow.field_at is None:
        have = [n for n in names() if _REGISTRY[n].field_at is not None]
        raise ValueError(f"{name}: has no field at arbitrary points; flows with one: {have}")
    x, y, a, b, backend_ = f._prepare(x, y, a, b, rows=_shape(z)[0] if _shape(z) else None)
    z = _as_points(z, "z", dtype=x.dtype)
    if z.shape[1] != x.shape[1]:
        raise ValueError(f"z and x: dimensions differ (z has {z.shape[1]}, x has {x.shape[1]})")
    ctx = Context(backend=backend_, rng=f.ctx.rng, state=f.ctx.state)
    with primitives.pruning(f.prune_tol):
        return f.flow.field_at(z, x, y, a, b, f.params, ctx)


def energy(name: str, x, y, *, a=None, b=None, rng=None, backend: str = "auto", prune_tol=None, **params) -> float:
    """The functional that flow ``name`` descends, at (q, p), as a float.

    MMD^2 (``mmd``), S_eps (``sinkhorn``), SW_2^2 (``sliced``), W_2^2
    (``w2_exact``), KL(q_s || p_s) (``kl_kde_wgf``).  The other fields are not
    gradient flows and raise ``ValueError``.
    """
    return Field(name, rng=rng, backend=backend, prune_tol=prune_tol, **params).energy(x, y, a, b)


# registration: one import per flow module (each calls register)
from . import (  # noqa: E402,F401
    kl_kde,
    kl_kde_wgf,
    mmd,
    sinkhorn,
    sinkhorn_proxy,
    drift_da2,
    sliced,
    w2_exact,
    kale,
    drmmd,
)
