"""The validated scenario as frozen dataclasses: what a scenario file means, with no side effects."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .. import metrics as _metrics
from .. import methods as _methods
from .. import targets as _targets
from ..errors import OptionError
from ..primitives import DEFAULT_PRUNE_TOL
from ..methods.generator.mlp import ACTIVATIONS as _ACTIVATIONS
from ..methods.generator.method import GeneratorSpec, _MLP_FIELDS  # noqa: F401 - re-exported: the [generator] table

METHODS = tuple(_methods.RECORDS)  # from the method records
METRICS = tuple(_metrics.RECORDS)  # from the metric records
DTYPES = ("float64", "float32")
ACTIVATIONS = tuple(_ACTIVATIONS)
DEFAULT_N = 1024  # samples / particles when [target] or [init] gives no n


# [init] kind = "generator": the particles start at samples of the untrained generator of the run's
# seed and [generator] settings (wgfsim.methods.generator.start), so no wgfsim.targets kind builds it
INIT_GENERATOR = "generator"


class ScenarioError(OptionError):
    """A user mistake in a scenario; ``str(err)`` is the whole message.

    An :class:`~wgfsim.errors.OptionError` whose ``owner`` is the file (or
    ``"<string>"``, also ``source``) and ``key`` the key path
    (``flow[1].bandwidth``, also ``path``) where known.
    """

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None, value=None,
                 expected: str = ""):
        ValueError.__init__(self, message)
        self.owner, self.key, self.value, self.expected, self.hint = source or "<scenario>", path or "", value, expected, None
        self.source = source
        self.path = path


# ---------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class DistSpec:
    """A distribution to sample: ``[target]`` or ``[init]``.

    Attributes
    ----------
    kind : str
        A :mod:`wgfsim.targets` kind (in :attr:`Scenario.target` a list when
        the kind is swept).
    n : int
        Number of samples (target: the sample the flow sees; init: particles).
    options : dict
        The kind's options as written (lists one level deeper than the
        option's shape are sweeps in :class:`Scenario`, never in a
        :class:`RunPoint`).
    seed : int
        Target: the sample seed (default 0, the same sample for every run).
        Init: 0 in :class:`Scenario`; the run's seed in a :class:`RunPoint`.
        Derive independent streams from it (e.g.
        ``np.random.SeedSequence([seed, stream])``) so that a target and an
        init drawn with the same seed are not correlated.
    base_dir : str
        Folder that relative ``from_file`` paths start from.
    """

    kind: Any
    n: int
    options: dict
    seed: int = 0
    base_dir: str = "."

    def build(self) -> _targets.Target:
        """The :class:`wgfsim.targets.Target` (only for a spec without sweeps).

        ``[init] kind = "generator"`` has none: the particle method draws it
        (:func:`wgfsim.methods.generator.start.untrained_sample`).
        """
        if self.kind == INIT_GENERATOR:
            raise ValueError('init: kind "generator" is drawn by the run (the untrained generator of its seed), '
                             "not by wgfsim.targets")
        return _targets.make(self.kind, base_dir=self.base_dir, **self.options)

    def content(self) -> dict | None:
        """The identity of the data read from a file (``from_file``: its SHA-256 and size), else None.

        Part of a run's fingerprint and of a sweep point's identity, so data
        edited in place is never taken for the data a run started on
        (:func:`wgfsim.targets.content_identity`).
        """
        return _targets.content_identity(self.kind, base_dir=self.base_dir, **self.options)


@dataclass(frozen=True)
class FlowSpec:
    """One ``[[flow]]`` table: the flow's name and its options (lists are sweeps)."""

    name: str
    options: dict


@dataclass(frozen=True)
class RunSpec:
    """The ``[run]`` table.

    ``minibatch = 0`` gives the flow the full target sample each step, else a
    fresh target minibatch of that size per step.  ``prune_tol`` is the
    block-sparse kernel's tolerance (:mod:`wgfsim.primitives.prune`: the share
    of each row's sum it may skip; 0 computes every pair).  ``step_size`` is NaN
    when the file gives none and ``methods`` has no ``"particles"`` (the
    generator's time step is ``generator.drift_step``).
    """

    steps: int
    step_size: float
    record_every: int
    methods: tuple[str, ...] = ("particles",)
    seeds: tuple[int, ...] = (0,)
    backend: str = "auto"
    dtype: str = "float64"
    minibatch: int = 0
    record_velocity: bool = False
    prune_tol: float = DEFAULT_PRUNE_TOL


