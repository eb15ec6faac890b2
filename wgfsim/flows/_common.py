"""Option validation and the pieces several flows share."""

from __future__ import annotations

import math

import numpy as np

from .. import errors
from ..errors import OptionError

from ..backend import array_namespace, to_numpy
from ..primitives import COSTS, dense

KERNELS = {
    # kernel -> (cost, temperature from the bandwidth): k = exp(l) with l = -c/eps
    "gaussian": ("sqeuclidean", lambda s: s * s),  # exp(-|x-y|^2 / (2 sigma^2))
    "laplace": ("euclidean", lambda h: h),  # exp(-|x-y| / h)
}


# The temperature eps that a flow hands to the primitive (cost units) stays in
# [1e-150, 1e150]: at eps >= 1e-150 the logits c/eps stay finite for every cost
# below 1e158 (points closer than ~1e79), and at eps <= 1e150 the reciprocal
# 1/eps is a normal float64 and the products that carry eps (Sinkhorn
# potentials eps * log n, drift_da2's T * mbar or T * mbar^2) stay finite.
# Outside it the primitive meets eps = 0 or inf, or rows whose every logit is
# -inf, so validation refuses such values (docs/math.md#primitive).
TEMPERATURE_RANGE = (1e-150, 1e150)
# A kernel bandwidth sigma enters as eps = sigma^2 (Gaussian) or eps = h (Laplace);
# one range for both kernels, so that switching kernel never invalidates a bandwidth.
BANDWIDTH_RANGE = (1e-75, 1e75)

# option name -> (lowest, highest, what the range protects), for every option read by
# positive_floats: bandwidth (kl_kde, kl_kde_wgf, mmd), epsilon (sinkhorn,
# sinkhorn_proxy), temperatures (drift_da2)
RANGES = {
    "bandwidth": (*BANDWIDTH_RANGE, "so that the kernel temperature sigma^2 stays in [1e-150, 1e150]"),
    "epsilon": (*TEMPERATURE_RANGE, "so that c/eps and 1/eps stay finite float64"),
    "temperatures": (*TEMPERATURE_RANGE, "so that c/T and 1/T stay finite float64"),
}


def positive_floats(flow: str, option: str, value, allow_median: bool = False, limits=None):
    """A positive float or a non-empty list of them -> tuple of floats (``"median"`` kept).

    Each value must lie in ``limits = (lowest, highest, why)``; by default the
    range of :data:`RANGES` for ``option`` (the temperatures the primitive can
    represent), else any positive finite float.
    """
    if allow_median and value == "median":
        return "median"
    lo, hi, why = limits if limits is not None else RANGES.get(option, (0.0, math.inf, ""))
    values = value if isinstance(value, (list, tuple)) else [value]
    if len(values) == 0:
        raise OptionError(flow, option, value, "a positive number or a non-empty list of them")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or v <= 0:
            expected = "a positive number, a list of them" + (', or "median"' if allow_median else "")
            raise OptionError(flow, option, value, expected)
        if not lo <= v <= hi:
            raise OptionError(flow, option, value, f"numbers in [{lo:g}, {hi:g}] ({why})")
        out.append(float(v))
    return tuple(out)


def one_of(flow: str, option: str, value, choices):
    if value not in choices:
        raise OptionError(flow, option, value, f"one of {tuple(choices)}")
    return value


def boolean(flow: str, option: str, value):
    """The one boolean rule (:func:`wgfsim.errors.boolean`)."""
    return errors.boolean(flow, option, value)


def positive_int(flow: str, option: str, value, maximum=None, why: str = ""):
    """A positive integer (at most ``maximum``): :func:`wgfsim.errors.number`."""
    return errors.number(flow, option, value, integer=True, minimum=1, maximum=maximum,
                         expected=None if maximum is not None else "a positive integer", why=why)


def cost_of(flow: str, value):
    return one_of(flow, "cost", value, COSTS)


def set_frozen(obj, **kwargs):
    """Assign normalised values in a frozen dataclass's ``__post_init__``."""
    for k, v in kwargs.items():
        object.__setattr__(obj, k, v)


def log_weights(w, n, like):
    """log of the weights (uniform ``-log n`` when ``w`` is None), shape (n,), x's dtype."""
    xp = array_namespace(like)
    if w is None:
        return xp.full((n,), -math.log(n), dtype=like.dtype)
    with np.errstate(divide="ignore"):
        return xp.log(w)


def weights(w, n, like):
    xp = array_namespace(like)
    return xp.full((n,), 1.0 / n, dtype=like.dtype) if w is None else w


def bandwidths(bw, x, y):
    """The bandwidths to sum over; ``"median"`` is the median heuristic on the pooled points."""
    if bw == "median":
        xp = array_namespace(x)
        pooled = to_numpy(xp.concat([x, y], axis=0))
        med = dense.median_distance(pooled)
        if med <= 0:
            raise ValueError("bandwidth='median': the particles and targets all coincide, so the median distance is 0")
        return (med,)
    return bw


def rms(v) -> float:
    xp = array_namespace(v)
    return float(xp.sqrt(xp.mean(xp.sum(v * v, axis=1))))
