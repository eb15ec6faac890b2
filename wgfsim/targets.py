"""Distributions to sample targets and initial particles from, registered by kind.

Every kind is a small :class:`Target` built by :func:`make` from validated
options; sampling takes an explicit ``numpy.random.Generator`` (never global
state) and returns float64 points of shape ``(n, dim)``.  Kinds with modes
know their centres (``Target.centres``, shape ``(K, dim)``), which the
``mode_mass`` metric uses to assign each particle to its nearest mode.

Kinds (options and defaults: :func:`options`):

``gaussian``
    ``N(mean, cov)``; or ``N(mean, std^2 I)`` in ``dim`` dimensions.
``two_modes``
    ``w0 N(-s/2 e1, std^2 I) + w1 N(+s/2 e1, std^2 I)`` with ``s = separation``;
    ``std = 0`` gives exact atoms (Gretton et al. Section 3.3).
``mixture``
    isotropic Gaussian mixture ``sum_k w_k N(c_k, std^2 I)``.
``moons``, ``eight_gaussians``, ``checkerboard``, ``spiral``, ``rings``
    the 2-D toys of FFJORD's ``lib/toy_data.py`` (Grathwohl et al. 2019), the
    benchmark sets of the drifting and flow-matching literature, at their
    published scale (support within about ``[-4, 4]^2``) times ``scale``.
``swiss_roll``
    the 2-D swiss roll of Deng et al.'s toy demo: ``t = pi/2 + 4 pi u``,
    ``u ~ U(0, 1)``, the point ``(t cos t, t sin t) / (9 pi / 2)`` (inside
    ``[-1, 1]^2``) plus Gaussian jitter (std 0.03), times ``scale``.
``from_file``
    rows of a 2-D array in an ``.npy`` or HDF5 file.

The module holds every kind with its own validation in one registry (about
40-80 lines a kind, plus the header checks of ``from_file``); that is why it
is longer than the other modules.

Mode counts of ``two_modes`` and ``mixture`` are exact by default
(``stratify = true``): with ``n`` points, mode ``k`` gets ``n w_k`` points
rounded by largest remainder (for two modes, ``floor(w0 n + 1/2)`` on the
first), so mode masses at ``t = 0`` equal the weights up to ``1/n``; positions
within a mode are i.i.d.  ``stratify = false`` draws the labels i.i.d.
(multinomial counts).

Public calls: :func:`names`, :func:`options`, :func:`option_ranks`,
:func:`summary`, :func:`make`, :class:`Target`, :class:`TargetError`.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import OptionError, show_value  # noqa: F401  (re-exported: target and scenario messages read alike)

__all__ = ["Target", "TargetError", "names", "options", "option_ranks", "summary", "make"]


class TargetError(OptionError):
    """A bad target option: ``str(err)`` is ``"<kind>: <option>: <what>; expected <what>"``.

    An :class:`~wgfsim.errors.OptionError` (``owner`` the kind, ``key`` the
    option, ``expected``), with the parts kept (``kind``, ``option``, ``what``,
    ``hint``) so that :mod:`wgfsim.scenario` can restate the error with the
    scenario file and key path (``target.separation``).
    """

    def __init__(self, kind: str, option: str | None, what: str, expected: str | None = None, hint: str | None = None,
                 value=None):
        self.kind, self.option, self.what = kind, option, what
        self.owner, self.key, self.value, self.expected, self.hint = kind, option or "", value, expected, hint
        where = f"{kind}: {option}" if option else kind
        msg = f"{where}: {what}"
        if expected:
            msg += f"; expected {expected}"
        if hint:
            msg += f"; did you mean {hint!r}?"
        ValueError.__init__(self, msg)


# ---------------------------------------------------------------- targets


@dataclass(frozen=True, eq=False)
class Target:
    """A distribution with a sampler.

    Attributes
    ----------
    kind : str
        The registry name.
    dim : int
        Dimension ``d`` of the samples.
    centres : numpy.ndarray or None
        Mode centres ``(K, d)`` where the distribution has modes, else None.
    mode_names : list of str
        One name per centre (empty when ``centres`` is None).
    max_n : int or None
        The largest ``n`` :meth:`sample` accepts (``from_file`` without
        replacement); None when unlimited.
    """

    kind: str
    dim: int
    draw: Callable[[int, np.random.Generator], np.ndarray] = field(repr=False)
    centres: np.ndarray | None = field(default=None, repr=False)
    mode_labels: tuple[str, ...] = ()
    max_n: int | None = None

    @property
    def mode_names(self) -> list[str]:
        """One name per mode centre (empty when there are none)."""
        return list(self.mode_labels)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points ``(n, dim)`` float64, drawn from ``rng`` only.

        Parameters
        ----------
        n : int
            Number of points, ``n >= 1``.
        rng : numpy.random.Generator
            The only source of randomness; the same generator state gives the
            same points.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{self.kind}: sample: n expected a positive integer, got {n!r}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                f"{self.kind}: sample: rng expected a numpy.random.Generator (np.random.default_rng(seed)), "
                f"got {type(rng).__name__}"
            )
        if self.max_n is not None and n > self.max_n:
            raise ValueError(f"{self.kind}: sample: n = {n} exceeds the {self.max_n} rows available without replacement")
        x = self.draw(int(n), rng)  # (n, d)
        return np.ascontiguousarray(x, dtype=np.float64)


# ---------------------------------------------------------------- option checks
# Each returns the normalised value or raises TargetError naming the option.


def _is_number(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))


# Lengths (separation, std, scale, noise, centres, means) stay within 1e75: squared distances between the
# samples then stay within 1e150, the kernel temperatures the primitive represents (a median bandwidth or a
# Sinkhorn epsilon of the data's scale), so a target is refused by the option that made it, not later
# through a derived eps the user never wrote.
LENGTH_LIMIT = 1e75
_LENGTH_WHY = "so that squared distances between samples stay within 1e150, the kernels' range"


def _real(kind, option, value, *, minimum=0.0, strict=True) -> float:
    """A finite number ``> minimum`` (``>=`` when not strict) and at most :data:`LENGTH_LIMIT`."""
    relation = ">" if strict else ">="
    expected = f"a finite number {relation} {minimum:g}"
    if not _is_number(value) or not math.isfinite(value):
        raise TargetError(kind, option, f"got {show_value(value)}", expected)
    if (value <= minimum) if strict else (value < minimum):
        raise TargetError(kind, option, f"got {value!r}", expected)
    if value > LENGTH_LIMIT:
        raise TargetError(kind, option, f"got {value!r}", f"at most {LENGTH_LIMIT:g} ({_LENGTH_WHY})")
    return float(value)


def _integer(kind, option, value, *, minimum=1) -> int:
    expected = f"an integer >= {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TargetError(kind, option, f"got {show_value(value)}", expected)
    if value < minimum:
        raise TargetError(kind, option, f"got {value!r}", expected)
    return int(value)


def _boolean(kind, option, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TargetError(kind, option, f"got {show_value(value)}", "true or false")
    return bool(value)


def _string(kind, option, value) -> str:
    if not isinstance(value, str) or not value:
        raise TargetError(kind, option, f"got {show_value(value)}", "a non-empty string")
    return value


def _array(kind, option, value, ndim, what) -> np.ndarray:
    """A finite float64 array of ``ndim`` dimensions from (nested) lists."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TargetError(kind, option, f"got {show_value(value)}", what) from None
    if arr.ndim != ndim or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise TargetError(kind, option, f"got {show_value(value)}", what)
    if float(np.abs(arr).max()) > LENGTH_LIMIT:
        raise TargetError(kind, option, f"a value of magnitude {float(np.abs(arr).max()):.3g}",
                          f"values of magnitude at most {LENGTH_LIMIT:g} ({_LENGTH_WHY})")
    return arr