# the default metrics.reference_n: the target's n, at most this (a 4.1M-row from_file target would otherwise give
# mmd2 1.7e13 pairs a record for the reference's own term)
REFERENCE_N_MAX = 10_000

# the [metrics] table: names, reference_n, and one field per option a metric record declares
# (sinkhorn_epsilon, w2_max_points)
MetricsSpec = dataclasses.make_dataclass(
    "MetricsSpec",
    [("names", "tuple[str, ...]", dataclasses.field(default=METRICS)),
     ("reference_n", "int", dataclasses.field(default=DEFAULT_N)),
     ("final_window", "int", dataclasses.field(default=5))]
    + [(o.key, "Any", dataclasses.field(default=o.default)) for r in _metrics.RECORDS.values() for o in r.options],
    frozen=True,
)
MetricsSpec.__module__ = __name__
MetricsSpec.__doc__ = """The ``[metrics]`` table.

``names`` defaults to every metric (without ``mode_mass`` when no target
data point has mode centres; with a sweep over kinds some points may
still lack them); ``reference_n`` defaults to the target's n, at most
:data:`REFERENCE_N_MAX` (10,000: a pair metric then visits at most about
``(N + 10^4)^2`` pairs a record, whatever the data file's size);
``final_window``: the last records whose mean and spread the file keeps as
each run's final score (attributes ``final_<metric>_mean``/``_std``); the
other fields are the options the metric records declare (:data:`wgfsim.metrics.RECORDS`).
"""


@dataclass(frozen=True)
class Scenario:
    """A validated scenario.

    ``text`` is the raw TOML as read and ``overrides`` the ``key.path=value``
    strings applied on top of it, so ``loads(text, overrides=overrides)``
    rebuilds the same scenario.
    """

    name: str
    source: str
    text: str
    target: DistSpec
    init: DistSpec
    flows: tuple[FlowSpec, ...]
    run: RunSpec
    metrics: MetricsSpec
    tables: dict = dataclasses.field(default_factory=dict)  # method table name -> its spec ([generator])
    overrides: tuple[str, ...] = ()
    description: str = ""
    data_sweeps: tuple[str, ...] = ()  # key paths of swept [target]/[init] values, e.g. ("target.separation",)

    @property
    def sweeps_data(self) -> bool:
        """Whether a [target]/[init] value is a list sweep (needs ``wgfsim sweep``)."""
        return bool(self.data_sweeps)

    @property
    def generator(self):
        """The ``[generator]`` table's spec, or None (a name kept for readers; see ``tables``)."""
        return self.tables.get("generator")

    @property
    def base_dir(self) -> str:
        return self.target.base_dir


@dataclass(frozen=True)
class RunPoint:
    """One run: a flow with scalar (or list-valued) options, a method, a seed and the data.

    ``params`` are the options as written (``wgfsim.flows.make_params(flow,
    **params)``); ``flow_params`` is that flow's validated ``Params``, resolved
    once at expansion (defaults filled): every consumer (the methods, the
    run's identity, the stored ``flow_params``) reads it, never rebuilds it;
    ``coords`` holds the swept keys and their values for this run (always
    ``flow``, ``method`` and ``seed``; data sweeps as ``"target.<option>"``;
    list values of a swept option as strings such as ``"[0.25, 0.5]"``).
    """

    flow: str
    params: dict
    method: str
    seed: int
    target: DistSpec
    init: DistSpec
    coords: dict
    flow_params: Any = None

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. ``"kl_kde bandwidth=0.5 particles seed=0"``."""
        extra = " ".join(f"{k}={v}" for k, v in self.coords.items() if k not in ("flow", "method", "seed"))
        return " ".join(part for part in (self.flow, extra, self.method, f"seed={self.seed}") if part)

