"""The flow registry: the :class:`Flow` record, the registry calls, and what several records share.

A leaf of :mod:`wgfsim.flows`: each flow module imports its record type and
``register`` from here, and the package imports the flow modules, so the
registry has no import cycle.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import errors

__all__ = ["Flow", "Context", "CarriedState", "register", "get", "names", "options", "make_params", "GAP_LAWS",
           "kernel_gap_decay", "transport_gap_decay", "kernel_pairs", "largest_bandwidth", "sqrt_largest_epsilon",
           "LIMITS", "set_limits", "ResourceError", "check_call", "call_memory", "human_bytes"]


class CarriedState(dict):
    """The state a flow carries from call to call (Sinkhorn's potentials, KALE's coefficients).

    Plain data under string keys (``"sinkhorn/0.01"``, ``"kale_iterations"``):
    arrays, scalars and tuples or lists of them, so a checkpoint stores it as
    it is (:func:`wgfsim.io.snapshot.save_field`), with no key to re-parse.
    """

    def __setitem__(self, key, value):
        if not isinstance(key, str):
            raise TypeError(f"carried state: keys are strings, got {key!r}")
        super().__setitem__(key, value)


@dataclass
class Context:
    """What a flow may use besides its inputs: the backend, the RNG, and the carried state."""

    backend: str
    rng: np.random.Generator
    state: CarriedState = field(default_factory=CarriedState)


@dataclass(frozen=True)
class Flow:
    """A registry entry: the flow's name, options, velocity and (for gradient flows) energy."""

    name: str
    Params: type
    velocity: Callable[..., Any]
    energy: Callable[..., float] | None = None
    weights: bool = True  # accepts particle weights a and target weights b
    summary: str = ""
    energy_name: str = ""
    # What readers need to know about the flow, so that no table outside flows/ restates it.
    # field_at(z, x, y, a, b, params, ctx) -> (K, d): the field at arbitrary points z (K, d)
    # with the particle measure (x, a) and the target (y, b) fixed; field_at(x, x, ...) is velocity.
    field_at: Callable[..., Any] | None = None
    # length_scale(params) -> float: the flow's length (kernel bandwidth sigma, sqrt(eps), T, ...),
    # the unit in which studies measure separations; None where the flow has none.
    length_scale: Callable[[Any], float] | None = None
    # options_at_scale(sigma) -> dict: options that give the flow the length scale sigma (the inverse of
    # length_scale), so a study can put every kernel flow at one sigma without a table of its own.
    options_at_scale: Callable[[float], dict] | None = None
    # hyper: the option a study sweeps (paper Fig. 2 axis), or None.
    hyper: str | None = None
    # two_atom(D, pi, alpha, params) -> float: the closed-form first-axis velocity at the
    # overcrowded atom +D of two atoms at -D and +D (D: half the separation; docs/math.md#two-atoms), or None
    # with the reason in no_two_atom (tests/test_registry.py checks every declared form against the velocity
    # at stacked atoms, and refuses a flow that declares neither).
    two_atom: Callable[..., float] | None = None
    no_two_atom: str = ""
    # gap_decay(params) -> (law, length): how the field of one mode decays at another across a gap s:
    # "gaussian" exp(-s^2 / (2 length^2)), "laplace" exp(-s / length), "none" (transport flows: no decay; length NaN).
    gap_decay: Callable[[Any], tuple[str, float]] | None = None
    # field_at_is_velocity: field_at(x, x, y) equals velocity(x, y) (False where velocity masks the self pair).
    field_at_is_velocity: bool = False
    # memory(n, m, d, params) -> {part: bytes}: what a velocity call holds beyond the particles' copies
    # (dense plans, projections, Gram matrices); pairs(n, m, d, params) -> float: the point pairs one velocity
    # call visits at most.  Both feed the resource estimate (wgfsim.scenario.resources).
    memory: Callable[..., dict] | None = None
    pairs: Callable[..., float] | None = None
    # study_options(dim) -> dict: the options a study runs the flow with in dimension dim, beyond its length
    # scale (sinkhorn: the paper's 100 iterations per step; sliced: one direction in 1-D, where it is exact).
    study_options: Callable[[int], dict] | None = None
    # study_step(params) -> float: the Euler step a study takes with the flow at length scale 1 (None: 1.0 for
    # flows whose field decays across a gap); the critics' fields grow like 1/lambda on samples, so theirs
    # follow lambda (wgfsim.studies._settings).
    study_step: Callable[[Any], float] | None = None
    # diagnostics: ((name, long_name, units), ...) numbers the flow's solver leaves in its carried state after each
    # velocity call (sinkhorn: the iterations used and the marginal error reached); a run stores them per record
    # as (run, time) variables, NaN for runs of other flows.
    diagnostics: tuple = ()
    # examples: small option sets that together reach the flow's code paths; the backend parity tests
    # (tests/test_gpu.py) run each on every backend.
    examples: tuple = ({},)
    # doc: the flow's page, relative to the repository root.
    doc: str = ""


_REGISTRY: dict[str, Flow] = {}


# ---------------------------------------------------------------- resources of one call

# The most point pairs one velocity (or energy) call, one run step or one record's metrics may visit: 1e13 is
# hours on a CPU core (~1e9 kernel evaluations a second) and minutes on a GPU.  Raise it with
# set_limits(max_pairs=...), or turn the check off with set_limits(check=False) (`--no-size-check`).
LIMITS = {"check": True, "max_pairs": 1e13}


