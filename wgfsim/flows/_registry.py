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

__all__ = ["Flow", "Context", "CarriedState", "register", "get", "names", "options", "make_params", "GAP_LAWS",
           "kernel_gap_decay", "transport_gap_decay", "kernel_pairs", "largest_bandwidth", "sqrt_largest_epsilon"]


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
    # examples: small option sets that together reach the flow's code paths; the backend parity tests
    # (tests/test_gpu.py) run each on every backend.
    examples: tuple = ({},)
    # doc: the flow's page, relative to the repository root.
    doc: str = ""


_REGISTRY: dict[str, Flow] = {}


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
    return flow.Params(**opts)

