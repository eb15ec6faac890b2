"""Per-flow settings the studies draw from the flow registry: gap decay, options at a scale, step size.

A study that puts every flow of the registry on one problem needs, per flow,

* how its field decays across a gap of width ``s`` (:func:`gap_decay`, the
  registry's ``gap_decay(params) -> (law, length)``): ``"gaussian"``
  (``exp(-s^2 / (2 l^2))``), ``"laplace"`` (``exp(-s / l)``) or ``"none"``
  (transport flows, whose field does not decay);
* its options: flows whose field decays take the study's length scale sigma
  (the registry's ``options_at_scale``); transport flows take their
  ``study_options(dim)`` and, where they have a length (Sinkhorn's
  ``sqrt(eps)``), ``transport_length`` << the gap;
* a stable Euler step and a horizon (:func:`flow_settings`): the registry's
  ``study_step(params)`` where the flow declares one (the critics, whose fields
  grow like ``1/lambda`` on samples: ``0.5 lambda^0.4`` for KALE and
  ``0.25 lambda^0.4`` for DrMMD, the curve through the steps at which halving
  the step moved no half-time by more than 6 %: 0.5 and 0.2, 0.25 and 0.1 at
  lambda = 1 and 0.1), else 1.0 (kernel flows at sigma = 1,
  docs/results.md); transport flows move the mass in about one unit of time
  whatever the gap, so they take steps of 0.1 over a short horizon.

The guide a study draws for a flow (:func:`log_inverse_decay`) is the log of
``1/kappa(s)`` with ``kappa`` its gap decay at the separation ``s``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .. import flows as _flows

__all__ = ["gap_decay", "FlowSetting", "flow_settings", "log_inverse_decay", "parse_flow_list", "is_transport"]


def toml_value(v) -> str:
    """``v`` written as a TOML value (booleans, strings, numbers, lists of them): the studies' scenario templates."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(u) for u in v) + "]"
    return repr(float(v)) if isinstance(v, float) else repr(v)


def gap_decay(name: str, params) -> tuple[str, float]:
    """``(law, length)`` of flow ``name``'s field across a gap (the registry's ``gap_decay``).

    ``params``: the flow's Params (or a dict of options).
    """
    flow = _flows.get(name)
    if isinstance(params, dict):
        params = _flows.make_params(name, **params)
    if flow.gap_decay is None:
        raise ValueError(f"{name}: the flow record declares no gap_decay")
    return flow.gap_decay(params)


def is_transport(name: str) -> bool:
    """Whether the flow's field does not decay across a gap (at its default options)."""
    return gap_decay(name, {})[0] == "none"


def log_inverse_decay(law: str, length: float, s):
    """``log 1/kappa(s)``: ``s^2 / (2 l^2)`` (gaussian), ``s / l`` (laplace), 0 (none)."""
    if law == "gaussian":
        return s * s / (2.0 * length * length)
    if law == "laplace":
        return s / length
    return 0.0 * s


@dataclass(frozen=True)
class FlowSetting:
    """One flow's settings in a study: options, Euler step, number of steps, record spacing, gap law."""

    flow: str
    options: dict
    step_size: float
    steps: int
    record_every: int
    law: str
    length: float

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.options.items() if k == "lambda_")
        return f"{self.flow} {extra}".strip()


def flow_settings(name: str, sigma: float, *, horizon: float = 600.0, transport_horizon: float = 3.0,
                  transport_length: float = math.sqrt(0.1), dim: int = 1, max_records: int = 300,
                  extra: dict | None = None) -> FlowSetting:
    """The settings of flow ``name`` at length scale ``sigma`` (module docstring).

    ``horizon``: the time flows whose field decays run (``steps = horizon / step``);
    ``transport_horizon``: the same for the others, which take
    ``transport_length`` as their length where they have one;
    ``extra``: options given by the caller (e.g. ``lambda_``), over the registry's.
    """
    flow = _flows.get(name)
    extra = dict(extra or {})
    if is_transport(name):
        options = dict(flow.study_options(dim)) if flow.study_options is not None else {}
        if flow.options_at_scale is not None:
            options.update(flow.options_at_scale(transport_length))
        options.update(extra)
        eta, t_end = 0.1, transport_horizon
    else:
        options = {**(flow.options_at_scale(sigma) if flow.options_at_scale is not None else {}), **extra}
        params = _flows.make_params(name, **options)
        eta = float(f"{flow.study_step(params):.2g}") if flow.study_step is not None else 1.0
        t_end = horizon
    law, length = gap_decay(name, options)
    steps = max(1, int(round(t_end / eta)))
    return FlowSetting(name, options, eta, steps, max(1, -(-steps // max_records)), law, length)


def parse_flow_list(text: str) -> list[tuple[str, dict]]:
    """``"kl_kde,kale:lambda_=0.1"`` -> ``[("kl_kde", {}), ("kale", {"lambda_": 0.1})]`` (values read as numbers)."""
    out = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, *opts = item.split(":")
        if name not in _flows.names():
            raise ValueError(f"flows: unknown flow {name!r}; expected one of {_flows.names()}")
        options = {}
        for o in opts:
            key, _, value = o.partition("=")
            if not value:
                raise ValueError(f"flows: {item!r}: expected NAME:KEY=VALUE, got {o!r}")
            try:
                options[key] = float(value) if any(c in value for c in ".e") else int(value)
            except ValueError:
                options[key] = value
        out.append((name, options))
    return out
