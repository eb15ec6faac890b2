"""The scenario layer's checks: one message grammar ``<file>: <key.path>: <what>; expected <what>``.

:class:`Checker` holds the typed getters every section uses (integers,
positive numbers, choices, tables, known keys with a did-you-mean); each
failure raises :class:`~.spec.ScenarioError`, an
:class:`~wgfsim.errors.OptionError` whose ``owner`` is the file and ``key``
the key path.  Flow options are judged by the flow's own ``Params``
(:func:`check_flow_params`), target options by the target kind
(:func:`build_dist`); this module only restates their errors with the file
and the key path.
"""

from __future__ import annotations

import difflib
from typing import NoReturn, Sequence

from .. import flows as _flows
from .. import targets as _targets
from ..errors import OptionError, boolean, number, show_value
from .spec import DistSpec, FlowSpec, ScenarioError

__all__ = ["Checker", "join", "hint", "show", "axis_values", "check_flow_params", "build_dist"]

show = show_value


def hint(key, choices) -> str | None:
    found = difflib.get_close_matches(str(key), list(choices), n=1)
    return found[0] if found else None


class Checker:
    """Builds the one-line errors: file, key path, what was wrong, what was expected."""

    def __init__(self, source: str, overridden: dict[str, str]):
        self.source = source
        self.overridden = overridden  # key path -> override text

    def fail(self, path: str, what: str, expected: str | None = None, hint: str | None = None) -> NoReturn:
        msg = f"{self.source}: {path}: {what}" if path else f"{self.source}: {what}"
        if expected:
            msg += f"; expected {expected}"
        if hint:
            msg += f"; did you mean {hint!r}?"
        origin = self._override_for(path)
        if origin:
            msg += f" (set by override {origin!r})"
        raise ScenarioError(msg, source=self.source, path=path or None)

    def _override_for(self, path: str) -> str | None:
        for opath, text in self.overridden.items():
            if path == opath or path.startswith(opath + ".") or path.startswith(opath + "["):
                return text
        return None

    # -- typed getters; each returns the normalised value or fails naming the key

    def table(self, value, path: str, example: str) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"got {show(value)}", f"a table ({example})")
        return value

    def keys(self, table: dict, path: str, known: Sequence[str]) -> None:
        for key in table:
            if key not in known:
                self.fail(join(path, key), "unknown key", f"one of {', '.join(known)}", hint(key, known))

    # integers, positive numbers and booleans follow the one rule of the error vocabulary
    # (wgfsim.errors.number and boolean, also used by the flows' Params and the generator's configs)

    def integer(self, value, path: str, minimum: int = 1, what: str = "") -> int:
        expected = ("a positive integer" if minimum == 1 else f"an integer >= {minimum}") + (f" ({what})" if what else "")
        try:
            return number(self.source, path, value, integer=True, minimum=minimum, expected=expected)
        except OptionError:
            self.fail(path, f"got {value!r}" if _typed(value, int) else f"got {show(value)}", expected)

    def positive(self, value, path: str, what: str = "") -> float:
        expected = "a positive number" + (f" ({what})" if what else "")
        try:
            return number(self.source, path, value, minimum=0, open_minimum=True, expected=expected)
        except OptionError:
            self.fail(path, f"got {value!r}" if _typed(value, (int, float)) else f"got {show(value)}", expected)

    def boolean(self, value, path: str) -> bool:
        try:
            return boolean(self.source, path, value)
        except OptionError as err:
            self.fail(path, f"got {show(value)}", err.expected)

    def string(self, value, path: str, expected: str = "a non-empty string") -> str:
        if not isinstance(value, str) or not value:
            self.fail(path, f"got {show(value)}", expected)
        return value

    def choice(self, value, path: str, choices: Sequence[str], noun: str = "value") -> str:
        expected = f"one of {', '.join(choices)}"
        if not isinstance(value, str):
            self.fail(path, f"got {show(value)}", expected)
        if value not in choices:
            self.fail(path, f'unknown {noun} "{value}"', expected, hint(value, choices))
        return value

    def choices(self, value, path: str, choices: Sequence[str], example: str, noun: str = "value") -> tuple[str, ...]:
        """A non-empty list of distinct strings from ``choices``."""
        expected = f"a non-empty list drawn from {', '.join(choices)}, e.g. {example}"
        if not isinstance(value, list) or not value:
            self.fail(path, f"got {show(value)}", expected)
        for i, item in enumerate(value):
            self.choice(item, f"{path}[{i}]", choices, noun)
            if item in value[:i]:
                self.fail(f"{path}[{i}]", f'"{item}" is listed twice', "each name once")
        return tuple(value)

    def require(self, table: dict, key: str, path: str, expected: str):
        if key not in table:
            self.fail(join(path, key), "missing", expected)
        return table[key]


def _typed(value, types) -> bool:
    """Whether the value has the right type (then a failure is its range: shown bare, not with its type)."""
    return isinstance(value, types) and not isinstance(value, bool)


def join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def axis_values(chk: Checker, path: str, value) -> list:
    """The values of a sweep axis (a non-empty list)."""
    if not value:
        chk.fail(path, "an empty list sweeps nothing", "a value or a non-empty list of values to sweep")
    return list(value)


def build_dist(chk: Checker, section: str, point: DistSpec, index: dict[str, int], axes_keys: set[str]) -> _targets.Target:
    """Build one data point's Target, restating a TargetError with the file and key path."""
    try:
        return point.build()
    except _targets.TargetError as err:
        if err.option is None:
            chk.fail(section, err.what, err.expected, err.hint)
        path = f"{section}.{err.option}"
        if err.option in index and err.option in axes_keys:
            path += f"[{index[err.option]}]"  # the swept value that failed
        chk.fail(path, err.what + (f" (kind {point.kind!r})" if "kind" in index else ""), err.expected, err.hint)


def check_flow_params(chk: Checker, i: int, spec: FlowSpec, params: dict, index: dict[str, int]):
    """The flow's own ``Params`` of one expanded point (validated there); a failure blames the option that fails."""
    try:
        return _flows.make_params(spec.name, **params)
    except (ValueError, TypeError) as err:
        whole = err
    culprit = None
    for key, value in params.items():  # find the option that fails on its own
        try:
            _flows.make_params(spec.name, **{key: value})
        except (ValueError, TypeError) as err:
            culprit, whole = key, err
            break
    path = f"flow[{i}]"
    if culprit is not None:
        path += f".{culprit}"
        if culprit in index:
            path += f"[{index[culprit]}]"
    if isinstance(whole, OptionError):
        chk.fail(path, f"got {show(whole.value)}", f"{whole.expected} (flow {spec.name!r})")
    chk.fail(path, str(whole).removeprefix(f"{spec.name}: "))

