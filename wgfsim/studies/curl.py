"""Curl maps and Gretton et al.'s toy example: the proxy and DA2 fields are not gradients (Prop. 3.2, eq. 35-39)."""

from __future__ import annotations

import math

import numpy as np

from ..fields import _as2d, curl, jacobian

__all__ = ["CURL_FLOWS", "plot_curl_maps", "toy_example", "default_curl_setup", "main"]


def default_curl_setup(seed: int = 0):
    """A 2-D configuration with structure: target two_modes (separation 2, std 0.3), particles a shifted blob."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([rng.normal([-1.0, 0.0], 0.3, (60, 2)), rng.normal([1.0, 0.0], 0.3, (60, 2))])
    x = rng.normal([0.4, 0.6], 0.5, (80, 2))
    return x, y


CURL_FLOWS = (
    ("mmd", {"bandwidth": 1.0}),
    ("sinkhorn_proxy", {"epsilon": 1.0}),
    ("drift_da2", {"temperatures": 1.0, "cost": "sqeuclidean"}),
)


def plot_curl_maps(x=None, y=None, *, flows=CURL_FLOWS, extent=(-2.5, 2.5, -2.0, 2.5), grid_size: int = 41):
    """Curl maps ``dv2/dx - dv1/dy`` of several fields (default MMD, Sinkhorn proxy, DA2) on one grid.

    The colour is the curl divided by the largest Jacobian norm of that
    panel's field (a dimensionless share, common colour scale), with the
    field's arrows on top; particles are dots, targets crosses.  The same
    sigma for every flow (bandwidth 1, ``epsilon = temperature = sigma^2 = 1``,
    DA2 with the ``sqeuclidean`` cost) so the panels are comparable.
    Returns a ``matplotlib.figure.Figure``.
    """
    from matplotlib.figure import Figure

    if x is None or y is None:
        x, y = default_curl_setup()
    x, y = _as2d(x, "x"), _as2d(y, "y")
    gx = np.linspace(extent[0], extent[1], grid_size)
    gy = np.linspace(extent[2], extent[3], grid_size)
    X, Y = np.meshgrid(gx, gy)
    grid = np.stack([X.ravel(), Y.ravel()], axis=1)
    fig = Figure(figsize=(4.2 * len(flows), 4.0), dpi=100, layout="constrained")
    maps = []
    for name, params in flows:
        J, v = jacobian(name, x, y, grid, **params)
        c = (J[:, 1, 0] - J[:, 0, 1]) / np.max(np.linalg.norm(J, axis=(1, 2)))
        maps.append((name, params, c, v))
    lim = max(float(np.max(np.abs(c))) for _, _, c, _ in maps) or 1.0
    for k, (name, params, c, v) in enumerate(maps):
        ax = fig.add_subplot(1, len(flows), k + 1)
        im = ax.pcolormesh(gx, gy, c.reshape(X.shape), cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto")
        step = max(1, grid_size // 13)
        sl = (slice(None, None, step), slice(None, None, step))
        ax.quiver(X[sl], Y[sl], v[:, 0].reshape(X.shape)[sl], v[:, 1].reshape(X.shape)[sl], color="0.2", width=0.004)
        ax.scatter(y[:, 0], y[:, 1], marker="x", s=8, color="k", lw=0.6)
        ax.scatter(x[:, 0], x[:, 1], marker=".", s=6, color="tab:orange")
        ax.set_title(f"{name}: max|curl|/max|J| = {np.max(np.abs(c)):.1e}", fontsize="small")
        ax.set_aspect("equal")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("curl of the field (Gretton et al. Prop. 3.2): MMD is a gradient, the proxy and DA2 are not", fontsize="small")
    return fig


# ================================================================ Gretton et al.'s toy example (reconstructed)


def _atoms_k(z, centres, weights, sigma):
    """``mu_k(z) = sum_j w_j k(z, c_j)`` and its gradient, for atoms; z (2,), centres (K, 2)."""
    diff = centres - z  # (K, 2)
    k = weights * np.exp(-np.sum(diff**2, axis=1) / (2 * sigma * sigma))  # (K,)
    return float(k.sum()), (k[:, None] * diff).sum(axis=0) / (sigma * sigma)


def toy_example(
    *,
    p_atoms=((0.0, 0.0),),
    p_weights=(1.0,),
    q_atoms=((1.0, 0.0), (0.0, 1.0)),
    q_weights=(0.5, 0.5),
    sigma: float = 1.0,
    point=(0.5, 0.0),
    n_per_unit: int = 4,
) -> dict:
    """Reconstruction of Gretton et al.'s toy example (eq. 37-39): the proxy field is not a gradient.

    The seed text lost the formulas of eq. 35-39; what survives is their
    structure, which we restore from the proxy's definition (docs/math.md#sinkhorn-proxy) in the population limit with the unnormalised Gaussian kernel
    ``k``: with ``p_k = p * k``, ``q_k = q * k`` and the reweighted measures
    ``p~ = p / sqrt(q_k)``, ``q~ = q / sqrt(q_k)``,

        S+ = p~_k / sqrt(p_k),   S- = q~_k / sqrt(q_k),   m+- = z + sigma^2 grad log (p~_k, q~_k)
        v  = S+ S- (m+ - m-) = sigma^2 Gamma grad psi                         (eq. 35)
        Gamma = p~_k q~_k / sqrt(p_k q_k)   (the pre-conditioner),   psi = log p~_k - log q~_k

    ``v`` is a gradient only if ``curl v = sigma^2 (d1 Gamma d2 psi - d2 Gamma d1 psi) = 0``, i.e.
    ``grad Gamma`` parallel to ``grad psi`` (eq. 36, the wedge product).  The paper's
    choice of ``p``, ``q`` and the point is lost; ours: ``p`` an atom at the origin,
    ``q`` two equal atoms at ``e1`` and ``e2``, ``sigma = 1``, evaluated at ``(0.5, 0)``.
    Then ``q~`` is ``q`` up to a constant, and ``grad log Gamma ^ grad psi =
    -grad log k(., 0) ^ grad log q_k``, non-zero wherever the directions to
    the origin and to q's local barycentre differ (eq. 37-39).

    The closed-form curl is checked against the finite-difference curl of
    :func:`field_at` for stacked atoms (``n_per_unit`` particles per unit of
    mass; the proxy of stacked atoms equals its population limit).

    Returns a dict with ``Gamma``, ``grad_Gamma``, ``grad_psi``, ``wedge``
    (``d1 Gamma d2 psi - d2 Gamma d1 psi``), ``curl_closed_form`` (``sigma^2 wedge``),
    ``curl_measured`` and ``field`` at the point.
    """
    pa, pw = np.asarray(p_atoms, float), np.asarray(p_weights, float)
    qa, qw = np.asarray(q_atoms, float), np.asarray(q_weights, float)
    z = np.asarray(point, float)
    s = float(sigma)
    qk_at_p = np.array([_atoms_k(c, qa, qw, s)[0] for c in pa])  # q_k at p's atoms
    qk_at_q = np.array([_atoms_k(c, qa, qw, s)[0] for c in qa])
    pt_w = pw / np.sqrt(qk_at_p)  # p~ weights
    qt_w = qw / np.sqrt(qk_at_q)  # q~ weights
    pk, gpk = _atoms_k(z, pa, pw, s)
    qk, gqk = _atoms_k(z, qa, qw, s)
    ptk, gptk = _atoms_k(z, pa, pt_w, s)
    qtk, gqtk = _atoms_k(z, qa, qt_w, s)
    gamma = ptk * qtk / math.sqrt(pk * qk)
    grad_log_gamma = gptk / ptk + gqtk / qtk - 0.5 * gpk / pk - 0.5 * gqk / qk
    grad_gamma = gamma * grad_log_gamma
    grad_psi = gptk / ptk - gqtk / qtk
    wedge = float(grad_gamma[0] * grad_psi[1] - grad_gamma[1] * grad_psi[0])
    # the particle implementation on stacked atoms (integer counts per atom)
    def stack(atoms, weights):
        counts = np.rint(np.asarray(weights) * n_per_unit * len(weights) / np.sum(weights)).astype(int)
        return np.repeat(atoms, counts, axis=0)

    xq, yp = stack(qa, qw), stack(pa, pw)
    c_meas, v = curl("sinkhorn_proxy", xq, yp, z[None, :], epsilon=s * s)
    return {
        "Gamma": gamma,
        "grad_Gamma": grad_gamma,
        "grad_psi": grad_psi,
        "wedge": wedge,
        "curl_closed_form": s * s * wedge,
        "curl_measured": float(c_meas[0]),
        "field": v[0],
        "field_closed_form": s * s * gamma * grad_psi,
    }


def main(argv=None) -> int:
    """``wgfsim study curl``: the curl maps (PNG) and the toy example's numbers."""
    import argparse

    ap = argparse.ArgumentParser(prog="wgfsim study curl", description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="outputs/curl_maps.png", help="the figure (PNG)")
    ap.add_argument("--grid-size", type=int, default=41)
    args = ap.parse_args(argv)
    fig = plot_curl_maps(grid_size=args.grid_size)
    pathlib_out = __import__("pathlib").Path(args.output)
    pathlib_out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pathlib_out)
    print(f"wrote {pathlib_out}")
    toy = toy_example()
    print(f"toy example: curl closed form {toy['curl_closed_form']:.6g}, measured {toy['curl_measured']:.6g}")
    return 0
