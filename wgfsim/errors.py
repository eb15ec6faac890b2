"""One vocabulary for refusing a value: :class:`OptionError` names the owner, key, value and what was expected.

Every layer that checks an option raises it (the flows' ``Params``, the
generator's configs, targets, metrics); the scenario layer only prefixes the
file and the key path, reading ``key`` and ``expected`` from the error instead
of re-parsing its text.  It is a ``ValueError``, so the CLI reports it as one
line with exit code 2.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["OptionError", "NonFiniteError", "ConvergenceError", "ConvergenceWarning", "show_value", "boolean", "number"]


def show_value(value) -> str:
    """A value as the user wrote it in TOML, with its type where that may be the mistake."""
    if isinstance(value, str):
        return f'"{value}" (a string)'
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return f"{list(value)!r} (a list)"
    if isinstance(value, float):
        return f"{value!r} (a float)"
    return repr(value)


class OptionError(ValueError):
    """``owner: option 'key' expected <expected>, got <value>``.

    Attributes
    ----------
    owner : str
        Who refused it: a flow's name, ``generator``, ``mlp``, a target kind.
    key : str
        The option.
    value : object
        What was given.
    expected : str
        What would have been accepted, in words (``a positive number``).
    """

    def __init__(self, owner: str, key: str, value, expected: str, *, hint: str | None = None):
        self.owner, self.key, self.value, self.expected, self.hint = owner, key, value, expected, hint
        text = f"{owner}: option {key!r} expected {expected}, got {value!r}"
        super().__init__(text + (f"; {hint}" if hint else ""))


class NonFiniteError(ValueError):
    """A flow's velocity or energy came out NaN or inf from finite inputs (an overflow of float64/float32).

    Raised by :class:`wgfsim.flows.Field` (and so by :func:`wgfsim.velocity`,
    :func:`wgfsim.energy` and every run) instead of returning the non-finite
    array: the inputs or the options (``epsilon``, ``affinity_floor``,
    ``lambda_``, coordinates near 1e200) are beyond what the arithmetic holds.
    In a run it fails that run (records kept); a stored ``energy`` metric is
    NaN instead.
    """


class ConvergenceError(ValueError):
    """An iterative solve (KALE's Newton method) could not meet its tolerance for these inputs and options.

    A ``ValueError``: at the command line one line and exit code 2 (the
    options are the user's to change, e.g. a larger ``lambda_``).
    """


class ConvergenceWarning(RuntimeWarning):
    """An iterative solve stopped at its iteration limit with its tolerance unmet (Sinkhorn's ``max_iter``).

    The result is returned (warm-started runs converge over steps) but may be
    far from the converged one; the message names the iterations used and
    the error reached.  Turn it into an error with
    ``warnings.simplefilter("error", wgfsim.errors.ConvergenceWarning)``.
    """


# ---------------------------------------------------------------- the one boolean and number validator


def boolean(owner: str, key: str, value) -> bool:
    """``value`` if it is a boolean (Python's or NumPy's), else :class:`OptionError`.

    ``"false"``, ``0``, ``1``, NaN, a list or a table are refused: taken by
    their truthiness, ``"false"`` and NaN would read as true.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise OptionError(owner, key, value, "true or false (a boolean)")


def number(owner: str, key: str, value, *, integer: bool = False, minimum=None, maximum=None,
           open_minimum: bool = False, expected: str | None = None, why: str = ""):
    """``value`` as an ``int`` (``integer``) or a ``float`` within ``[minimum, maximum]``, else :class:`OptionError`.

    Booleans, strings, NaN, infinities, lists and tables are refused; an
    integer option refuses ``1.0`` and ``1e11`` (floats) too.  ``open_minimum``
    excludes ``minimum`` itself (a positive number: ``minimum=0,
    open_minimum=True``).  ``expected`` replaces the generated wording; ``why``
    is appended to it (what the range protects).
    """
    kind = "integer" if integer else "number"
    if expected is None:
        if minimum is not None and maximum is not None:
            expected = f"a{'n' if integer else ''} {kind} in {'(' if open_minimum else '['}{minimum:g}, {maximum:g}]"
        elif minimum == 0 and open_minimum:
            expected = f"a positive {kind}"
        elif minimum == 0:
            expected = f"a non-negative {kind}"
        elif minimum is not None:
            expected = f"a{'n' if integer else ''} {kind} {'>' if open_minimum else '>='} {minimum:g}"
        else:
            expected = f"a{'n' if integer else ' finite'} {kind}"
        if why:
            expected += f" ({why})"
    ok = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, ok):
        raise OptionError(owner, key, value, expected)
    if not integer and not math.isfinite(value):
        raise OptionError(owner, key, value, expected)
    if minimum is not None and (value < minimum or (open_minimum and value == minimum)):
        raise OptionError(owner, key, value, expected)
    if maximum is not None and value > maximum:
        raise OptionError(owner, key, value, expected)
    return int(value) if integer else float(value)