def _weights(kind, option, value, k: int) -> np.ndarray:
    expected = f"{k} non-negative numbers summing to 1"
    w = _array(kind, option, value, 1, expected)
    if w.shape[0] != k:
        raise TargetError(kind, option, f"got {w.shape[0]} weights for {k} modes", expected)
    if np.any(w < 0):
        raise TargetError(kind, option, f"got a negative weight in {show_value(value)}", expected)
    total = float(w.sum())
    if abs(total - 1.0) > 1e-6:
        raise TargetError(kind, option, f"weights sum to {total:.6g}", expected)
    return w / total  # remove the rounding of the file's decimals


def _exact_counts(w: np.ndarray, n: int) -> np.ndarray:
    """Largest-remainder rounding of ``n w`` (K,) to integers summing to ``n``; ties go to the lower index."""
    raw = w * n  # (K,)
    counts = np.floor(raw + 1e-9).astype(np.int64)  # 1e-9: 0.3 * 1000 must count as 300, not 299.99...
    rest = raw - counts
    deficit = n - int(counts.sum())
    order = np.argsort(-rest, kind="stable")
    if deficit > 0:
        counts[order[:deficit]] += 1
    elif deficit < 0:
        counts[order[::-1][:-deficit]] -= 1
    return counts


def _mixture_draw(centres: np.ndarray, w: np.ndarray, std: float, stratify: bool):
    """Sampler for ``sum_k w_k N(c_k, std^2 I)``; rows come in random order."""
    k, d = centres.shape

    def draw(n: int, rng: np.random.Generator) -> np.ndarray:
        counts = _exact_counts(w, n) if stratify else rng.multinomial(n, w)  # (K,)
        labels = rng.permutation(np.repeat(np.arange(k), counts))  # (n,)
        x = centres[labels]  # (n, d), a copy
        if std > 0:
            x = x + std * rng.standard_normal((n, d))
        return x

    return draw


