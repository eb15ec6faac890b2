"""Targets: sample moments against closed forms, exact atom masses, mode counts, files, errors.

The truths here are written from each distribution's definition (FFJORD's toy
sets for the 2-D toys, the mixture formulas, scipy quadrature for the spiral),
never from wgfsim's own code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from wgfsim import targets

N_MOMENTS = 200_000
Z = 5.0  # a 5-sigma band: the fixed seeds pass it with a wide margin, a wrong formula does not


def _spiral_moments():
    """Mean and covariance of FFJORD's 2spirals from its definition, by quadrature.

    t = 3 pi sqrt(u) has density 2 t / (3 pi)^2 on [0, 3 pi]; an arm is
    (-t cos t + U1, t sin t + U2) with U ~ U(0, 1/2); a random sign picks the
    arm, the result is divided by 3 and jittered by N(0, 0.1^2 I).
    """
    top = 3 * math.pi

    def e(f):
        return integrate.quad(lambda t: f(t) * 2 * t / top**2, 0, top, limit=400)[0]

    eu, eu2 = 0.25, 0.5**2 / 3
    ecos, esin = e(lambda t: t * math.cos(t)), e(lambda t: t * math.sin(t))
    exx = e(lambda t: (t * math.cos(t)) ** 2) - 2 * ecos * eu + eu2
    eyy = e(lambda t: (t * math.sin(t)) ** 2) + 2 * esin * eu + eu2
    exy = -e(lambda t: t * t * math.cos(t) * math.sin(t)) - ecos * eu + esin * eu + eu * eu
    cov = np.array([[exx, exy], [exy, eyy]]) / 9 + 0.01 * np.eye(2)  # the random sign makes the mean 0
    return np.zeros(2), cov


def _mixture_moments(centres, weights, std):
    c, w = np.asarray(centres, float), np.asarray(weights, float)
    mean = w @ c
    dev = c - mean
    return mean, std**2 * np.eye(c.shape[1]) + (w[:, None] * dev).T @ dev


_MOONS_COV = 4 * np.array([[0.75, 0.125 - 1 / math.pi], [0.125 - 1 / math.pi, 0.5625 - 1 / math.pi]]) + 0.2**2 * np.eye(2)
_R8 = 4 / 1.414

def _swiss_roll_moments():
    """Mean and covariance of the demo's swiss roll by quadrature over t ~ U(pi/2, 9 pi/2), plus the 0.03 jitter."""
    a, b, norm = math.pi / 2, 4.5 * math.pi, 4.5 * math.pi

    def e(f):  # E f(t) for t uniform on [a, b]
        return integrate.quad(f, a, b, limit=200)[0] / (b - a)

    m = np.array([e(lambda t: t * math.cos(t)), e(lambda t: t * math.sin(t))]) / norm
    s11 = e(lambda t: (t * math.cos(t)) ** 2) / norm**2
    s22 = e(lambda t: (t * math.sin(t)) ** 2) / norm**2
    s12 = e(lambda t: t * t * math.cos(t) * math.sin(t)) / norm**2
    cov = np.array([[s11, s12], [s12, s22]]) - np.outer(m, m) + 0.03**2 * np.eye(2)
    return m, cov


