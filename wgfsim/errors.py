"""One vocabulary for refusing a value: :class:`OptionError` names the owner, key, value and what was expected.

Every layer that checks an option raises it (the flows' ``Params``, the
generator's configs, targets, metrics); the scenario layer only prefixes the
file and the key path, reading ``key`` and ``expected`` from the error instead
of re-parsing its text.  It is a ``ValueError``, so the CLI reports it as one
line with exit code 2.
"""

from __future__ import annotations

__all__ = ["OptionError", "NonFiniteError", "ConvergenceError", "ConvergenceWarning", "show_value"]


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