# ---------------------------------------------------------------- kinds


@dataclass(frozen=True)
class _Option:
    default: Any
    rank: int  # 0: a scalar, string or bool; 1: a vector; 2: a matrix (a scenario list one deeper is a sweep)
    doc: str


@dataclass(frozen=True)
class _Kind:
    name: str
    build: Callable[[dict, frozenset, str], Target]  # (options with defaults, given option names, base_dir)
    options: dict[str, _Option]
    summary: str


_KINDS: dict[str, _Kind] = {}


def _register(name: str, summary: str, options_: dict[str, _Option]):
    def deco(build):
        _KINDS[name] = _Kind(name, build, options_, summary)
        return build

    return deco


@_register(
    "gaussian",
    "Gaussian N(mean, cov), or N(mean, std^2 I) in dim dimensions",
    {
        "mean": _Option(None, 1, "mean vector (default zeros)"),
        "cov": _Option(None, 2, "covariance matrix (symmetric positive semi-definite)"),
        "dim": _Option(2, 0, "dimension when neither mean nor cov gives it"),
        "std": _Option(1.0, 0, "isotropic standard deviation when cov is not given"),
    },
)
def _gaussian(opts: dict, given: frozenset, base_dir: str) -> Target:
    kind = "gaussian"
    dims = {}
    mean = cov = None
    if opts["mean"] is not None:
        mean = _array(kind, "mean", opts["mean"], 1, "a list of numbers")
        dims["mean"] = mean.shape[0]
    if opts["cov"] is not None:
        cov = _array(kind, "cov", opts["cov"], 2, "a square matrix (a list of equal-length lists of numbers)")
        if cov.shape[0] != cov.shape[1]:
            raise TargetError(kind, "cov", f"got shape {cov.shape}", "a square matrix")
        dims["cov"] = cov.shape[0]
        if "std" in given:
            raise TargetError(kind, "std", "given together with cov", "either cov or std, not both")
    if "dim" in given:
        dims["dim"] = _integer(kind, "dim", opts["dim"])
    if len(set(dims.values())) > 1:
        second = list(dims)[1]
        raise TargetError(kind, second, f"dimensions disagree ({dims})", "mean, cov and dim of one dimension")
    d = next(iter(dims.values())) if dims else _integer(kind, "dim", opts["dim"])
    mean = np.zeros(d) if mean is None else mean
    if cov is None:
        std = _real(kind, "std", opts["std"], strict=False)
        factor = std * np.eye(d)  # (d, d)
    else:
        scale = max(float(np.abs(cov).max()), 1e-300)
        if not np.allclose(cov, cov.T, rtol=0, atol=1e-10 * scale):
            raise TargetError(kind, "cov", "the matrix is not symmetric", "a symmetric positive semi-definite matrix")
        evals, evecs = np.linalg.eigh(cov)
        if evals.min() < -1e-10 * scale:
            raise TargetError(
                kind, "cov", f"has a negative eigenvalue {evals.min():.3g}", "a symmetric positive semi-definite matrix"
            )
        factor = evecs * np.sqrt(np.clip(evals, 0.0, None))  # (d, d), factor @ factor.T == cov (PSD allowed)

    def draw(n, rng):
        return mean + rng.standard_normal((n, d)) @ factor.T  # (n, d)

    return Target(kind, d, draw, centres=mean[None, :].copy(), mode_labels=("mean",))