MOMENT_CASES = {
    "gaussian_full": (
        "gaussian",
        dict(mean=[1.0, -2.0, 0.5], cov=[[2.0, 0.3, 0.0], [0.3, 1.0, -0.4], [0.0, -0.4, 0.5]]),
        np.array([1.0, -2.0, 0.5]),
        np.array([[2.0, 0.3, 0.0], [0.3, 1.0, -0.4], [0.0, -0.4, 0.5]]),
    ),
    "gaussian_iso": ("gaussian", dict(dim=3, std=2.0), np.zeros(3), 4.0 * np.eye(3)),
    "gaussian_singular": ("gaussian", dict(cov=[[1.0, 1.0], [1.0, 1.0]]), np.zeros(2), np.ones((2, 2))),
    # two modes: mean (w1 - w0) s/2 e1, variance std^2 + s^2 w0 w1 along e1
    "two_modes": (
        "two_modes",
        dict(separation=3.0, weights=[0.3, 0.7], std=0.2, dim=3),
        np.array([0.6, 0.0, 0.0]),
        np.diag([0.04 + 9 * 0.21, 0.04, 0.04]),
    ),
    "two_modes_iid": (
        "two_modes",
        dict(separation=2.0, weights=[0.5, 0.5], std=0.5, dim=1, stratify=False),
        np.array([0.0]),
        np.array([[0.25 + 1.0]]),
    ),
    "mixture": (
        "mixture",
        dict(centres=[[0.0, 0.0], [3.0, 1.0], [-1.0, 4.0]], weights=[0.2, 0.5, 0.3], std=0.5),
        *_mixture_moments([[0.0, 0.0], [3.0, 1.0], [-1.0, 4.0]], [0.2, 0.5, 0.3], 0.5),
    ),
    # moons: E cos t = 0, E sin t = 2/pi for t ~ U(0, pi); x2 + (-1, -0.2) centres it at (0, 0.3)
    "moons": ("moons", dict(), np.array([0.0, 0.3]), _MOONS_COV),
    "eight_gaussians": ("eight_gaussians", dict(), np.zeros(2), (_R8**2 / 2 + (0.5 / 1.414) ** 2) * np.eye(2)),
    # x1 ~ U[-4, 4); x2 uniform on [-4, 4) too; E[x1 x2] = 4 * 1/4 from the parity coupling
    "checkerboard": ("checkerboard", dict(), np.zeros(2), np.array([[16 / 3, 1.0], [1.0, 16 / 3]])),
    "spiral": ("spiral", dict(), *_spiral_moments()),
    "swiss_roll": ("swiss_roll", dict(), *_swiss_roll_moments()),
    # the demo's checkerboard: 0.25 x (FFJORD's + N(0, 0.2^2 I)): the jitter adds 0.05^2 to the variances
    "checkerboard_noisy": ("checkerboard", dict(scale=0.25, noise=0.2), np.zeros(2),
                           np.array([[16 / 3 / 16 + 0.05**2, 1 / 16], [1 / 16, 16 / 3 / 16 + 0.05**2]])),
    # rings: radii 3 (1, 3/4, 1/2, 1/4) equally likely, uniform angle: E x^2 = E r^2 / 2
    "rings": ("rings", dict(), np.zeros(2), (9 * (1 + 0.5625 + 0.25 + 0.0625) / 4 / 2 + 0.08**2) * np.eye(2)),
    "eight_gaussians_scaled": ("eight_gaussians", dict(scale=0.5), np.zeros(2), 0.25 * (_R8**2 / 2 + (0.5 / 1.414) ** 2) * np.eye(2)),
}


@pytest.mark.parametrize("case", list(MOMENT_CASES))
def test_sample_moments_match_the_distribution(case):
    kind, opts, mean, cov = MOMENT_CASES[case]
    t = targets.make(kind, **opts)
    x = t.sample(N_MOMENTS, np.random.default_rng(7))
    assert x.shape == (N_MOMENTS, len(mean)) and x.dtype == np.float64 and t.dim == len(mean)
    m = x.mean(axis=0)
    se_mean = np.sqrt(np.diag(cov) / N_MOMENTS) + 1e-12
    assert np.all(np.abs(m - mean) < Z * se_mean), (m, mean)
    dev = x - m  # (n, d)
    prods = dev[:, :, None] * dev[:, None, :]  # (n, d, d)
    s = prods.mean(axis=0)
    se_cov = prods.std(axis=0) / math.sqrt(N_MOMENTS) + 1e-12
    assert np.all(np.abs(s - cov) < Z * se_cov), (s, cov)


