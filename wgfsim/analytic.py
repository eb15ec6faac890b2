"""Closed forms the flows are tested against (docs/math.md#two-atoms, docs/math.md#gaussian-closure).

Two atoms (Gretton et al. Section 3.3, Appendix D): target
``p = pi d_{-D} + (1-pi) d_{+D}``, model ``q = alpha d_{-D} + (1-alpha) d_{+D}``
with ``alpha < pi``, Gaussian kernel of bandwidth ``sigma``,
``kappa = exp(-2 D^2 / sigma^2)``; the functions give the velocity at ``x = +D``
(the overcrowded atom), along the axis of the atoms.

Gaussian closures (q = N(0, C), p = N(0, S)): the fields are linear,
``v(x) = A x``, so the covariance obeys ``dC/dt = A C + C A`` exactly in the
population limit; :func:`solve_covariance` integrates it with SciPy.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.integrate
import scipy.linalg

__all__ = [
    "kappa",
    "two_atom_kl_kde",
    "two_atom_kl_kde_asymptotic",
    "two_atom_sinkhorn_proxy",
    "two_atom_w2",
    "two_atom_kl_kde_laplace",
    "two_atom_mmd",
    "kl_kde_matrix",
    "sliced_matrix",
    "w2_matrix",
    "covariance_rhs",
    "solve_covariance",
]


def kappa(D: float, sigma: float) -> float:
    """``exp(-2 D^2 / sigma^2)``: the kernel between atoms at distance 2D."""
    return float(np.exp(-2.0 * D * D / (sigma * sigma)))


def two_atom_kl_kde(D, sigma, pi, alpha):
    """KL-KDE drift at +D (exact): ``-2D [pi k/((1-pi) + pi k) - alpha k/((1-alpha) + alpha k)]``."""
    k = kappa(D, sigma)
    return -2.0 * D * (pi * k / ((1 - pi) + pi * k) - alpha * k / ((1 - alpha) + alpha * k))


def two_atom_kl_kde_laplace(D, h, pi, alpha):
    """KL-KDE drift at +D with the Laplace kernel ``exp(-|x-y|/h)`` (exact; docs/math.md#two-atoms).

    The mean shift weighs the displacement ``y - x`` by the kernel, as for the
    Gaussian kernel, so the same form holds with ``k = exp(-2D/h)``:
    ``-2D [pi k/((1-pi) + pi k) - alpha k/((1-alpha) + alpha k)]``.
    """
    k = math.exp(-2.0 * D / h)
    return -2.0 * D * (pi * k / ((1 - pi) + pi * k) - alpha * k / ((1 - alpha) + alpha * k))


def two_atom_kl_kde_asymptotic(D, sigma, pi, alpha):
    """Its ``kappa -> 0`` form: ``-2D kappa [pi/(1-pi) - alpha/(1-alpha)]``."""
    return -2.0 * D * kappa(D, sigma) * (pi / (1 - pi) - alpha / (1 - alpha))


def two_atom_sinkhorn_proxy(D, sigma, pi, alpha):
    """Sinkhorn-proxy field at +D with ``eps = sigma^2`` (exact, docs/math.md#truth-1)."""
    k = kappa(D, sigma)
    cL = alpha + (1 - alpha) * k
    cR = alpha * k + (1 - alpha)
    rR = pi * k + (1 - pi)
    s_plus = pi * k / np.sqrt(rR * cL) + (1 - pi) / np.sqrt(rR * cR)
    s_minus = alpha * k / np.sqrt(cR * cL) + (1 - alpha) / cR
    return -2.0 * D * k / np.sqrt(cL) * (pi * s_minus / np.sqrt(rR) - alpha * s_plus / np.sqrt(cR))


def two_atom_mmd(D, sigma, pi, alpha):
    """MMD field at +D (Gaussian kernel, self pairs included): ``-2D kappa (pi - alpha)``.

    Only the atoms at ``-D`` contribute a displacement, with weights ``pi``
    (targets) and ``alpha`` (particles) (docs/math.md#two-atoms).
    """
    return -2.0 * D * kappa(D, sigma) * (pi - alpha)


def two_atom_w2(D, sigma, pi, alpha):
    """Barycentric W2 field at +D: ``-2D (pi - alpha)/(1 - alpha)``, independent of sigma."""
    return -2.0 * D * (pi - alpha) / (1 - alpha)


def kl_kde_matrix(C, S, sigma):
    """``A = sigma^2 [(C + sigma^2 I)^-1 - (S + sigma^2 I)^-1]``: the KL-KDE field is ``v = A x``."""
    C, S = np.atleast_2d(C), np.atleast_2d(S)
    eye = np.eye(C.shape[0])
    s2 = sigma * sigma
    return s2 * (np.linalg.inv(C + s2 * eye) - np.linalg.inv(S + s2 * eye))


def sliced_matrix(C, n_angles: int = 4096, rng=None, n_directions: int = 200_000, directions=None):
    """``V(C) = E_theta[((theta' C theta)^(-1/2) - 1) theta theta']`` towards N(0, I).

    In 2-D the expectation over the circle is a midpoint rule on ``n_angles``
    angles (spectrally accurate for this smooth periodic integrand); in higher
    dimension a Monte-Carlo average over ``n_directions`` uniform directions.
    Given ``directions`` (L, d), the average over exactly those: the field a
    finite number of projections produces.
    """
    C = np.atleast_2d(C)
    d = C.shape[0]
    if directions is not None:
        theta = np.asarray(directions, dtype=np.float64)
    elif d == 2:
        phi = (np.arange(n_angles) + 0.5) * (2 * np.pi / n_angles)
        theta = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    else:
        rng = np.random.default_rng(rng)
        theta = rng.standard_normal((n_directions, d))
        theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    q = np.einsum("ld,de,le->l", theta, C, theta)
    w = q ** -0.5 - 1.0
    return np.einsum("l,ld,le->de", w, theta, theta) / theta.shape[0]


def w2_matrix(C):
    """``C^(-1/2) - I``: the W2 field towards N(0, I) is ``v = (C^(-1/2) - I) x`` (C commuting with I)."""
    C = np.atleast_2d(C)
    return np.real(scipy.linalg.inv(scipy.linalg.sqrtm(C))) - np.eye(C.shape[0])


def covariance_rhs(field_matrix):
    """``dC/dt = A(C) C + C A(C)`` for a linear field ``v = A(C) x``."""

    def rhs(C):
        A = field_matrix(C)
        return A @ C + C @ A

    return rhs


def solve_covariance(rhs, C0, times, rtol=1e-10, atol=1e-12):
    """Integrate ``dC/dt = rhs(C)`` from ``C0`` and return C at ``times`` (T, d, d) (SciPy's RK45)."""
    C0 = np.atleast_2d(np.asarray(C0, dtype=np.float64))
    d = C0.shape[0]
    times = np.asarray(times, dtype=np.float64)

    def f(_, c):
        return rhs(c.reshape(d, d)).ravel()

    sol = scipy.integrate.solve_ivp(f, (0.0, float(times[-1])), C0.ravel(), t_eval=times, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"covariance ODE failed: {sol.message}")
    return sol.y.T.reshape(len(times), d, d)