@_register(
    "two_modes",
    "two Gaussian modes (or atoms, std = 0) at -separation/2 and +separation/2 on the first axis",
    {
        "separation": _Option(4.0, 0, "distance s between the modes, at -s/2 e1 and +s/2 e1"),
        "weights": _Option((0.5, 0.5), 1, "[w0, w1] for the modes at -s/2 and +s/2, summing to 1"),
        "std": _Option(0.1, 0, "standard deviation of each mode; 0 gives exact atoms"),
        "dim": _Option(2, 0, "dimension (>= 1)"),
        "stratify": _Option(True, 0, "exact mode counts (largest remainder) instead of multinomial"),
    },
)
def _two_modes(opts: dict, given: frozenset, base_dir: str) -> Target:
    kind = "two_modes"
    s = _real(kind, "separation", opts["separation"])
    w = _weights(kind, "weights", opts["weights"], 2)
    std = _real(kind, "std", opts["std"], strict=False)
    d = _integer(kind, "dim", opts["dim"])
    stratify = _boolean(kind, "stratify", opts["stratify"])
    centres = np.zeros((2, d))
    centres[0, 0], centres[1, 0] = -s / 2, s / 2
    return Target(kind, d, _mixture_draw(centres, w, std, stratify), centres=centres, mode_labels=("left", "right"))


@_register(
    "mixture",
    "isotropic Gaussian mixture sum_k w_k N(c_k, std^2 I)",
    {
        "centres": _Option(None, 2, "mode centres, K lists of d numbers (required)"),
        "weights": _Option(None, 1, "K non-negative weights summing to 1 (default uniform)"),
        "std": _Option(0.1, 0, "standard deviation of every mode; 0 gives atoms"),
        "stratify": _Option(True, 0, "exact mode counts (largest remainder) instead of multinomial"),
    },
)
def _mixture(opts: dict, given: frozenset, base_dir: str) -> Target:
    kind = "mixture"
    if opts["centres"] is None:
        raise TargetError(kind, "centres", "missing", "K lists of d numbers, e.g. centres = [[-2, 0], [2, 0]]")
    c = _array(kind, "centres", opts["centres"], 2, "K lists of d numbers, e.g. [[-2, 0], [2, 0]]")
    k, d = c.shape
    w = np.full(k, 1.0 / k) if opts["weights"] is None else _weights(kind, "weights", opts["weights"], k)
    std = _real(kind, "std", opts["std"], strict=False)
    stratify = _boolean(kind, "stratify", opts["stratify"])
    return Target(kind, d, _mixture_draw(c, w, std, stratify), centres=c, mode_labels=tuple(f"mode{i}" for i in range(k)))


