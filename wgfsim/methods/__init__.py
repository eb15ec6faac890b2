"""The two methods behind one protocol: ``particles`` (Euler McKean-Vlasov) and ``generator`` (drifting regression).

The runner (:mod:`wgfsim.runner`) drives either through the same calls and
never asks which one it holds:

``init() -> state``
    the state at step 0 (positions, or an initialised generator);
``evaluate(state) -> v or None``
    the field the next step needs, computed once (particles: ``v(x_k)``;
    the generator evaluates its drift inside :meth:`advance`, so ``None``);
``record(state, v) -> (x, v, extras)``
    what a record stores: points ``x`` (n, d), the field at them (or
    ``None``) and method-specific scalars;
``advance(state, v) -> (state, extras)``
    one step; ``extras`` are scalars of that step for the record taken
    just before it (the generator's ``loss`` and ``velocity_rms``);
``final(state) -> extras``
    the same scalars at the last record, where no step follows;
``snapshot(state) -> dict`` / ``restore(dict) -> state``
    one checkpoint format for both (:mod:`wgfsim.io.snapshot`: host arrays and
    JSON strings, saved without pickle);
``t(step) -> float``, ``settings() -> dict``, ``n_points``
    the record's time, the settings stored as ``method_params``, and the
    number of points a record holds.

Each method is a :class:`MethodRecord` that declares what its consumers
need: its class, the translation from a scenario's ``[run]`` and its own
table to its settings (the runner calls it; a method never sees the whole
scenario), its scenario table and the option checks for it (the scenario
layer reads them), whether it needs ``run.step_size``, and the extra numbers
it stores per record (the generator's ``loss``; the writer creates them).
The runner and the scenario layer never branch on a method's name.

Adding a method is one module here plus one line in :data:`RECORDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..io.schema import Variable
from .generator import method as _generator
from .particles import method as _particles

__all__ = ["Method", "MethodRecord", "RECORDS", "METHODS", "get", "record"]


class Method(Protocol):
    name: str
    n_points: int

    def init(self) -> Any: ...
    def evaluate(self, state) -> Any: ...
    def record(self, state, v) -> tuple[Any, Any, dict]: ...
    def advance(self, state, v) -> tuple[Any, dict]: ...
    def final(self, state) -> dict: ...
    def snapshot(self, state) -> dict: ...
    def restore(self, snap) -> Any: ...
    def t(self, step: int) -> float: ...
    def settings(self) -> dict: ...


@dataclass(frozen=True)
class MethodRecord:
    """A method as its consumers see it.

    ``cls(settings, point, target, xp, dtype, backend, prune_tol)`` builds it;
    ``settings(run, table, dim, init_n)`` translates ``[run]`` and the
    method's own table (``None`` when the scenario has none) into its
    settings; ``table`` names that table (``None``: no table of its own) and
    ``table_spec`` is the dataclass it becomes, each option judged by
    ``check_option(key, value) -> value`` (raises OptionError);
    ``needs_step_size``: whether ``run.step_size`` is required;
    ``variables``: extra ``(run, time)`` numbers a record carries;
    ``memory(table, d) -> {part: bytes}``: what the method holds beyond the
    particles (:mod:`wgfsim.scenario.resources`).
    """

    name: str
    cls: type
    settings: Callable[..., Any]
    table: str | None = None
    table_spec: type | None = None
    check_option: Callable[[str, Any], Any] | None = None
    needs_step_size: bool = False
    variables: dict = field(default_factory=dict)
    memory: Callable[..., dict] | None = None


RECORDS: dict[str, MethodRecord] = {r.name: r for r in (
    MethodRecord("particles", _particles.ParticlesMethod, _particles.settings, needs_step_size=True),
    MethodRecord("generator", _generator.GeneratorMethod, _generator.settings, table="generator",
                 table_spec=_generator.GeneratorSpec, check_option=_generator.check_option, memory=_generator.memory,
                 variables={"loss": Variable(("run", "time"), "float64",
                                             "generator regression loss eta^2 mean |v|^2", "data^2"),
                            "fit_residual": Variable(
                                ("run", "time"), "float64",
                                "generator fit residual of the step after this record: RMS|G_new(z) - G_old(z) - "
                                "eta v| / RMS|eta v| over the evaluation latents (0: step absorbed, 1: no move)", "1"),
                            "start_mmd2": Variable(
                                ("run", "time"), "float64",
                                "generator start = 'init': MMD^2 of the fitted generator to a fresh [init] sample "
                                "(first record only)", "1")}),
)}

METHODS: dict[str, type] = {name: r.cls for name, r in RECORDS.items()}


def record(name: str) -> MethodRecord:
    try:
        return RECORDS[name]
    except KeyError:
        raise ValueError(f"method: unknown method {name!r}; expected one of {list(RECORDS)}") from None


def get(name: str) -> type:
    return record(name).cls
