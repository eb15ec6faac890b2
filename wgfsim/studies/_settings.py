"""Per-flow settings the studies draw from the flow registry: gap decay, options at a scale, step size.

A study that puts every flow of the registry on one problem needs, per flow,

* how its field decays across a gap of width ``s`` (:func:`gap_decay`): the
  registry's ``gap_decay(params) -> (law, length)`` with ``law`` one of
  ``"gaussian"`` (``exp(-s^2 / (2 l^2))``), ``"laplace"`` (``exp(-s / l)``)
  or ``"none"`` (transport flows, whose field does not decay);
* its options at the study's length scale sigma (the registry's
  ``options_at_scale``), or its transport options where it has no scale;
* a stable Euler step and a horizon (:func:`flow_settings`): kernel flows
  step 1.0 (sigma = 1, docs/results.md); the critic flows' fields grow like
  ``1/lambda`` on samples, so their step follows lambda,
  ``eta = c lambda^0.4`` with ``c = 0.5`` (KALE) and ``0.25`` (DrMMD, whose
  field is near twice KALE's): the curve through the steps at which halving
  the step moved no half-time by more than 6 % (0.5 and 0.2 for KALE, 0.25
  and 0.1 for DrMMD at lambda = 1 and 0.1); transport flows move the mass
  in about one unit of time whatever the gap, so they take steps of 0.1 over
  a short horizon.

The guide a study draws for a flow (:func:`guide_slope`) is the log of
``1/kappa`` with ``kappa`` its gap decay at the separation ``s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import flows as _flows

__all__ = ["gap_decay", "FlowSetting", "flow_settings", "log_inverse_decay", "parse_flow_list", "TRANSPORT_OPTIONS"]

# transport flows at the options the mass-transfer study gives them (sinkhorn: eps << separation^2, the paper's
# 100 iterations warm-started; sliced: in 1-D one direction is exact)
TRANSPORT_OPTIONS = {"sinkhorn": {"epsilon": 0.1, "max_iter": 100}, "sliced": {"n_projections": 1}, "w2_exact": {}}
# critic flows: step c * lambda^0.4 (module docstring)
_CRITIC_STEP = {"kale": 0.5, "drmmd": 0.25}


def gap_decay(name: str, params) -> tuple[str, float]:
    """``(law, length)`` of flow ``name``'s field across a gap, from the registry's ``gap_decay``.

    ``params``: the flow's Params (or a dict of options).
    """
    flow = _flows.get(name)
    if isinstance(params, dict):
        params = _flows.make_params(name, **params)
    own = getattr(flow, "gap_decay", None)
    if own is not None:
        return own(params)
    # until the registry carries gap_decay: the kernel's law from its options, transport flows none
    if flow.length_scale is None or name in TRANSPORT_OPTIONS:
        return "none", math.nan
    kernel = getattr(params, "kernel", "gaussian")
    cost = getattr(params, "cost", "sqeuclidean")
    law = "laplace" if kernel == "laplace" or cost == "euclidean" else "gaussian"
    return law, float(flow.length_scale(params))


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
                  max_records: int = 300, extra: dict | None = None) -> FlowSetting:
    """The settings of flow ``name`` at length scale ``sigma`` (module docstring).

    ``horizon``: the time kernel flows run (``steps = horizon / step``);
    ``transport_horizon``: the same for flows whose field does not decay;
    ``extra``: options given by the caller (e.g. ``lambda_``), over the
    registry's ``options_at_scale(sigma)``.
    """
    flow = _flows.get(name)
    extra = dict(extra or {})
    if flow.options_at_scale is not None and name not in TRANSPORT_OPTIONS:
        options = {**flow.options_at_scale(sigma), **extra}
    else:
        options = {**TRANSPORT_OPTIONS.get(name, {}), **extra}
    law, length = gap_decay(name, options)
    if law == "none":
        eta, t_end = 0.1, transport_horizon
    else:
        lam = float(options.get("lambda_", 1.0))
        eta = _CRITIC_STEP[name] * lam ** 0.4 if name in _CRITIC_STEP else 1.0
        eta = float(f"{eta:.2g}")
        t_end = horizon
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