_SCALE = _Option(1.0, 0, "factor applied to the whole sample (noise included)")


def _toy_common(kind, opts, has_noise=True):
    scale = _real(kind, "scale", opts["scale"])
    noise = _real(kind, "noise", opts["noise"], strict=False) if has_noise else 0.0
    return scale, noise


@_register(
    "moons",
    "FFJORD moons: sklearn's two interleaved half circles, x2 + (-1, -0.2), i.i.d. angles",
    {"scale": _SCALE, "noise": _Option(0.2, 0, "Gaussian jitter std (FFJORD: sklearn noise 0.1, times 2)")},
)
def _moons(opts, given, base_dir) -> Target:
    scale, noise = _toy_common("moons", opts)

    def draw(n, rng):
        t = rng.uniform(0.0, math.pi, n)  # (n,)
        upper = rng.random(n) < 0.5  # (n,) which moon
        x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
        y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
        pts = 2.0 * np.stack([x, y], axis=1) + np.array([-1.0, -0.2])  # (n, 2), FFJORD's placement
        if noise > 0:
            pts = pts + noise * rng.standard_normal((n, 2))
        return scale * pts

    return Target("moons", 2, draw)


_SQ2 = 1.0 / math.sqrt(2.0)
_EIGHT = np.array(
    [(1, 0), (-1, 0), (0, 1), (0, -1), (_SQ2, _SQ2), (_SQ2, -_SQ2), (-_SQ2, _SQ2), (-_SQ2, -_SQ2)]
)  # FFJORD's order
_EIGHT_NAMES = ("E", "W", "N", "S", "NE", "SE", "NW", "SW")


@_register(
    "eight_gaussians",
    "FFJORD 8gaussians: 8 equal modes on a circle of radius 4/1.414 ~ 2.83, std 0.5/1.414 ~ 0.354",
    {"scale": _SCALE, "noise": _Option(0.5 / 1.414, 0, "std of each mode (FFJORD: 0.5/1.414)")},
)
def _eight_gaussians(opts, given, base_dir) -> Target:
    scale, noise = _toy_common("eight_gaussians", opts)
    centres = scale * (4.0 / 1.414) * _EIGHT  # (8, 2); FFJORD divides by 1.414, not sqrt(2)
    draw = _mixture_draw(centres, np.full(8, 1.0 / 8), scale * noise, stratify=False)
    return Target("eight_gaussians", 2, draw, centres=centres, mode_labels=_EIGHT_NAMES)


@_register(
    "checkerboard",
    "FFJORD checkerboard: uniform on 8 of the 16 squares of side 2 tiling [-4, 4]^2",
    {"scale": _SCALE, "noise": _Option(0.0, 0, "Gaussian jitter std before scaling (Deng et al.'s demo: 0.2 at scale 0.25, i.e. 0.05)")},
)
def _checkerboard(opts, given, base_dir) -> Target:
    scale, noise = _toy_common("checkerboard", opts)
    # the 8 occupied squares' centres; nearest-centre assignment is exact on the squares
    centres = scale * np.array([(-3, -3), (-3, 1), (1, -3), (1, 1), (-1, -1), (-1, 3), (3, -1), (3, 3)], dtype=float)

    def draw(n, rng):
        x1 = rng.random(n) * 4 - 2  # (n,)
        x2 = rng.random(n) - rng.integers(0, 2, n) * 2 + np.floor(x1) % 2
        pts = 2 * np.stack([x1, x2], axis=1)  # (n, 2)
        if noise > 0:
            pts = pts + noise * rng.standard_normal((n, 2))
        return scale * pts

    return Target("checkerboard", 2, draw, centres=centres, mode_labels=tuple(f"square{i}" for i in range(8)))


