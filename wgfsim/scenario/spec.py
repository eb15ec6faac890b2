"""The validated scenario as frozen dataclasses: what a scenario file means, with no side effects."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .. import targets as _targets
from ..methods.generator.mlp import ACTIVATIONS as _ACTIVATIONS
from ..methods.generator.mlp import MLPConfig
from ..methods.generator.train import TrainConfig


METHODS = ("particles", "generator")
METRICS = ("mmd2", "energy_distance", "sinkhorn", "w2", "mode_mass", "energy", "velocity_rms")
DTYPES = ("float64", "float32")
ACTIVATIONS = tuple(_ACTIVATIONS)
DEFAULT_N = 1024  # samples / particles when [target] or [init] gives no n
# [init] kind = "generator": the particles start at samples of the untrained generator of the run's
# seed and [generator] settings (wgfsim.methods.generator.start), so no wgfsim.targets kind builds it
INIT_GENERATOR = "generator"
# [generator] start: "random" (the seeded initialisation, t = 0 is the untrained network) or "init"
# (the network fitted to the [init] measure before t = 0; wgfsim.methods.generator.start)
GENERATOR_STARTS = ("random", "init")


class ScenarioError(ValueError):
    """A user mistake in a scenario; ``str(err)`` is the whole message.

    ``source`` is the file (or ``"<string>"``) and ``path`` the key path
    (``flow[1].bandwidth``) where known.
    """

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None):
        super().__init__(message)
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


@dataclass(frozen=True)
class FlowSpec:
    """One ``[[flow]]`` table: the flow's name and its options (lists are sweeps)."""

    name: str
    options: dict


@dataclass(frozen=True)
class RunSpec:
    """The ``[run]`` table.

    ``minibatch = 0`` gives the flow the full target sample each step, else a
    fresh target minibatch of that size per step.  ``step_size`` is NaN
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


@dataclass(frozen=True)
class MetricsSpec:
    """The ``[metrics]`` table.

    ``names`` defaults to every metric (without ``mode_mass`` when no target
    data point has mode centres; with a sweep over kinds some points may
    still lack them); ``reference_n`` defaults to the target's n.
    """

    names: tuple[str, ...] = METRICS
    reference_n: int = DEFAULT_N
    sinkhorn_epsilon: float | None = None
    w2_max_points: int = 2000


# generator settings a scenario may give: the generator's own configs, less what the run sets
# (the data dimension, the minibatch, the schedule's length), plus eval_n
_MLP_FIELDS = tuple(f for f in dataclasses.fields(MLPConfig) if f.name != "out_dim")
_TRAIN_FIELDS = tuple(f for f in dataclasses.fields(TrainConfig) if f.name not in ("mlp", "minibatch", "total_steps"))

GeneratorSpec = dataclasses.make_dataclass(
    "GeneratorSpec",
    [(f.name, f.type, dataclasses.field(default=f.default)) for f in _MLP_FIELDS + _TRAIN_FIELDS]
    + [("eval_n", "int | None", dataclasses.field(default=None)),
       ("start", "str", dataclasses.field(default="random")),
       ("start_steps", "int", dataclasses.field(default=2000))],
    frozen=True,
)
GeneratorSpec.__module__ = __name__
GeneratorSpec.__doc__ = """The ``[generator]`` table: the amortized one-step generator's settings.

Its fields are those of :class:`wgfsim.methods.generator.mlp.MLPConfig` (``latent_dim``,
``width``, ``depth``, ``activation``) and :class:`wgfsim.methods.generator.TrainConfig`
(``learning_rate``, ``inner_steps``, ``batch_size``, ``drift_step``,
``lr_schedule``, ``ema_decay``), with their defaults, derived from them so the
two never drift apart; plus ``eval_n`` (samples drawn for metrics, default the
init's n), ``start`` (``"random"``: t = 0 is the seeded untrained network;
``"init"``: the network is first fitted to the ``[init]`` measure,
:mod:`wgfsim.methods.generator.start`) and ``start_steps`` (Adam steps of
that fit).  The run supplies the data dimension, the minibatch and the
schedule's length (``run.steps``).
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
    generator: GeneratorSpec | None = None
    overrides: tuple[str, ...] = ()
    description: str = ""
    data_sweeps: tuple[str, ...] = ()  # key paths of swept [target]/[init] values, e.g. ("target.separation",)

    @property
    def sweeps_data(self) -> bool:
        """Whether a [target]/[init] value is a list sweep (needs ``wgfsim sweep``)."""
        return bool(self.data_sweeps)

    @property
    def base_dir(self) -> str:
        return self.target.base_dir


@dataclass(frozen=True)
class RunPoint:
    """One run: a flow with scalar (or list-valued) options, a method, a seed and the data.

    ``params`` go straight to ``wgfsim.flows.make_params(flow, **params)``;
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

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. ``"kl_kde bandwidth=0.5 particles seed=0"``."""
        extra = " ".join(f"{k}={v}" for k, v in self.coords.items() if k not in ("flow", "method", "seed"))
        return " ".join(part for part in (self.flow, extra, self.method, f"seed={self.seed}") if part)

