"""The generator's fit residual: how much of one drift step the network absorbed.

For one outer step from parameters ``theta_old`` to ``theta_new`` with step
``eta`` (``drift_step``) and the step's field ``v`` (the flow evaluated with
the step's generated batch as the particle measure and the step's target
batch)::

    r = RMS_e |G_new(z_e) - (G_old(z_e) + eta v(G_old(z_e)))| / RMS_e |eta v(G_old(z_e))|

over the evaluation latents ``z_e`` (``RMS_e |u| = sqrt(mean_e sum_dims u^2)``).
``r = 0``: the network moved every evaluation sample exactly by the Euler
step of the particle flow (the generator absorbed the whole step); ``r = 1``
with ``G_new = G_old``: it moved nowhere.  ``v`` at the evaluation samples
is the flow's ``field_at`` (a massless test point in the step's measure,
:func:`wgfsim.flows.field_at`).  Flows with no field at arbitrary points
(Sinkhorn, sliced, exact W2: their field is a coupling of the batch) are
measured on the step's own batch latents instead, where the regression
targets ``t_i = x_i + eta v_i`` are known.  The raw parameters are used,
never the moving average: the residual is the step's, not the sampler's.
"""

from __future__ import annotations

import math

from ...backend import array_namespace, to_numpy
from ...flows import field_at, get as get_flow
from .mlp import apply

__all__ = ["fit_residual", "residual_of"]


def residual_of(moved, displacement) -> float:
    """``RMS |moved - displacement| / RMS |displacement|`` for (n, d) arrays (NaN when the displacement is 0)."""
    xp = array_namespace(moved)
    den = float(xp.sqrt(xp.mean(xp.sum(displacement * displacement, axis=1))))
    diff = moved - displacement
    num = float(xp.sqrt(xp.mean(xp.sum(diff * diff, axis=1))))
    return num / den if den > 0 else math.nan


def fit_residual(params_old: dict, params_new: dict, mlp, eta: float, batch: dict, z_eval, flow: str,
                 flow_params: dict, backend: str = "auto") -> float:
    """The fit residual ``r`` of one step (module docstring).

    ``batch`` holds the step's arrays: ``z`` (B, latent), ``x`` = G_old(z)
    (B, d), ``y`` the target batch (M, d), ``x_target`` = x + eta v (B, d);
    ``z_eval`` (n, latent) the evaluation latents.
    """
    xp = array_namespace(batch["x"])
    if get_flow(flow).field_at is None:
        moved = apply(params_new, batch["z"], mlp) - batch["x"]  # (B, d)
        return residual_of(moved, batch["x_target"] - batch["x"])
    z = xp.asarray(z_eval, dtype=batch["x"].dtype)
    old = apply(params_old, z, mlp)  # (n, d)
    v = field_at(flow, to_numpy(old), to_numpy(batch["x"]), to_numpy(batch["y"]), backend=backend, **flow_params)
    step = xp.asarray(v, dtype=old.dtype) * eta  # (n, d)
    return residual_of(apply(params_new, z, mlp) - old, step)