@_register(
    "spiral",
    "FFJORD 2spirals: two interleaved arms of 1.5 turns, radius up to pi (plus jitter)",
    {"scale": _SCALE, "noise": _Option(0.1, 0, "Gaussian jitter std (FFJORD: 0.1)")},
)
def _spiral(opts, given, base_dir) -> Target:
    scale, noise = _toy_common("spiral", opts)

    def draw(n, rng):
        t = np.sqrt(rng.random(n)) * 3 * math.pi  # (n,), 540 degrees; sqrt: uniform density along the area
        arm_x = -np.cos(t) * t + rng.random(n) * 0.5
        arm_y = np.sin(t) * t + rng.random(n) * 0.5
        sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)  # which arm
        pts = sign[:, None] * np.stack([arm_x, arm_y], axis=1) / 3  # (n, 2)
        if noise > 0:
            pts = pts + noise * rng.standard_normal((n, 2))
        return scale * pts

    return Target("spiral", 2, draw)


@_register(
    "rings",
    "FFJORD rings: 4 concentric circles of radii 3, 2.25, 1.5, 0.75, equal mass, jitter 0.08",
    {"scale": _SCALE, "noise": _Option(0.08, 0, "Gaussian jitter std (FFJORD: 0.08)")},
)
def _rings(opts, given, base_dir) -> Target:
    scale, noise = _toy_common("rings", opts)
    radii = np.array([3.0, 2.25, 1.5, 0.75])

    def draw(n, rng):
        r = radii[rng.integers(0, 4, n)]  # (n,)
        theta = rng.uniform(0.0, 2 * math.pi, n)
        pts = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)  # (n, 2)
        if noise > 0:
            pts = pts + noise * rng.standard_normal((n, 2))
        return scale * pts

    return Target("rings", 2, draw)


@_register(
    "swiss_roll",
    "Deng et al.'s demo swiss roll: (t cos t, t sin t) / (9 pi/2), t = pi/2 + 4 pi u, in [-1, 1]^2, jitter 0.03",
    {"scale": _SCALE, "noise": _Option(0.03, 0, "Gaussian jitter std (the demo: 0.03)")},
)
def _swiss_roll(opts, given, base_dir) -> Target:
    scale, noise = _toy_common("swiss_roll", opts)
    # the demo divides by the batch's largest |coordinate|; its supremum over the curve is
    # t sin t at the end t = 9 pi/2 (d/dt (t sin t) = 1 > 0 there), a constant here
    norm = 4.5 * math.pi

    def draw(n, rng):
        t = 0.5 * math.pi + 4.0 * math.pi * rng.random(n)  # (n,)
        pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / norm  # (n, 2)
        if noise > 0:
            pts = pts + noise * rng.standard_normal((n, 2))
        return scale * pts

    return Target("swiss_roll", 2, draw)


