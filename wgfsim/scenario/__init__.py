"""Scenario files: TOML -> frozen, validated dataclasses (no side effects).

A scenario names the target, the initial particles, the flows to compare and
how to run them (docs/user_guide.md, "Scenario files")::

    name = "two_modes_transfer"
    [target]      # kind + that kind's options (wgfsim.targets), n, seed (default 0)
    [init]        # kind + options + n; drawn from each run's seed
    [[flow]]      # name + that flow's options (wgfsim.flows)
    [run]         # methods, steps, step_size, record_every, seeds, backend, dtype,
                  # minibatch, record_velocity, prune_tol
    [metrics]     # names, reference_n, sinkhorn_epsilon, w2_max_points (optional table)
    [generator]   # a method's own table: only with "generator" in run.methods (optional)

Sweeps.  In a ``[[flow]]`` table a list value is a sweep axis
(``bandwidth = [0.25, 0.5]`` is two runs) and a list of lists gives
list-valued options (``bandwidth = [[0.25, 0.5, 1.0]]`` is ONE run with the
three fields summed).  In ``[target]`` / ``[init]`` a list one level deeper than
the option's own shape is a sweep (``separation = [2.0, 4.0]``,
``weights = [[0.5, 0.5], [0.3, 0.7]]``, ``kind = ["moons", "rings"]``); such
data sweeps change the target sample, so they need ``wgfsim sweep`` (one
output file per data point) and :func:`expand` refuses them unless
``allow_data_sweeps=True``.  A list of one value is that value, not a sweep
(no coordinate).  A run is one point of the cartesian product
``data points x flows x flow sweeps x methods x seeds``.

Every mistake is found here, before any work, and reported as one
:class:`ScenarioError` whose text is
``"<file>: <key.path>: <what was wrong>; expected <what>"`` (plus
``"; did you mean 'X'?"`` for misspelt keys).

Modules: :mod:`.spec` (the dataclasses), :mod:`.check` (the checks and their
one message grammar), :mod:`.load` (TOML -> spec), :mod:`.expand` (runs, each
with its resolved flow ``Params``), :mod:`.identity` (one run identity for
file names and resume), :mod:`.resources` (the memory and pairs estimate).

Public calls: :func:`load`, :func:`loads`, :func:`expand`, and the dataclasses
:class:`Scenario`, :class:`DistSpec`, :class:`FlowSpec`, :class:`RunSpec`,
:class:`MetricsSpec`, :class:`GeneratorSpec`, :class:`RunPoint`.
"""


from __future__ import annotations

from .expand import expand
from .load import load, loads
from .spec import (ACTIVATIONS, DEFAULT_N, DTYPES, METHODS, METRICS, DistSpec, FlowSpec, GeneratorSpec, MetricsSpec,
                   RunPoint, RunSpec, Scenario, ScenarioError)

__all__ = [
    "ScenarioError",
    "Scenario",
    "DistSpec",
    "FlowSpec",
    "RunSpec",
    "MetricsSpec",
    "GeneratorSpec",
    "RunPoint",
    "load",
    "loads",
    "expand",
    "METHODS",
    "METRICS",
    "DTYPES",
    "ACTIVATIONS",
    "DEFAULT_N",
]
