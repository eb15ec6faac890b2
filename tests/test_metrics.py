"""Metrics against truths no line of wgfsim produced: SciPy, POT, closed forms, brute-force counts."""

import importlib.util
import math

import numpy as np
import ot
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist, pdist
from scipy.stats import energy_distance as scipy_energy_distance

from wgfsim import metrics
from wgfsim.errors import OptionError

CPU_BACKENDS = ["numpy", "numba"]


def dense_mmd2(x, y, sigma):
    """Biased MMD^2 straight from its definition with SciPy's pairwise distances."""
    k = lambda u, v: np.exp(-cdist(u, v, "sqeuclidean") / (2 * sigma**2))  # noqa: E731
    return k(x, x).mean() - 2 * k(x, y).mean() + k(y, y).mean()


def gaussian_mean_kernel(d, sigma, var, mean_sq):
    """E exp(-|Z|^2 / (2 sigma^2)) for Z ~ N(mu, var I_d), |mu|^2 = mean_sq (Gaussian integral)."""
    return (sigma**2 / (sigma**2 + var)) ** (d / 2) * math.exp(-mean_sq / (2 * (sigma**2 + var)))


def pot_entropic_ot(x, y, eps):
    """OT_eps = <P, C> + eps KL(P | a x b) with C = |x-y|^2/2, P from POT's log-domain Sinkhorn."""
    a, b = ot.unif(len(x)), ot.unif(len(y))
    c = 0.5 * cdist(x, y, "sqeuclidean")
    # eps >= 0.5 here: POT's plain alternating updates crawl on the self problems at small eps
    p = ot.sinkhorn(a, b, c, eps, method="sinkhorn_log", numItermax=20_000, stopThr=1e-11)
    nz = p > 0
    kl = np.sum(p[nz] * np.log(p[nz] / np.outer(a, b)[nz]))
    return float(np.sum(p * c) + eps * kl)


# ------------------------------------------------------------------ MMD^2


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_mmd2_matches_dense_formula(rng, backend):
    x = rng.normal(size=(37, 3))
    y = rng.normal(loc=0.5, size=(29, 3))
    for sigma in (0.3, 1.0, 4.0):
        assert metrics.mmd2(x, y, bandwidth=sigma, backend=backend) == pytest.approx(dense_mmd2(x, y, sigma), rel=1e-10)
    # several bandwidths sum their MMD^2
    expected = dense_mmd2(x, y, 0.5) + dense_mmd2(x, y, 2.0)
    assert metrics.mmd2(x, y, bandwidth=(0.5, 2.0), backend=backend) == pytest.approx(expected, rel=1e-10)


def test_mmd2_at_is_one_mmd2_per_bandwidth(rng):
    x = rng.normal(size=(31, 2))
    y = rng.normal(loc=0.3, size=(23, 2))
    got = metrics.mmd2_at(x, y, bandwidths=[0.05, 0.5, 3.0])
    assert got.shape == (3,)
    np.testing.assert_allclose(got, [dense_mmd2(x, y, s) for s in (0.05, 0.5, 3.0)], rtol=1e-10)
    out = metrics.compute(x, y, ["mmd2_at"], options={"mmd2_at": {"bandwidths": (0.2,)}})
    np.testing.assert_allclose(out["mmd2_at"], [dense_mmd2(x, y, 0.2)], rtol=1e-10)
    assert np.isnan(metrics.mmd2_at(np.full((3, 2), np.nan), y, bandwidths=[0.5])).all()  # a diverged cloud
    for bad in ([], [0.1, -1.0], ["wide"], 0.5, None):
        with pytest.raises(OptionError, match="mmd2_bandwidths"):
            metrics.mmd2_at(x, y, bandwidths=bad)


def test_mmd2_median_heuristic_is_pooled_median(rng):
    x = rng.normal(size=(40, 2))
    y = rng.normal(loc=1.0, size=(50, 2))
    sigma = np.median(pdist(np.concatenate([x, y])))  # fewer than 1000 points: no subsampling
    assert metrics.mmd2(x, y) == pytest.approx(dense_mmd2(x, y, sigma), rel=1e-10)


def test_mmd2_between_gaussians_matches_closed_form():
    # x ~ N(0, I), y ~ N(m, s^2 I) in d = 2; E k for a Gaussian difference is a Gaussian integral.
    # The V-statistic keeps the i == k terms (k = 1), so its mean is the population MMD^2
    # plus (1 - E k(X,X'))/N + (1 - E k(Y,Y'))/M.
    d, s, sigma, n = 2, 0.5, 1.0, 2000
    m = np.array([2.0, 0.0])
    exx = gaussian_mean_kernel(d, sigma, 2.0, 0.0)
    eyy = gaussian_mean_kernel(d, sigma, 2 * s**2, 0.0)
    exy = gaussian_mean_kernel(d, sigma, 1.0 + s**2, float(m @ m))
    expected = exx + eyy - 2 * exy + (1 - exx) / n + (1 - eyy) / n
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, d))
    y = m + s * rng.normal(size=(n, d))
    # MC standard deviation of the estimate at this n: ~0.009 (measured over 12 seeds); allow ~4.5 of them
    assert metrics.mmd2(x, y, bandwidth=sigma) == pytest.approx(expected, abs=0.04)