_H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def _bytes(n: float) -> str:
    """``n`` bytes as a short human size (``14.6 TiB``)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    k = 0
    while n >= 1024 and k < len(units) - 1:
        n, k = n / 1024, k + 1
    return f"{n:.0f} B" if k == 0 else f"{n:.1f} {units[k]}"


def _available_memory() -> int | None:
    """Bytes a new allocation can take: MemAvailable, capped by a cgroup v2 limit; None where unknown."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    try:  # a container's limit can be lower than the machine's free memory
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            avail = min(avail, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return avail


def _check_header(kind, path, shape, dtype):
    """Refuse an array by its header alone: shape (points, dim) and a real numeric dtype."""
    if shape is None or len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise TargetError(kind, "path", f"the array in {path!r} has shape {shape}", "a 2-D array (points, dim)")
    if dtype.fields is not None or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TargetError(kind, "path", f"the array in {path!r} has dtype {dtype}", "a real numeric array")


def _check_memory(kind, path, shape, bytes_per_value):
    """Refuse an array whose load would not fit in the available memory, with the estimate.

    ``bytes_per_value`` is what loading costs per stored number (8 for the
    float64 copy, plus the source itemsize when the source is read whole
    first), so the estimate is the peak of the load.
    """
    need = int(shape[0]) * int(shape[1]) * bytes_per_value
    avail = _available_memory()
    if avail is not None and need > avail:
        raise TargetError(
            kind,
            "path",
            f"the array in {path!r} has shape {tuple(shape)}: loading it as float64 needs about {_bytes(need)} "
            f"but {_bytes(avail)} of memory is available",
            "an array that fits in memory (store fewer rows or a subsample)",
        )


def _load_npy(kind, path):
    """The array of an .npy file (N, d) float64, its header checked before anything is allocated."""
    expected = "a readable .npy array (numpy.save)"
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise TargetError(
                    kind, "path", f"{path!r} holds zip (.npz) data, not a single array",
                    "a single array saved with numpy.save (take one array of the .npz and save it as .npy)",
                )
            f.seek(0)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:  # 3.0 only differs for structured dtypes, which no target uses
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except TargetError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise TargetError(kind, "path", f"cannot read {path!r} as .npy ({err})", expected) from None
    _check_header(kind, path, shape, dtype)
    stored = int(shape[0]) * int(shape[1]) * dtype.itemsize
    if size - offset < stored:
        raise TargetError(
            kind,
            "path",
            f"the header of {path!r} claims shape {tuple(shape)} of {dtype} ({_bytes(stored)}) "
            f"but the file holds {_bytes(size - offset)} of data",
            "a complete .npy file",
        )
    _check_memory(kind, path, shape, 8)
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)  # reads pages as the copy needs them
        return np.array(mapped, dtype=np.float64)  # a private copy
    except (OSError, ValueError) as err:
        raise TargetError(kind, "path", f"cannot read {path!r} as .npy ({err})", expected) from None


def _load_h5(kind, path, dataset):
    import h5py  # only needed for HDF5 sources

    if dataset is None:
        raise TargetError(kind, "dataset", f"missing for the HDF5 file {path!r}", "the name of a dataset in the file")
    try:
        with h5py.File(path, "r") as f:
            found: list[str] = []
            f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
            if dataset.strip("/") not in found:
                hint = difflib.get_close_matches(dataset, found, n=1)
                raise TargetError(
                    kind, "dataset", f"no dataset {dataset!r} in {path!r}", f"one of {found}", hint[0] if hint else None
                )
            ds = f[dataset]
            # a chunked or compressed dataset can be tiny on disk and huge in memory: check before reading
            _check_header(kind, f"{path}:{dataset}", ds.shape, ds.dtype)
            _check_memory(kind, f"{path}:{dataset}", ds.shape, 8 + ds.dtype.itemsize)
            return np.array(ds[()], dtype=np.float64)
    except OSError as err:
        raise TargetError(kind, "path", f"cannot read {path!r} as HDF5 ({err})", "a readable HDF5 file") from None


