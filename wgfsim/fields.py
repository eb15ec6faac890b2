"""A flow's field at arbitrary points and its derivatives: the non-gradient structure (Gretton et al. Prop. 3.2, eq. 35-39).

* :func:`field_at` - a flow's field at arbitrary points with the particles held fixed.
* :func:`jacobian`, :func:`curl`, :func:`relative_curl` - central differences of it.
"""

from __future__ import annotations

import numpy as np

from . import flows as _flows

__all__ = ["field_at", "jacobian", "curl", "relative_curl"]


def _as2d(a, name) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (points, dim), got shape {arr.shape}")
    return arr


def field_at(flow: str, z, x, y, *, backend: str = "auto", **params) -> np.ndarray:
    """The field of ``flow`` at evaluation points ``z`` (G, d) for particles ``x`` (N, d) and targets ``y`` (M, d).

    Float64 NumPy in and out; uniform weights.  The flow's own evaluation
    (:func:`wgfsim.flows.field_at`, the registry's ``field_at``): ``z`` is a
    massless test point that enters no normaliser of the particle system.
    """
    z, x, y = _as2d(z, "z"), _as2d(x, "x"), _as2d(y, "y")
    if not (z.shape[1] == x.shape[1] == y.shape[1]):
        raise ValueError(f"z, x, y: dimensions differ ({z.shape[1]}, {x.shape[1]}, {y.shape[1]})")
    return np.asarray(_flows.field_at(flow, z, x, y, backend=backend, **params), dtype=np.float64)


def _default_h(x, y) -> float:
    pts = np.concatenate([x, y], axis=0)
    spread = float(np.max(np.ptp(pts, axis=0))) if pts.shape[0] > 1 else 1.0
    return 1e-4 * max(spread, 1e-8)


def jacobian(flow: str, x, y, grid, *, h: float | None = None, backend: str = "auto", **params):
    """Central-difference Jacobian of :func:`field_at` at 2-D points ``grid`` (G, 2).

    ``J[g, a, b] = (v_a(z + h e_b) - v_a(z - h e_b)) / (2h)``, error ``O(h^2)``
    (truncation) plus ``O(eps_machine |v| / h)`` (rounding).  Default ``h`` is
    ``1e-4`` times the spread of the points.  Returns ``(J (G, 2, 2), v (G, 2))``.
    """
    grid = _as2d(grid, "grid")
    if grid.shape[1] != 2:
        raise ValueError(f"grid: the curl is defined here for 2-D fields, got points of dimension {grid.shape[1]}")
    x, y = _as2d(x, "x"), _as2d(y, "y")
    h = _default_h(x, y) if h is None else float(h)
    g = grid.shape[0]
    e = np.eye(2) * h
    stencil = np.concatenate([grid, grid + e[0], grid - e[0], grid + e[1], grid - e[1]], axis=0)  # (5G, 2)
    vals = field_at(flow, stencil, x, y, backend=backend, **params)
    v, vxp, vxm, vyp, vym = (vals[i * g : (i + 1) * g] for i in range(5))
    J = np.empty((g, 2, 2))
    J[:, :, 0] = (vxp - vxm) / (2 * h)
    J[:, :, 1] = (vyp - vym) / (2 * h)
    return J, v


def curl(flow: str, x, y, grid, *, h: float | None = None, backend: str = "auto", **params):
    """Scalar curl ``dv2/dx - dv1/dy`` of the field at 2-D points ``grid`` (G, 2), by central differences.

    Each grid point gets its own stencil of half-width ``h`` (default
    ``1e-4`` times the spread of the particles and targets), so the grid
    spacing does not limit the accuracy.  A gradient field (MMD: ``v = -sigma^2
    grad f``) has zero curl; what remains is the differencing error.
    Returns ``(curl (G,), field (G, 2))``.
    """
    J, v = jacobian(flow, x, y, grid, h=h, backend=backend, **params)
    return J[:, 1, 0] - J[:, 0, 1], v


def relative_curl(flow: str, x, y, grid, **kw) -> float:
    """``max |curl| / max ||J||_F`` over the grid: the antisymmetric share of the field's derivative (0 for a gradient)."""
    J, _ = jacobian(flow, x, y, grid, **kw)
    c = J[:, 1, 0] - J[:, 0, 1]
    return float(np.max(np.abs(c)) / np.max(np.linalg.norm(J, axis=(1, 2))))


