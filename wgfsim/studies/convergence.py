"""Whether a stored run's iterative solver converged: what the studies flag or refuse.

A run of the ``sinkhorn`` flow records per stored step the iterations its
Sinkhorn solves used and the marginal error they reached
(``sinkhorn_iterations``, ``sinkhorn_error``; :mod:`wgfsim.io.schema`).  Warm
starts converge over steps, so a cold first step may miss the tolerance in a
run that is fine; a run is **unconverged** when its error is at or above the
flow's ``tol`` (from ``flow_params``) at its last record, or at more than half
of its records.  Runs of other flows, and files written before the variables
existed, count as converged (nothing says otherwise).
"""

from __future__ import annotations

import json

import numpy as np

__all__ = ["unconverged", "POLICIES", "check_policy"]

POLICIES = ("flag", "refuse")


def check_policy(policy: str) -> str:
    """``"flag"`` (mark unconverged points in the results) or ``"refuse"`` (raise); anything else is refused."""
    if policy not in POLICIES:
        raise ValueError(f"unconverged: expected one of {list(POLICIES)}, got {policy!r}")
    return policy


def unconverged(ds, dim: str = "run") -> np.ndarray:
    """A boolean per ``dim`` entry of ``ds``: True where the run's Sinkhorn did not converge (rule above)."""
    n = ds.sizes[dim]
    out = np.zeros(n, dtype=bool)
    if "sinkhorn_error" not in ds or "flow_params" not in ds:
        return out
    errors = np.asarray(ds["sinkhorn_error"].values, dtype=float).reshape(n, -1)  # (run, time)
    texts = np.asarray(ds["flow_params"].values).reshape(n)
    for i in range(n):
        try:
            tol = float(json.loads(str(texts[i])).get("tol", np.inf))
        except (ValueError, TypeError, AttributeError):
            continue
        e = errors[i][np.isfinite(errors[i])]
        if e.size:
            missed = e >= tol
            out[i] = bool(missed[-1]) or missed.mean() > 0.5
    return out