@_register(
    "from_file",
    "rows of a 2-D array stored in an .npy or HDF5 file",
    {
        "path": _Option(None, 0, "file path (.npy or .h5/.hdf5); relative paths start at the scenario's folder"),
        "dataset": _Option(None, 0, "dataset name inside an HDF5 file"),
        "replace": _Option(True, 0, "draw rows with replacement; false returns the first n rows"),
    },
)
def _from_file(opts, given, base_dir) -> Target:
    kind = "from_file"
    if opts["path"] is None:
        raise TargetError(kind, "path", "missing", 'a path to an .npy or .h5 file, e.g. path = "data/points.npy"')
    raw = _string(kind, "path", opts["path"])
    replace = _boolean(kind, "replace", opts["replace"])
    dataset = None if opts["dataset"] is None else _string(kind, "dataset", opts["dataset"])
    path = os.path.join(base_dir, os.path.expanduser(raw))  # an absolute raw path wins in os.path.join
    if not os.path.isfile(path):
        raise TargetError(kind, "path", f"cannot read {raw!r}: no such file ({path})", "an existing .npy or .h5 file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        if dataset is not None:
            raise TargetError(kind, "dataset", f"given for the .npy file {path!r}", "no dataset (only HDF5 files have them)")
        data = _load_npy(kind, path)
    elif suffix in _H5_SUFFIXES:
        data = _load_h5(kind, path, dataset)
    else:
        raise TargetError(kind, "path", f"unsupported file type {suffix!r} ({path!r})", f"one of ('.npy',) + {_H5_SUFFIXES}")
    # the loaders checked shape, dtype and size from the header and return a private float64 copy
    if not np.all(np.isfinite(data)):
        raise TargetError(kind, "path", f"the array in {path!r} contains NaN or inf", "finite values")
    data.setflags(write=False)
    rows = data.shape[0]

    def draw(n, rng):
        if replace:
            return data[rng.integers(0, rows, n)]  # (n, d)
        return data[:n].copy()

    return Target(kind, data.shape[1], draw, max_n=None if replace else rows)


# ---------------------------------------------------------------- the data's identity

_DIGESTS: dict = {}  # (path, inode, size, mtime_ns) -> digest: one hash per file and process, however many points


def content_identity(kind: str, *, base_dir: str = ".", **params) -> dict | None:
    """What identifies the data a kind reads from outside the scenario: ``{"sha256", "bytes"}`` or None.

    ``from_file`` reads a file that can change between a kill and ``--resume``
    (or between two runs of a sweep) while its path stays the same, so the
    identity of a run covers the file's *content*: the SHA-256 of every byte
    of it (streamed, about 1 GB/s; cached per process by path, inode, size
    and modification time, so a sweep hashes a file once).  Every other
    kind is determined by its options and seed: None.  A path that cannot be
    read gives None here (building the target refuses it, naming the path).
    """
    if kind != "from_file" or not isinstance(params.get("path"), str):
        return None
    path = os.path.realpath(os.path.join(base_dir, os.path.expanduser(params["path"])))
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in _DIGESTS:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            _DIGESTS[key] = digest.hexdigest()
    except OSError:
        return None
    return {"sha256": _DIGESTS[key], "bytes": st.st_size}


# ---------------------------------------------------------------- public calls


def names() -> list[str]:
    """The registered kinds, in registration order."""
    return list(_KINDS)


def _kind(kind: str) -> _Kind:
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        hint = difflib.get_close_matches(str(kind), _KINDS, n=1)
        raise TargetError(
            "targets", "kind", f"unknown kind {show_value(kind)}", f"one of {', '.join(_KINDS)}", hint[0] if hint else None
        ) from None


def options(kind: str) -> dict[str, Any]:
    """The options of ``kind`` and their defaults (None: required or derived)."""
    return {k: o.default for k, o in _kind(kind).options.items()}


def option_ranks(kind: str) -> dict[str, int]:
    """Array rank of each option's value: 0 scalar, 1 vector, 2 matrix.

    A scenario list nested one level deeper than this is a sweep over values.
    """
    return {k: o.rank for k, o in _kind(kind).options.items()}


def summary(kind: str) -> str:
    """One line describing ``kind``, with its option documentation."""
    entry = _kind(kind)
    opts = "; ".join(f"{k} = {o.default!r}: {o.doc}" for k, o in entry.options.items())
    return f"{kind}: {entry.summary} ({opts})"


def make(kind: str, *, base_dir: str = ".", **params) -> Target:
    """Build a validated :class:`Target` of ``kind`` from its options.

    Parameters
    ----------
    kind : str
        One of :func:`names`.
    base_dir : str
        Folder that relative ``from_file`` paths start from (the scenario
        file's folder).
    **params
        The kind's options (:func:`options`); missing ones take their defaults.

    Raises
    ------
    TargetError
        (a ``ValueError``) naming the option and what was expected, with a
        did-you-mean for unknown options.
    """
    entry = _kind(kind)
    for key in params:
        if key not in entry.options:
            hint = difflib.get_close_matches(key, entry.options, n=1)
            raise TargetError(
                kind, key, "unknown option", f"one of {', '.join(entry.options)}", hint[0] if hint else None
            )
    opts = {k: o.default for k, o in entry.options.items()} | params
    return entry.build(opts, frozenset(params), str(base_dir))