# ------------------------------------------------------------------ energy distance


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_energy_distance_is_square_of_scipy_in_1d(rng, backend):
    # scipy.stats.energy_distance(u, v) = sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) for 1-D samples
    u = rng.normal(size=53)
    v = rng.standard_t(3, size=41) + 0.3
    ours = metrics.energy_distance(u[:, None], v[:, None], backend=backend)
    assert ours == pytest.approx(scipy_energy_distance(u, v) ** 2, rel=1e-10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_energy_distance_matches_cdist_in_2d(rng, backend):
    x = rng.normal(size=(45, 2))
    y = rng.normal(scale=2.0, size=(33, 2))
    expected = 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()
    assert metrics.energy_distance(x, y, backend=backend) == pytest.approx(expected, rel=1e-10)


# ------------------------------------------------------------------ Sinkhorn divergence


def pot_sinkhorn_divergence(x, y, eps):
    return pot_entropic_ot(x, y, eps) - 0.5 * pot_entropic_ot(x, x, eps) - 0.5 * pot_entropic_ot(y, y, eps)


@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_sinkhorn_matches_pot_debiased_divergence(rng, eps):
    x = rng.normal(size=(30, 2))
    y = rng.normal(loc=(1.0, 0.0), scale=0.7, size=(40, 2))
    ours = metrics.sinkhorn(x, y, epsilon=eps, tol=1e-11, max_iter=100_000)
    assert ours == pytest.approx(pot_sinkhorn_divergence(x, y, eps), rel=1e-8)


def test_sinkhorn_default_epsilon_is_relative_to_reference_median(rng):
    x = rng.normal(size=(20, 2))
    y = 3.0 * rng.normal(size=(26, 2))  # a wide reference (325 pairs: an odd count, one median)
    eps = 0.01 * np.median(pdist(y)) ** 2
    assert metrics.sinkhorn_epsilon(y) == pytest.approx(eps, rel=1e-12)
    assert metrics.sinkhorn(x, y) == pytest.approx(metrics.sinkhorn(x, y, epsilon=eps), rel=1e-9)


@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_sinkhorn_of_a_translated_copy_is_half_the_squared_shift(rng, eps):
    # with the cost |x-y|^2/2 a translation by tau only adds terms separable in x and y, so for
    # every eps OT_eps(q, q+tau) = OT_eps(q, q) + |tau|^2/2 and S_eps(q, q+tau) = |tau|^2/2 exactly
    x = rng.normal(size=(15, 2))
    y = x + np.array([3.0, 0.0])
    assert metrics.sinkhorn(x, y, epsilon=eps, tol=1e-10, max_iter=100_000) == pytest.approx(4.5, rel=1e-8)


# ------------------------------------------------------------------ exact W2


def test_w2_matches_pot_emd2(rng):
    x = rng.normal(size=(31, 3))
    y = rng.normal(loc=0.7, size=(47, 3))
    expected = math.sqrt(ot.emd2(ot.unif(31), ot.unif(47), cdist(x, y, "sqeuclidean")))
    assert metrics.w2(x, y) == pytest.approx(expected, rel=1e-9)


def test_w2_matches_linear_assignment_for_equal_sizes(rng):
    # uniform samples of equal size: the optimal plan is a permutation (Birkhoff)
    x = rng.normal(size=(40, 2))
    y = rng.uniform(-2, 2, size=(40, 2))
    cost = cdist(x, y, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    assert metrics.w2(x, y) == pytest.approx(math.sqrt(cost[rows, cols].mean()), rel=1e-9)


def test_w2_is_nan_above_max_points(rng):
    x = rng.normal(size=(30, 2))
    y = rng.normal(size=(20, 2))
    assert math.isnan(metrics.w2(x, y, max_points=25))
    assert not math.isnan(metrics.w2(x, y, max_points=30))


# ------------------------------------------------------------------ mode masses, velocity RMS


def test_mode_mass_matches_brute_force_count(rng):
    centres = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    x = rng.normal(scale=2.0, size=(500, 2))
    counts = np.bincount(cdist(x, centres).argmin(axis=1), minlength=3)
    mm = metrics.mode_mass(x, centres)
    np.testing.assert_array_equal(mm, counts / 500)
    assert mm.sum() == pytest.approx(1.0, abs=1e-15)


def test_mode_mass_ties_go_to_the_first_centre():
    centres = np.array([[-1.0, 0.0], [1.0, 0.0]])
    x = np.array([[0.0, 5.0], [0.0, -1.0], [0.9, 0.0], [-3.0, 0.0]])  # two points equidistant
    np.testing.assert_array_equal(metrics.mode_mass(x, centres), [0.75, 0.25])


def test_velocity_rms_closed_form():
    v = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # |v|^2 = 25, 0, 1, 0
    assert metrics.velocity_rms(v) == pytest.approx(math.sqrt(26 / 4), rel=1e-15)


# ------------------------------------------------------------------ compute() and the registry


def test_compute_returns_floats_and_mode_mass(rng):
    x = rng.normal(size=(25, 2))
    y = rng.normal(loc=0.5, size=(30, 2))
    centres = np.array([[-1.0, 0.0], [1.0, 0.0]])
    out = metrics.compute(
        x, y, ["mmd2", "energy_distance", "sinkhorn", "w2"], centres=centres,
        options={"mmd2": {"bandwidth": 0.8}, "sinkhorn": {"epsilon": 0.5, "tol": 1e-11, "max_iter": 100_000}},
    )
    assert set(out) == {"mmd2", "energy_distance", "sinkhorn", "w2", "mode_mass"}
    assert all(type(out[k]) is float for k in ("mmd2", "energy_distance", "sinkhorn", "w2"))
    assert out["mmd2"] == pytest.approx(dense_mmd2(x, y, 0.8), rel=1e-10)
    assert out["energy_distance"] == pytest.approx(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())
    assert out["sinkhorn"] == pytest.approx(pot_sinkhorn_divergence(x, y, 0.5), rel=1e-6)
    assert out["w2"] == pytest.approx(math.sqrt(ot.emd2(ot.unif(25), ot.unif(30), cdist(x, y, "sqeuclidean"))))
    np.testing.assert_array_equal(out["mode_mass"], np.bincount(cdist(x, centres).argmin(1), minlength=2) / 25)
    assert set(metrics.METRICS) == {"mmd2", "mmd2_at", "energy_distance", "sinkhorn", "w2"}


def test_compute_gives_nan_for_a_diverged_cloud(rng):
    x = rng.normal(size=(10, 2))
    x[3, 1] = np.nan
    out = metrics.compute(x, rng.normal(size=(12, 2)), list(metrics.METRICS), centres=np.zeros((2, 2)),
                          options={"mmd2_at": {"bandwidths": (0.5, 2.0)}})
    assert all(np.isnan(out[k]).all() for k in metrics.METRICS)
    assert np.isnan(out["mode_mass"]).all()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x, y: metrics.compute(x, y, ["mmd"]), "metrics: option 'names' expected some of .*, got \\['mmd'\\]"),
        (lambda x, y: metrics.compute(x, y, ["mode_mass"]), "centres"),
        (lambda x, y: metrics.compute(x, y, ["sinkhorn"], options={"sinkhorn": {"eps": 1.0}}), "option \"options\\['sinkhorn'\\]\" expected some of \\['epsilon', 'tol', 'max_iter'\\].*got \\['eps'\\]"),
        (lambda x, y: metrics.compute(x, y, ["w2"], options={"w3": {}}), "metrics: option 'options' expected per-metric options of some of"),
        (lambda x, y: metrics.mmd2(x[:, 0], y), "x: expected a 2-D array"),
        (lambda x, y: metrics.energy_distance(x, y[:, :1]), "dimensions differ"),
        (lambda x, y: metrics.mmd2(x, y, bandwidth=-1.0), "mmd2: option 'bandwidth' expected a positive"),
        (lambda x, y: metrics.sinkhorn(x, y, epsilon=0.0), "sinkhorn: option 'epsilon' expected a positive"),
        (lambda x, y: metrics.mmd2(x, np.full_like(y, np.nan)), "ref: contains NaN"),
        (lambda x, y: metrics.mode_mass(x, np.zeros((2, 3))), "centres"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(rng, call, match):
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(9, 2))
    with pytest.raises(ValueError, match=match):
        call(x, y)


def _gpu_ready() -> bool:
    from wgfsim.backend import cupy_status

    return cupy_status()[0] and importlib.util.find_spec("wgfsim.primitives.gpu") is not None


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs CuPy, a GPU and wgfsim.primitives.gpu")
def test_compute_on_cupy_matches_numpy(rng):
    import cupy

    x = rng.normal(size=(300, 2))
    y = rng.normal(loc=0.3, size=(200, 2))
    centres = np.array([[-1.0, 0.0], [1.0, 0.0]])
    names = ["mmd2", "energy_distance", "sinkhorn", "w2"]
    host = metrics.compute(x, y, names, centres=centres)
    dev = metrics.compute(cupy.asarray(x), cupy.asarray(y), names, centres=cupy.asarray(centres))
    for name in names:
        assert dev[name] == pytest.approx(host[name], rel=1e-6)
    np.testing.assert_array_equal(dev["mode_mass"], host["mode_mass"])


def test_option_mistakes_are_option_errors_with_their_parts(rng):
    from wgfsim.errors import OptionError

    x, y = rng.normal(size=(8, 2)), rng.normal(size=(9, 2))
    with pytest.raises(OptionError) as err:
        metrics.sinkhorn(x, y, epsilon=-2.0)
    assert (err.value.owner, err.value.key, err.value.value) == ("sinkhorn", "epsilon", -2.0)
    with pytest.raises(OptionError) as err:
        metrics.compute(x, y, ["mmd2", "nope"])
    assert (err.value.owner, err.value.key, err.value.value) == ("metrics", "names", ["nope"])