@pytest.mark.parametrize(
    "n, w0, left",
    [(1000, 0.3, 300), (513, 0.25, 128), (5, 0.5, 3), (7, 0.5, 4), (1, 0.2, 0), (1, 0.5, 1), (10, 0.0, 0), (10, 1.0, 10)],
)
def test_two_modes_std0_gives_exact_atoms(n, w0, left):
    # left = floor(w0 n + 1/2), worked by hand for each row
    t = targets.make("two_modes", separation=4.0, weights=[w0, 1 - w0], std=0.0, dim=2)
    x = t.sample(n, np.random.default_rng(3))
    at_left = np.all(x == np.array([-2.0, 0.0]), axis=1)
    at_right = np.all(x == np.array([2.0, 0.0]), axis=1)
    assert np.all(at_left | at_right)
    assert int(at_left.sum()) == left
    assert abs(at_left.mean() - w0) <= 0.5 / n + 1e-15


def test_two_modes_centres_and_names():
    t = targets.make("two_modes", separation=6.0, dim=3)
    np.testing.assert_array_equal(t.centres, [[-3.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    assert t.mode_names == ["left", "right"]


def test_mixture_weights_by_nearest_centre_multinomial():
    centres = np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 8.0]])
    w = np.array([0.1, 0.6, 0.3])
    n = 50_000
    t = targets.make("mixture", centres=centres.tolist(), weights=w.tolist(), std=0.3, stratify=False)
    x = t.sample(n, np.random.default_rng(11))
    nearest = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=3)
    assert np.all(np.abs(counts - n * w) < Z * np.sqrt(n * w * (1 - w)))
    np.testing.assert_array_equal(t.centres, centres)
    assert t.mode_names == ["mode0", "mode1", "mode2"]


def test_mixture_stratified_counts_are_exact():
    centres = np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 8.0]])
    t = targets.make("mixture", centres=centres.tolist(), weights=[0.1, 0.6, 0.3], std=0.3)
    x = t.sample(1001, np.random.default_rng(0))
    nearest = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    # 100.1, 600.6, 300.3 -> floors 100, 600, 300 and the one left over goes to the largest remainder (0.6)
    np.testing.assert_array_equal(np.bincount(nearest, minlength=3), [100, 601, 300])


def test_mixture_default_weights_are_uniform():
    t = targets.make("mixture", centres=[[0.0], [10.0]], std=0.0)
    x = t.sample(6, np.random.default_rng(0))
    assert sorted(x[:, 0].tolist()) == [0.0, 0.0, 0.0, 10.0, 10.0, 10.0]