def set_limits(*, check: bool | None = None, max_pairs: float | None = None) -> dict:
    """Set the size check of the API entry points (and the scenario's); returns the previous settings."""
    old = dict(LIMITS)
    if check is not None:
        LIMITS["check"] = errors.boolean("set_limits", "check", check)
    if max_pairs is not None:
        LIMITS["max_pairs"] = errors.number("set_limits", "max_pairs", max_pairs, minimum=0, open_minimum=True)
    return old


class ResourceError(errors.OptionError):
    """A call or a run that would need more memory than is available, or more point pairs than the limit."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)
        self.owner, self.key, self.value, self.expected, self.hint = "", "", None, message, None


def human_bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 2**10:.3g} KiB"


def call_memory(flow: Flow, n: int, m: int, d: int, params, itemsize: int, converted: bool) -> dict:
    """Bytes one call of ``flow`` on ``x`` (n, d) and ``y`` (m, d) allocates, by part (its record's ``memory``
    plus the velocity, the finiteness checks and, for inputs that are not float arrays yet, their copies)."""
    parts = {"velocity": float(n * d * itemsize), "input checks": float(n + m)}
    if converted:
        parts["inputs as floats"] = float((n + m) * d * 8)
    if flow.memory is not None:
        parts.update(flow.memory(n, m, d, params))
    return parts


# a call needing less than this is never refused for memory: every machine this runs on has it free
_MEMORY_FLOOR = 64 << 20


def check_call(flow: Flow, n: int, m: int, d: int, params, itemsize: int = 8, converted: bool = False,
               available: int | None = None) -> None:
    """Refuse (:class:`ResourceError`) a call whose memory exceeds what is available or whose pairs exceed
    ``LIMITS["max_pairs"]``: from the shapes alone, before anything is allocated."""
    if not LIMITS["check"]:
        return
    parts = call_memory(flow, n, m, d, params, itemsize, converted)
    need = sum(parts.values())
    if available is None and need > _MEMORY_FLOOR:
        # read the machine's memory only where it can matter: a Field is called every step, and the
        # reading opens three files (/proc/meminfo, the cgroup's limit and use)
        from ..targets import _available_memory  # the one reading of the machine's memory

        available = _available_memory()
    if available is not None and need > available:
        biggest = ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:3])
        raise ResourceError(f"{flow.name}: x ({n}, {d}) and y ({m}, {d}) need about {human_bytes(need)} of memory "
                            f"({biggest}) but {human_bytes(available)} is available; pass fewer points or smaller "
                            "options, or turn the check off with wgfsim.flows.set_limits(check=False)")
    pairs = flow.pairs(n, m, d, params) if flow.pairs is not None else float(n * m)
    if pairs > LIMITS["max_pairs"]:
        raise ResourceError(f"{flow.name}: x ({n}, {d}) and y ({m}, {d}) need about {pairs:.3g} point pairs per call, "
                            f"more than the limit {LIMITS['max_pairs']:.3g} (hours on a CPU); pass fewer points or "
                            "smaller options, or raise it with wgfsim.flows.set_limits(max_pairs=...)")


GAP_LAWS = ("gaussian", "laplace", "none")


def kernel_gap_decay(params) -> tuple[str, float]:
    """``gap_decay`` of the kernel flows: the kernel itself, ``exp(-s^2/(2 sigma^2))`` or ``exp(-s/h)``, at the largest bandwidth."""
    return ("laplace" if params.kernel == "laplace" else "gaussian"), largest_bandwidth(params)


def transport_gap_decay(params) -> tuple[str, float]:
    """``gap_decay`` of the transport flows (Sinkhorn, sliced, W2): a coupling moves mass across any gap."""
    return "none", math.nan


def kernel_pairs(n, m, d, params) -> float:
    """``pairs`` of one pull and one push per bandwidth: ``B (N M + N^2)``."""
    nb = 1 if isinstance(params.bandwidth, str) else len(params.bandwidth)
    return float(nb * (n * m + n * n))


def largest_bandwidth(params) -> float:
    """``length_scale`` of kernel flows: the largest bandwidth (NaN for the data-dependent ``"median"``)."""
    return math.nan if isinstance(params.bandwidth, str) else float(max(params.bandwidth))


def sqrt_largest_epsilon(params) -> float:
    """``length_scale`` of entropic flows: ``sqrt(eps)``, the length of ``exp(-|x-y|^2 / (2 eps))``."""
    return math.sqrt(float(max(params.epsilon)))


def register(flow: Flow) -> Flow:
    _REGISTRY[flow.name] = flow
    return flow


def names() -> list[str]:
    """The registered flows, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> Flow:
    """The registry entry for ``name``; unknown names raise with a did-you-mean."""
    try:
        return _REGISTRY[name]
    except KeyError:
        hint = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"flow: unknown flow {name!r}{extra}; expected one of {names()}") from None


def options(name: str) -> dict[str, Any]:
    """The options of flow ``name`` and their defaults."""
    return {f.name: f.default for f in dataclasses.fields(get(name).Params)}


def make_params(name: str, **opts):
    """Build and validate ``name``'s Params; an unknown option raises with a did-you-mean."""
    flow = get(name)
    known = options(name)
    for key in opts:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"{name}: unknown option {key!r}{extra}; {name} takes {sorted(known)}")
    params = flow.Params(**opts)
    for f in dataclasses.fields(params):  # whatever a flow's Params forgets: a boolean option takes only a boolean
        if isinstance(f.default, bool):
            errors.boolean(name, f.name, getattr(params, f.name))
    return params

