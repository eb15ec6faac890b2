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

Adding a method is one module here plus one line in :data:`METHODS`.
"""

from __future__ import annotations

from typing import Any, Protocol

from .generator.method import GeneratorMethod
from .particles.method import ParticlesMethod

__all__ = ["Method", "METHODS", "get"]


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


METHODS: dict[str, type] = {"particles": ParticlesMethod, "generator": GeneratorMethod}


def get(name: str) -> type:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"method: unknown method {name!r}; expected one of {list(METHODS)}") from None
