"""Every flow against the truths of docs/math.md#truths."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import wgfsim
from wgfsim import analytic

ot = pytest.importorskip("ot")


# ---------------------------------------------------------------- 1. two atoms
def stacked_atoms(D, pi, alpha, n=40, m=50, dim=1):
    """Particles and targets stacked exactly on -D and +D (counts exact for these weights)."""
    n_left, m_left = round(alpha * n), round(pi * m)
    assert np.isclose(n_left, alpha * n) and np.isclose(m_left, pi * m)
    x = np.zeros((n, dim))
    y = np.zeros((m, dim))
    x[:n_left, 0], x[n_left:, 0] = -D, D
    y[:m_left, 0], y[m_left:, 0] = -D, D
    return x, y


TWO_ATOM_CASES = [(D, s) for D in (0.5, 1.0, 1.5, 2.0) for s in (0.5, 1.0, 2.0)]


@pytest.mark.truth("kl_kde")
@pytest.mark.parametrize("D,sigma", TWO_ATOM_CASES)
@pytest.mark.parametrize("dim", [1, 2])
def test_two_atoms_kl_kde_exact(D, sigma, dim):
    pi, alpha = 0.6, 0.3
    x, y = stacked_atoms(D, pi, alpha, dim=dim)
    v = wgfsim.velocity("kl_kde", x, y, bandwidth=sigma)
    expected = analytic.two_atom_kl_kde(D, sigma, pi, alpha)
    np.testing.assert_allclose(v[x[:, 0] > 0, 0], expected, rtol=1e-10)
    np.testing.assert_allclose(v[:, 1:], 0.0, atol=1e-15)


@pytest.mark.truth("sinkhorn_proxy")
@pytest.mark.parametrize("D,sigma", TWO_ATOM_CASES)
def test_two_atoms_sinkhorn_proxy_exact(D, sigma):
    pi, alpha = 0.6, 0.3
    x, y = stacked_atoms(D, pi, alpha)
    v = wgfsim.velocity("sinkhorn_proxy", x, y, epsilon=sigma**2)
    np.testing.assert_allclose(v[x[:, 0] > 0, 0], analytic.two_atom_sinkhorn_proxy(D, sigma, pi, alpha), rtol=1e-10)


def test_two_atoms_kernel_flows_vanish_like_kappa():
    # kappa -> 0: KL-KDE ~ -2D kappa [pi/(1-pi) - alpha/(1-alpha)], proxy ~ sqrt((1-pi)/alpha) x KL-KDE
    pi, alpha, sigma = 0.6, 0.3, 1.0
    for D in (4.0, 6.0):
        x, y = stacked_atoms(D, pi, alpha)
        kl = wgfsim.velocity("kl_kde", x, y, bandwidth=sigma)[-1, 0]
        proxy = wgfsim.velocity("sinkhorn_proxy", x, y, epsilon=sigma**2)[-1, 0]
        k = np.exp(-2 * D * D / sigma**2)
        np.testing.assert_allclose(kl, analytic.two_atom_kl_kde_asymptotic(D, sigma, pi, alpha), rtol=5 * k + 1e-12)
        np.testing.assert_allclose(proxy / kl, np.sqrt((1 - pi) / alpha), rtol=20 * np.sqrt(k) + 1e-12)
        assert abs(kl) < 1e-10 * 2 * D  # the kernel flows cannot move mass between distant atoms


@pytest.mark.truth("w2_exact")
@pytest.mark.parametrize("D", [0.5, 3.0, 10.0])
def test_two_atoms_w2_exact(D):
    pi, alpha = 0.6, 0.3
    x, y = np.array([[-D], [D]]), np.array([[-D], [D]])
    v = wgfsim.velocity("w2_exact", x, y, a=np.array([alpha, 1 - alpha]), b=np.array([pi, 1 - pi]))
    np.testing.assert_allclose(v[1, 0], analytic.two_atom_w2(D, 1.0, pi, alpha), rtol=1e-12)
    np.testing.assert_allclose(v[0, 0], 0.0, atol=1e-12)  # the under-filled atom stays
    # stacked particles: the mean over the overcrowded atom's particles is the barycentric value
    xs, ys = stacked_atoms(D, pi, alpha)
    vs = wgfsim.velocity("w2_exact", xs, ys)
    np.testing.assert_allclose(vs[xs[:, 0] > 0, 0].mean(), analytic.two_atom_w2(D, 1.0, pi, alpha), rtol=1e-12)


@pytest.mark.truth("sinkhorn")
def test_two_atoms_sinkhorn_tends_to_w2():
    D, pi, alpha = 1.0, 0.6, 0.3
    x, y = np.array([[-D], [D]]), np.array([[-D], [D]])
    a, b = np.array([alpha, 1 - alpha]), np.array([pi, 1 - pi])
    w2 = analytic.two_atom_w2(D, 1.0, pi, alpha)
    errors = []
    for eps in (1.0, 0.3, 0.1, 0.03, 0.01):
        v = wgfsim.velocity("sinkhorn", x, y, a=a, b=b, epsilon=eps, tol=1e-13, max_iter=100_000)
        errors.append(abs(v[1, 0] - w2))
    assert all(e2 < e1 or e2 < 1e-12 for e1, e2 in zip(errors, errors[1:])), errors  # down to round-off
    assert errors[-1] < 1e-6 * abs(w2)


# ---------------------------------------------------------------- 2. consistency
CONSISTENT = [
    ("kl_kde", dict(bandwidth=0.7)),
    ("kl_kde", dict(bandwidth=[0.3, 1.0], kernel="laplace")),
    ("mmd", dict(bandwidth=0.7)),
    ("mmd", dict(bandwidth=0.7, kernel="laplace")),
    ("sinkhorn", dict(epsilon=0.1, tol=1e-12, max_iter=10_000)),
    ("sinkhorn_proxy", dict(epsilon=0.2)),
    ("sinkhorn_proxy", dict(epsilon=[0.05, 0.2], cost="euclidean")),
    ("kl_kde_wgf", dict(bandwidth=0.7, n_mc=4)),
    ("sliced", dict(n_projections=20)),
    ("w2_exact", {}),
]


@pytest.mark.parametrize("name,params", CONSISTENT)
def test_zero_velocity_when_q_equals_p(rng, name, params):
    x = rng.normal(size=(120, 2))
    v = wgfsim.velocity(name, x, x.copy(), **params)
    assert np.abs(v).max() < 1e-9


def test_weighted_consistency(rng):
    x = rng.normal(size=(50, 2))
    w = rng.random(50)
    w /= w.sum()
    for name, params in [("kl_kde", dict(bandwidth=0.5)), ("mmd", dict(bandwidth=0.5)), ("sinkhorn", dict(epsilon=0.1, tol=1e-12, max_iter=10_000))]:
        # Sinkhorn converges slowly with weights of 1e-5: its cross and self plans agree to the tolerance reached
        assert np.abs(wgfsim.velocity(name, x, x, a=w, b=w, **params)).max() < (1e-7 if name == "sinkhorn" else 1e-9)


def _rms_at_q_equals_p(rng, n, **params):
    x = rng.normal(size=(n, 2))
    v = wgfsim.velocity("drift_da2", x, x.copy(), **params)
    return np.sqrt(np.mean(np.sum(v**2, axis=1)))


def test_da2_self_mask_shift_is_order_one_over_n(rng):
    # a temperature wide against the particle spacing: four times the particles, a quarter of the shift
    norms = [_rms_at_q_equals_p(rng, n, temperatures=1.0) for n in (100, 400, 1600)]
    ratios = np.array(norms[:-1]) / np.array(norms[1:])
    assert np.all((ratios > 2.5) & (ratios < 6.0)), (norms, ratios)
    # the published temperatures resolve single neighbours, so the shift decays slower, but it is small
    # against the field between distinct distributions (unit data scale)
    assert _rms_at_q_equals_p(rng, 1600) < 0.03


# ---------------------------------------------------------------- 3. energy dissipation
# dE/dh along x + h v equals -c * mean_i |v_i|^2 with c from v_i = -(c N / 2)... derived per flow in the docstrings
DISSIPATION = [
    ("mmd", dict(bandwidth=0.8), lambda p: 2.0 / p["bandwidth"] ** 2),
    ("sinkhorn", dict(epsilon=0.3, tol=1e-13, max_iter=20_000), lambda p: 1.0),
    ("sliced", dict(n_projections=30), lambda p: 2.0),
    ("w2_exact", {}, lambda p: 2.0),
    ("kl_kde_wgf", dict(bandwidth=0.8, quadrature="gauss_hermite", n_nodes=6), lambda p: 1.0 / p["bandwidth"] ** 2),
]


@pytest.mark.parametrize("name,params,rate", DISSIPATION, ids=[d[0] for d in DISSIPATION])
def test_one_euler_step_decreases_the_energy_at_the_predicted_rate(rng, name, params, rate):
    x = rng.normal(size=(60, 2))
    y = rng.normal(size=(70, 2)) * 0.7 + np.array([1.0, -0.5])
    v = wgfsim.velocity(name, x, y, rng=7, **params)
    e0 = wgfsim.energy(name, x, y, rng=7, **params)
    h = 1e-4
    e_plus = wgfsim.energy(name, x + h * v, y, rng=7, **params)
    e_minus = wgfsim.energy(name, x - h * v, y, rng=7, **params)
    assert e_plus < e0
    # the field is minus the energy's gradient up to the flow's constant: a central difference checks it
    slope = (e_plus - e_minus) / (2 * h)
    np.testing.assert_allclose(slope, -rate(params) * np.mean(np.sum(v * v, axis=1)), rtol=1e-4)


# ---------------------------------------------------------------- energies against independent libraries
@pytest.mark.truth("mmd")
def test_mmd2_energy_equals_dense_formula(rng):
    from scipy.spatial.distance import cdist

    x, y, s = rng.normal(size=(40, 3)), rng.normal(size=(55, 3)) + 0.5, 0.9
    k = lambda u, v: np.exp(-cdist(u, v, "sqeuclidean") / (2 * s * s))  # noqa: E731
    expected = k(x, x).mean() - 2 * k(x, y).mean() + k(y, y).mean()
    np.testing.assert_allclose(wgfsim.energy("mmd", x, y, bandwidth=s), expected, rtol=1e-12)


def test_sinkhorn_divergence_equals_pot(rng):
    x, y, eps = rng.normal(size=(40, 2)), rng.normal(size=(50, 2)) + 1.0, 0.2
    a, b = np.full(40, 1 / 40), np.full(50, 1 / 50)

    def ot_eps(u, v, wu, wv):
        C = 0.5 * ot.dist(u, v)
        _, log = ot.sinkhorn(wu, wv, C, eps, method="sinkhorn_log", stopThr=1e-14, numItermax=100_000, log=True)
        return eps * (wu @ log["log_u"] + wv @ log["log_v"])  # <a, f> + <b, g> with f = eps log u

    expected = ot_eps(x, y, a, b) - 0.5 * ot_eps(x, x, a, a) - 0.5 * ot_eps(y, y, b, b)
    np.testing.assert_allclose(wgfsim.energy("sinkhorn", x, y, epsilon=eps), expected, rtol=1e-8)


def test_sliced_energy_equals_pot_for_equal_sizes(rng):
    from wgfsim.flows.sliced import directions

    x, y = rng.normal(size=(64, 3)), rng.normal(size=(64, 3)) * 2
    theta = directions(np.random.default_rng(5), 40, 3)
    swd = ot.sliced_wasserstein_distance(x, y, projections=theta.T)
    np.testing.assert_allclose(wgfsim.energy("sliced", x, y, rng=5, n_projections=40), swd**2, rtol=1e-12)


@pytest.mark.truth("kl_kde_wgf")
def test_kl_kde_wgf_energy_equals_quadrature_in_1d(rng):
    from scipy.integrate import quad
    from scipy.stats import norm

    x, y, s = rng.normal(size=(6, 1)), rng.normal(size=(8, 1)) + 0.5, 0.7
    qs = lambda z: norm.pdf(z, x[:, 0], s).mean()  # noqa: E731
    ps = lambda z: norm.pdf(z, y[:, 0], s).mean()  # noqa: E731
    kl, _ = quad(lambda z: qs(z) * np.log(qs(z) / ps(z)), -12, 12, limit=200, epsabs=1e-13)
    got = wgfsim.energy("kl_kde_wgf", x, y, bandwidth=s, quadrature="gauss_hermite", n_nodes=60)
    np.testing.assert_allclose(got, kl, rtol=1e-8)


def test_w2_energy_equals_pot_and_assignment(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 1
    C = ot.dist(x, y)  # squared Euclidean
    np.testing.assert_allclose(wgfsim.energy("w2_exact", x, y), ot.emd2(np.full(30, 1 / 30), np.full(30, 1 / 30), C), rtol=1e-12)
    rows, cols = linear_sum_assignment(C)
    np.testing.assert_allclose(wgfsim.energy("w2_exact", x, y), C[rows, cols].mean(), rtol=1e-12)


# ---------------------------------------------------------------- 5. independent libraries: velocities
def test_sinkhorn_velocity_equals_pot_plans(rng):
    # eps = 0.2: POT's alternating updates on the self problem OT(q, q) crawl at smaller eps
    x, y, eps = rng.normal(size=(50, 2)), rng.normal(size=(70, 2)) * 0.5 + 1.0, 0.2
    a, b = np.full(50, 1 / 50), np.full(70, 1 / 70)
    P = ot.sinkhorn(a, b, 0.5 * ot.dist(x, y), eps, method="sinkhorn_log", stopThr=1e-11, numItermax=20_000)
    Pxx = ot.sinkhorn(a, a, 0.5 * ot.dist(x, x), eps, method="sinkhorn_log", stopThr=1e-11, numItermax=20_000)
    expected = (P @ y) / a[:, None] - (Pxx @ x) / a[:, None]
    v = wgfsim.velocity("sinkhorn", x, y, epsilon=eps, tol=1e-13, max_iter=200_000)
    np.testing.assert_allclose(v, expected, atol=1e-6 * np.abs(expected).max())


def test_sinkhorn_warm_start_needs_fewer_iterations(rng):
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 1.0
    field = wgfsim.Field("sinkhorn", epsilon=0.1, tol=1e-5, max_iter=5000)
    v = field(x, y)
    cold = field.ctx.state["sinkhorn_iterations"]
    x = x + 0.001 * v
    v_warm = field(x, y)
    warm = field.ctx.state["sinkhorn_iterations"]
    v_cold = wgfsim.velocity("sinkhorn", x, y, epsilon=0.1, tol=1e-5, max_iter=5000)
    # linear convergence: a start 1e-3 away saves the iterations that close the first decades
    assert warm < cold / 2.5, (warm, cold)
    np.testing.assert_allclose(v_warm, v_cold, atol=1e-3 * np.abs(v_cold).max())


def test_sinkhorn_warm_start_follows_the_points_not_their_order(rng):
    """Potentials are functions of the points: shuffled rows must restart at convergence.

    The warm start moves the previous potentials onto the new points by
    c-transforms, so a permutation of x and y (as a generator's fresh
    latents or a fresh target minibatch produce) starts converged: one
    iteration, against ~100 cold.  Reusing potentials by index would pair
    each value with a stranger and restart from far away.
    """
    x, y = rng.normal(size=(150, 2)), rng.normal(size=(170, 2)) + 1.0
    field = wgfsim.Field("sinkhorn", epsilon=0.1, tol=1e-7, max_iter=5000)
    v = field(x, y)
    cold = field.ctx.state["sinkhorn_iterations"]
    px, py = rng.permutation(150), rng.permutation(170)
    v_shuffled = field(x[px], y[py])
    warm = field.ctx.state["sinkhorn_iterations"]
    assert cold > 50 and warm <= 2, (cold, warm)
    np.testing.assert_allclose(v_shuffled, v[px], atol=1e-5 * np.abs(v).max())


def test_sinkhorn_eps_scaling_reaches_the_same_potentials(rng):
    x, y = rng.normal(size=(80, 2)), rng.normal(size=(90, 2)) + 2.0
    v1 = wgfsim.velocity("sinkhorn", x, y, epsilon=0.01, tol=1e-10, max_iter=50_000)
    v2 = wgfsim.velocity("sinkhorn", x, y, epsilon=0.01, tol=1e-10, max_iter=50_000, scaling=0.5)
    np.testing.assert_allclose(v1, v2, atol=1e-7)


def test_w2_exact_velocity_is_the_assignment(rng):
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) * 2
    rows, cols = linear_sum_assignment(ot.dist(x, y))
    v = wgfsim.velocity("w2_exact", x, y)
    np.testing.assert_allclose(v[rows], y[cols] - x[rows], atol=1e-12)


@pytest.mark.truth("sliced")
def test_sliced_map_is_exact_in_one_dimension(rng):
    # in 1-D every direction is +-1 and the field is the monotone rearrangement, sorted to sorted
    x, y = rng.normal(size=(50, 1)), rng.exponential(size=(50, 1))
    v = wgfsim.velocity("sliced", x, y, n_projections=3)
    order = np.argsort(x[:, 0])
    np.testing.assert_allclose((x + v)[order, 0], np.sort(y[:, 0]), atol=1e-12)


@pytest.mark.parametrize("n,m", [(60, 45), (6000, 5000)])  # one thread; several threads
def test_sliced_ties_are_broken_by_index_as_in_a_slow_reference(rng, n, m):
    # duplicated particles tie in every direction: which copy gets which target is decided by
    # index (rank r -> quantile (r + 1/2)/N, interpolated among the sorted targets)
    from wgfsim.flows.sliced import directions

    x = rng.normal(size=(n, 2))
    x[n // 3: n // 3 + 7] = x[5]
    y = rng.normal(size=(m, 2)) * 1.5 + 0.5
    theta = directions(np.random.default_rng(9), 8, 2)
    ref = np.zeros_like(x)
    for t in theta:
        px, qy = x @ t, np.sort(y @ t)
        ranked = sorted(range(n), key=lambda i: (px[i], i))  # stable: ties by index
        for r, i in enumerate(ranked):
            pos = (r + 0.5) * m / n - 0.5
            j0 = min(max(int(np.floor(pos)), 0), m - 1)
            j1 = min(j0 + 1, m - 1)
            frac = min(max(pos - j0, 0.0), 1.0)
            ref[i] += (qy[j0] + frac * (qy[j1] - qy[j0]) - px[i]) * t
    v = wgfsim.velocity("sliced", x, y, rng=np.random.default_rng(9), n_projections=8)
    np.testing.assert_allclose(v, ref / 8, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- 4. Gaussian closures
def _fit_linear(x, v):
    """Least-squares A with v ~ x A^T (the field is linear through the origin)."""
    return np.linalg.lstsq(x, v, rcond=None)[0].T


def test_kl_kde_field_is_the_affine_closed_form():
    rng = np.random.default_rng(1)
    C, S, sigma, n = np.diag([2.0, 0.5]), np.eye(2), 0.8, 8_000
    x = rng.multivariate_normal(np.zeros(2), C, size=n)
    y = rng.multivariate_normal(np.zeros(2), S, size=n)
    A_hat = _fit_linear(x, wgfsim.velocity("kl_kde", x, y, bandwidth=sigma))
    A = analytic.kl_kde_matrix(C, S, sigma)
    assert np.linalg.norm(A_hat - A) < 0.05 * np.linalg.norm(A)


def test_sliced_field_is_v_of_c():
    from wgfsim.flows.sliced import directions

    rng = np.random.default_rng(2)
    C, n = np.array([[3.0, 0.8], [0.8, 0.6]]), 20_000
    x = rng.multivariate_normal(np.zeros(2), C, size=n)
    y = rng.standard_normal((n, 2))
    A_hat = _fit_linear(x, wgfsim.velocity("sliced", x, y, rng=3, n_projections=100))
    # V(C) averaged over the same 100 directions: what is left is the finite-N quantile error
    V_L = analytic.sliced_matrix(C, directions=directions(np.random.default_rng(3), 100, 2))
    assert np.linalg.norm(A_hat - V_L) < 0.03 * np.linalg.norm(V_L)
    # and over the whole circle, within the Monte-Carlo error of 100 directions
    V = analytic.sliced_matrix(C)
    assert np.linalg.norm(V_L - V) < 0.25 * np.linalg.norm(V)


@pytest.mark.parametrize(
    "name,params,tol", [("w2_exact", {}, 0.1), ("sinkhorn", dict(epsilon=0.02, scaling=0.7, max_iter=300, tol=1e-4), 0.1)]
)
def test_w2_and_small_eps_sinkhorn_fields_are_c_to_the_minus_half(name, params, tol):
    rng = np.random.default_rng(4)
    C, n = np.diag([4.0, 0.25]), 600
    x = rng.multivariate_normal(np.zeros(2), C, size=n)
    y = rng.standard_normal((n, 2))
    A_hat = _fit_linear(x, wgfsim.velocity(name, x, y, **params))
    A = analytic.w2_matrix(C)
    assert np.linalg.norm(A_hat - A) < tol * np.linalg.norm(A)