def test_eight_gaussians_centres_and_mode_counts():
    t = targets.make("eight_gaussians")
    c = t.centres
    assert c.shape == (8, 2) and len(t.mode_names) == 8
    np.testing.assert_allclose(np.hypot(c[:, 0], c[:, 1]), 4 / 1.414)
    angles = np.sort(np.mod(np.arctan2(c[:, 1], c[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(angles), np.pi / 4)
    n = 40_000
    x = t.sample(n, np.random.default_rng(5))
    nearest = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=8)
    p = 1 / 8  # modes 2.16 apart at std 0.354: misassignment ~ 1e-3, inside the band
    assert np.all(np.abs(counts - n * p) < Z * math.sqrt(n * p * (1 - p)))


def test_checkerboard_points_lie_in_the_black_squares():
    t = targets.make("checkerboard")
    x = t.sample(20_000, np.random.default_rng(2))
    assert np.all(np.abs(x) <= 4.0)
    # a black square [a, a+2) x [b, b+2) has (floor(x1/2) + floor(x2/2)) even
    ix, iy = np.floor(x[:, 0] / 2), np.floor(x[:, 1] / 2)
    assert np.all((ix + iy) % 2 == 0)
    nearest = np.argmin(((x[:, None, :] - t.centres[None]) ** 2).sum(-1), axis=1)
    assert np.all(np.abs(x - t.centres[nearest]).max(axis=1) <= 1.0)


def test_rings_radii():
    t = targets.make("rings", noise=0.0)
    r = np.hypot(*t.sample(4000, np.random.default_rng(1)).T)
    np.testing.assert_allclose(np.sort(np.unique(np.round(r, 9))), [0.75, 1.5, 2.25, 3.0])


@pytest.mark.parametrize(
    "kind, opts",
    [
        ("gaussian", {}),
        ("two_modes", {}),
        ("two_modes", {"std": 0.0}),
        ("mixture", {"centres": [[0.0, 0.0], [1.0, 1.0]]}),
        ("moons", {}),
        ("eight_gaussians", {}),
        ("checkerboard", {}),
        ("spiral", {}),
        ("rings", {}),
        ("swiss_roll", {}),
    ],
)
def test_same_seed_same_sample(kind, opts):
    t = targets.make(kind, **opts)
    a = t.sample(257, np.random.default_rng(42))
    b = t.sample(257, np.random.default_rng(42))
    c = t.sample(257, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.flags.c_contiguous and a.dtype == np.float64


def test_from_file_npy_round_trip(tmp_path):
    data = np.random.default_rng(0).normal(size=(50, 3))
    np.save(tmp_path / "points.npy", data)
    first = targets.make("from_file", path="points.npy", replace=False, base_dir=str(tmp_path))
    assert first.dim == 3 and first.max_n == 50 and first.centres is None
    np.testing.assert_array_equal(first.sample(20, np.random.default_rng(0)), data[:20])
    np.testing.assert_array_equal(first.sample(50, np.random.default_rng(0)), data)
    with pytest.raises(ValueError, match="exceeds the 50 rows"):
        first.sample(51, np.random.default_rng(0))
    drawn = targets.make("from_file", path=str(tmp_path / "points.npy")).sample(500, np.random.default_rng(1))
    rows = {tuple(r) for r in data}
    assert drawn.shape == (500, 3) and all(tuple(r) in rows for r in drawn)
    assert len({tuple(r) for r in drawn}) > 40  # with replacement: most rows appear


def test_from_file_hdf5_round_trip(tmp_path):
    h5py = pytest.importorskip("h5py")
    data = np.arange(24, dtype=np.float32).reshape(12, 2)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("group/samples", data=data)
        f.create_dataset("other", data=np.zeros(3))
    t = targets.make("from_file", path="d.h5", dataset="group/samples", replace=False, base_dir=str(tmp_path))
    np.testing.assert_array_equal(t.sample(12, np.random.default_rng(0)), data.astype(np.float64))
    with pytest.raises(targets.TargetError, match=r"dataset: no dataset 'group/sample' .*did you mean 'group/samples'"):
        targets.make("from_file", path="d.h5", dataset="group/sample", base_dir=str(tmp_path))
    with pytest.raises(targets.TargetError, match="dataset: missing for the HDF5 file"):
        targets.make("from_file", path="d.h5", base_dir=str(tmp_path))
    with pytest.raises(targets.TargetError, match=r"path: the array in .* has shape \(3,\); expected a 2-D array"):
        targets.make("from_file", path="d.h5", dataset="other", base_dir=str(tmp_path))


def test_from_file_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(5))
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    (tmp_path / "pts.csv").write_text("1,2\n")
    (tmp_path / "broken.npy").write_text("not an array")
    cases = [
        (dict(path="missing.npy"), "from_file: path: cannot read 'missing.npy': no such file"),
        (dict(path="flat.npy"), "has shape (5,); expected a 2-D array (points, dim)"),
        (dict(path="nan.npy"), "contains NaN or inf; expected finite values"),
        (dict(path="pts.csv"), "path: unsupported file type '.csv'"),
        (dict(path="broken.npy"), "path: cannot read"),
        (dict(path="flat.npy", dataset="x"), "dataset: given for the .npy file"),
        (dict(), "from_file: path: missing"),
        (dict(path="nan.npy", replace="no"), 'from_file: replace: got "no" (a string); expected true or false'),
    ]
    for opts, message in cases:
        with pytest.raises(targets.TargetError) as err:
            targets.make("from_file", base_dir=str(tmp_path), **opts)
        assert message in str(err.value), (opts, str(err.value))


@pytest.mark.parametrize(
    "kind, opts, message",
    [
        ("gausian", {}, "unknown kind \"gausian\" (a string); expected one of gaussian, two_modes"),
        ("two_modes", {"seperation": 2.0}, "two_modes: seperation: unknown option; expected one of separation, weights, std, dim, stratify; did you mean 'separation'?"),
        ("two_modes", {"weights": [0.5, 0.4]}, "two_modes: weights: weights sum to 0.9; expected 2 non-negative numbers summing to 1"),
        ("two_modes", {"weights": [0.2, 0.3, 0.5]}, "two_modes: weights: got 3 weights for 2 modes"),
        ("two_modes", {"weights": [-0.5, 1.5]}, "two_modes: weights: got a negative weight"),
        ("two_modes", {"separation": -1.0}, "two_modes: separation: got -1.0; expected a finite number > 0"),
        ("two_modes", {"std": -0.1}, "two_modes: std: got -0.1; expected a finite number >= 0"),
        ("two_modes", {"dim": 0}, "two_modes: dim: got 0; expected an integer >= 1"),
        ("two_modes", {"dim": 2.0}, "two_modes: dim: got 2.0 (a float); expected an integer >= 1"),
        ("gaussian", {"cov": [[1.0, 2.0], [2.0, 1.0]]}, "gaussian: cov: has a negative eigenvalue -1; expected a symmetric positive semi-definite matrix"),
        ("gaussian", {"cov": [[1.0, 0.5], [0.0, 1.0]]}, "gaussian: cov: the matrix is not symmetric"),
        ("gaussian", {"cov": [[1.0, 0.0], [0.0, 1.0]], "std": 2.0}, "gaussian: std: given together with cov; expected either cov or std, not both"),
        ("gaussian", {"mean": [0.0, 0.0, 0.0], "cov": [[1.0, 0.0], [0.0, 1.0]]}, "gaussian: cov: dimensions disagree"),
        ("gaussian", {"mean": 1.0}, "gaussian: mean: got 1.0 (a float); expected a list of numbers"),
        ("mixture", {}, "mixture: centres: missing"),
        ("mixture", {"centres": [[0.0, 0.0], [1.0, 1.0]], "weights": [1.0]}, "mixture: weights: got 1 weights for 2 modes"),
        ("moons", {"scale": 0.0}, "moons: scale: got 0.0; expected a finite number > 0"),
        ("checkerboard", {"std": 0.1}, "checkerboard: std: unknown option; expected one of scale, noise"),
    ],
)
def test_bad_options_name_the_option(kind, opts, message):
    with pytest.raises(targets.TargetError) as err:
        targets.make(kind, **opts)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_sample_checks_its_arguments():
    t = targets.make("gaussian")
    with pytest.raises(ValueError, match="rng expected a numpy.random.Generator"):
        t.sample(10, 0)
    with pytest.raises(ValueError, match="n expected a positive integer"):
        t.sample(0, np.random.default_rng(0))


def test_registry():
    assert targets.names() == [
        "gaussian", "two_modes", "mixture", "moons", "eight_gaussians", "checkerboard", "spiral", "rings", "swiss_roll",
        "from_file",
    ]
    assert targets.options("two_modes") == {
        "separation": 4.0, "weights": (0.5, 0.5), "std": 0.1, "dim": 2, "stratify": True,
    }
    assert targets.option_ranks("gaussian") == {"mean": 1, "cov": 2, "dim": 0, "std": 0}
    for kind in targets.names():
        assert kind in targets.summary(kind)
