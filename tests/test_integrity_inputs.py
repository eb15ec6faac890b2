"""Inputs and numerics at the extremes: from_file headers, parameter ranges, the proxy's
eps -> 0 limit, kl_kde_wgf's large-bandwidth limit, input dtypes.

Truths: closed forms (nearest-neighbour and large-bandwidth limits, the Gaussian
closure of docs/math.md#gaussian-closure), dense float64 transcriptions written
here in a form that is stable at every eps, and sizes computed by hand.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest

import wgfsim
from wgfsim import targets
from wgfsim.flows import make_params

# ---------------------------------------------------------------- from_file headers


def _npy_header(shape, descr="<f8") -> bytes:
    """The magic string and header of a version 1.0 .npy file, without its data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_from_file_npz_data_in_an_npy_file_is_refused(tmp_path):
    with open(tmp_path / "points.npy", "wb") as f:
        np.savez(f, a=np.zeros((3, 2)))
    with pytest.raises(targets.TargetError, match=r"holds zip \(\.npz\) data, not a single array; expected a single array saved with numpy.save"):
        targets.make("from_file", path="points.npy", base_dir=str(tmp_path))


def test_from_file_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path):
    header = _npy_header((10**12, 2))
    (tmp_path / "liar.npy").write_bytes(header + bytes(64))
    claimed = 10**12 * 2 * 8 / 2**40  # TiB, by hand
    with pytest.raises(targets.TargetError) as err:
        targets.make("from_file", path="liar.npy", base_dir=str(tmp_path))
    msg = str(err.value)
    assert f"claims shape (1000000000000, 2) of float64 ({claimed:.1f} TiB) but the file holds 64 B of data" in msg
    assert msg.endswith("expected a complete .npy file")


def test_from_file_refuses_what_does_not_fit_in_memory_with_the_estimate(tmp_path, monkeypatch):
    data = np.arange(2000.0).reshape(1000, 2)
    np.save(tmp_path / "p.npy", data)
    monkeypatch.setattr(targets, "_available_memory", lambda: 10_000)
    with pytest.raises(targets.TargetError, match=rf"shape \(1000, 2\): loading it as float64 needs about {16000 / 1024:.1f} KiB but {10000 / 1024:.1f} KiB"):
        targets.make("from_file", path="p.npy", base_dir=str(tmp_path))
    monkeypatch.setattr(targets, "_available_memory", lambda: 10**9)
    t = targets.make("from_file", path="p.npy", replace=False, base_dir=str(tmp_path))
    np.testing.assert_array_equal(t.sample(1000, np.random.default_rng(0)), data)


def test_from_file_hdf5_dataset_huge_in_memory_tiny_on_disk_is_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("x", shape=(10**11, 2), dtype="f8", chunks=(1024, 2))  # nothing written
    assert (tmp_path / "d.h5").stat().st_size < 10**5
    need = 10**11 * 2 * 16 / 2**40  # the native read plus the float64 copy, TiB
    with pytest.raises(targets.TargetError, match=rf"needs about {need:.1f} TiB"):
        targets.make("from_file", path="d.h5", dataset="x", base_dir=str(tmp_path))


@pytest.mark.parametrize("array, what", [
    (np.zeros((3, 2), bool), "dtype bool"),
    (np.zeros((3, 2), complex), "dtype complex128"),
    (np.zeros(3, dtype=[("a", "f8"), ("b", "f8")]), "has shape (3,)"),
    (np.zeros((3, 1), dtype=[("a", "f8")]), "dtype [('a', '<f8')]"),
])
def test_from_file_header_dtype_and_shape_are_checked(tmp_path, array, what):
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(targets.TargetError) as err:
        targets.make("from_file", path="a.npy", base_dir=str(tmp_path))
    assert what in str(err.value)


# ---------------------------------------------------------------- parameter ranges

RANGE_CASES = [
    ("kl_kde", "bandwidth", {}, 1e-75, 1e75),
    ("kl_kde", "bandwidth", {"kernel": "laplace"}, 1e-75, 1e75),
    ("mmd", "bandwidth", {}, 1e-75, 1e75),
    ("kl_kde_wgf", "bandwidth", {"quadrature": "gauss_hermite", "n_nodes": 3}, 1e-75, 1e75),
    ("sinkhorn", "epsilon", {}, 1e-150, 1e150),
    ("sinkhorn_proxy", "epsilon", {}, 1e-150, 1e150),
    ("drift_da2", "temperatures", {}, 1e-150, 1e150),
]


@pytest.mark.parametrize("flow, option, extra, lo, hi", RANGE_CASES)
def test_parameters_outside_the_representable_range_are_refused(flow, option, extra, lo, hi):
    for bad in (lo / 10, hi * 10, [1.0, hi * 1e50]):
        expected = re.escape(f"{flow}: option '{option}' expected numbers in [{lo:g}, {hi:g}] (")
        with pytest.raises(ValueError, match=rf"^{expected}.*\), got "):
            make_params(flow, **{option: bad}, **extra)


@pytest.mark.parametrize("flow, option, extra, lo, hi", RANGE_CASES)
def test_at_the_ends_of_the_range_the_fields_are_finite_and_the_wide_end_is_the_mean_difference(flow, option, extra, lo, hi):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(7, 2)) + [1.0, -0.5]
    assert np.all(np.isfinite(wgfsim.velocity(flow, x, y, **{option: lo}, **extra)))
    wide = wgfsim.velocity(flow, x, y, **{option: hi}, **extra)
    if flow == "drift_da2":
        assert np.all(np.isfinite(wide))  # its wide limit is not the mean difference (self mask)
        return
    # every kernel becomes constant: all plans and mean shifts are uniform, v = mean(y) - mean(x)
    np.testing.assert_allclose(wide, np.broadcast_to(y.mean(0) - x.mean(0), x.shape), rtol=1e-12, atol=1e-12)


def test_kl_kde_narrow_end_is_the_nearest_neighbour_displacement():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(7, 2))
    nearest = y[np.argmin(((x[:, None] - y[None]) ** 2).sum(-1), axis=1)]  # B[p] -> NN - x, B[q] -> 0 (self)
    np.testing.assert_allclose(wgfsim.velocity("kl_kde", x, y, bandwidth=1e-75), nearest - x, rtol=0, atol=1e-15)


# ---------------------------------------------------------------- sinkhorn_proxy at small eps


def _costs(x, y, cost):
    d = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    return 0.5 * d * d if cost == "sqeuclidean" else d


def _stable_plan(c, eps):
    """``exp(-c/eps) / sqrt(r_i c_j)`` written with the row and column minima subtracted inside every exponent."""
    rmin, cmin = c.min(1, keepdims=True), c.min(0, keepdims=True)
    with np.errstate(invalid="ignore"):
        rho = np.log(np.exp(-(c - rmin) / eps).sum(1, keepdims=True))
        gam = np.log(np.exp(-(c - cmin) / eps).sum(0, keepdims=True))
        return np.exp(-(c - rmin) / (2 * eps) - (c - cmin) / (2 * eps) - rho / 2 - gam / 2)


def proxy_dense(x, y, eps, cost, exclude_self):
    """The proxy's W+/W- formula in float64, stable at any eps (no large logits are ever added)."""
    n, m = len(x), len(y)
    c_minus = _costs(x, x, cost)
    if exclude_self:
        np.fill_diagonal(c_minus, np.inf)
    g_plus, g_minus = _stable_plan(_costs(x, y, cost), eps), _stable_plan(c_minus, eps)
    s_plus, s_minus = g_plus.sum(1), g_minus.sum(1)
    pull = (g_plus[:, :, None] * (y[None] - x[:, None])).sum(1)
    push = (g_minus[:, :, None] * (x[None] - x[:, None])).sum(1)
    return math.sqrt(n / m) * (s_minus[:, None] * pull - s_plus[:, None] * push)


def proxy_limit(x, y, cost, exclude_self):
    """eps -> 0: G+ is the mutual-nearest-neighbour indicator, G- the identity (or x's own mutual pairs)."""
    n, m = len(x), len(y)
    c = _costs(x, y, cost)
    j = c.argmin(1)
    s_plus = (c.argmin(0)[j] == np.arange(n)).astype(float)
    if exclude_self:
        cx = _costs(x, x, cost)
        np.fill_diagonal(cx, np.inf)
        k = cx.argmin(1)
        s_minus, m_minus = (k[k] == np.arange(n)).astype(float), x[k]
    else:
        s_minus, m_minus = np.ones(n), x
    return math.sqrt(n / m) * (s_plus * s_minus)[:, None] * (y[j] - m_minus)


def _well_separated():
    rng = np.random.default_rng(20)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(5, 2))
    for cost in ("sqeuclidean", "euclidean"):  # every cost gap that decides the limit is >= 5% of the NN costs
        for a, b, self_block in ((x, y, False), (x, x, True)):
            c = _costs(a, b, cost)
            if self_block:
                np.fill_diagonal(c, np.inf)
            e = (c - c.min(1, keepdims=True)) / 2 + (c - c.min(0, keepdims=True)) / 2
            assert e[(e > 0) & np.isfinite(e)].min() > 0.05 * c.min(1).max()
    return x, y


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_sinkhorn_proxy_tends_to_its_mutual_nearest_neighbour_limit(cost, exclude_self):
    x, y = _well_separated()
    limit = proxy_limit(x, y, cost, exclude_self)
    assert np.count_nonzero(limit[:, 0]) >= 2  # the limit is not trivially zero
    for eps in (1e-12, 1e-18, 1e-22, 1e-30, 1e-100, 1e-150):
        v = wgfsim.velocity("sinkhorn_proxy", x, y, epsilon=eps, cost=cost, exclude_self=exclude_self)
        # at the resolvable eps the log domain keeps ~sqrt(u) ~ 1.5e-8 absolute error in log S
        np.testing.assert_allclose(v, limit, rtol=1e-7, atol=1e-12, err_msg=f"eps={eps}")


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_sinkhorn_proxy_equals_a_stable_dense_transcription_across_eps(cost, exclude_self):
    x, y = _well_separated()
    for eps in (1.0, 1e-1, 1e-2, 1e-3, 1e-5, 1e-8, 1e-16, 1e-24):
        want = proxy_dense(x, y, eps, cost, exclude_self)
        v = wgfsim.velocity("sinkhorn_proxy", x, y, epsilon=eps, cost=cost, exclude_self=exclude_self)
        np.testing.assert_allclose(v, want, rtol=1e-6, atol=1e-9 * np.abs(want).max(), err_msg=f"eps={eps}")


def test_sinkhorn_proxy_field_at_the_particles_reaches_the_same_limit():
    x, y = _well_separated()
    for eps in (1e-20, 1e-150):
        f = wgfsim.flows.field_at("sinkhorn_proxy", x, x, y, epsilon=eps)
        np.testing.assert_allclose(f, proxy_limit(x, y, "sqeuclidean", False), rtol=1e-7, atol=1e-12, err_msg=f"eps={eps}")


def test_sinkhorn_proxy_float32_stays_finite_and_reaches_the_limit():
    x, y = _well_separated()
    limit = proxy_limit(x, y, "sqeuclidean", False)
    for eps in (1e-10, 1e-30, 1e-150):
        v = wgfsim.velocity("sinkhorn_proxy", x.astype(np.float32), y.astype(np.float32), epsilon=eps)
        assert v.dtype == np.float32
        # float32's resolvable eps is sqrt(u) C with u = 6e-8: about 1e-4 relative noise
        np.testing.assert_allclose(v, limit, rtol=1e-3, atol=1e-6, err_msg=f"eps={eps}")


# ---------------------------------------------------------------- kl_kde_wgf at large bandwidth


def _weighted_clouds():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(9, 2)) * [1.5, 0.5] + [2.0, -1.0]
    a, b = rng.uniform(0.5, 1.5, 12), rng.uniform(0.5, 1.5, 9)
    return x, y, a / a.sum(), b / b.sum()


@pytest.mark.parametrize("quad", [dict(quadrature="gauss_hermite", n_nodes=4), dict(n_mc=8)])
def test_kl_kde_wgf_huge_bandwidth_tends_to_the_mean_difference(quad):
    x, y, a, b = _weighted_clouds()
    limit = np.broadcast_to(b @ y - a @ x, x.shape)  # the kernel is constant: B[p] - B[q] = mean_b(y) - mean_a(x)
    # (Monte-Carlo draws have no zero mean, so their estimate keeps an O(|xi|/sigma) term: sigma >= 1e20)
    for sigma in (1e20, 1e40, 1e75):
        v = wgfsim.velocity("kl_kde_wgf", x, y, a=a, b=b, bandwidth=sigma, rng=0, **quad)
        np.testing.assert_allclose(v, limit, rtol=1e-12, atol=1e-12, err_msg=f"sigma={sigma}")
        assert abs(wgfsim.energy("kl_kde_wgf", x, y, a=a, b=b, bandwidth=sigma, rng=0, **quad)) < 1e-14


def test_kl_kde_wgf_large_bandwidth_follows_the_gaussian_closure():
    """v = mu_p - mu_q + [S_p (x - mu_p) - S_q (x - mu_q)] / sigma^2 + O(sigma^-4), KL = |mu_p - mu_q|^2 / (2 sigma^2) + O(sigma^-4).

    Expanding the softmax at z = x + sigma xi in 1/sigma and averaging over xi
    (odd orders vanish); mu, S are the weighted means and covariances of the
    samples (docs/math.md#gaussian-closure for Gaussian p, q).  Gauss-Hermite
    with 5 nodes integrates the xi-polynomials of these orders exactly.
    """
    x, y, a, b = _weighted_clouds()
    mu_q, mu_p = a @ x, b @ y
    s_q = (a[:, None] * (x - mu_q)).T @ (x - mu_q)
    s_p = (b[:, None] * (y - mu_p)).T @ (y - mu_p)
    errs = []
    for sigma in (40.0, 80.0):
        v = wgfsim.velocity("kl_kde_wgf", x, y, a=a, b=b, bandwidth=sigma, quadrature="gauss_hermite", n_nodes=5)
        closure = mu_p - mu_q + ((x - mu_p) @ s_p - (x - mu_q) @ s_q) / sigma**2
        errs.append(np.abs(v - closure).max())
        assert errs[-1] < 2e-3 * np.abs(closure - (mu_p - mu_q)).max()  # the 1/sigma^2 term is resolved
        e = wgfsim.energy("kl_kde_wgf", x, y, a=a, b=b, bandwidth=sigma, quadrature="gauss_hermite", n_nodes=5)
        np.testing.assert_allclose(e, ((mu_p - mu_q) ** 2).sum() / (2 * sigma**2), rtol=2e-3)
    assert 8.0 < errs[0] / errs[1] < 32.0  # the remainder falls like sigma^-4


# ---------------------------------------------------------------- input dtypes


X = np.random.default_rng(6).normal(size=(6, 2))

REFUSED = [
    (X.astype(np.float16), r"dtype float16 is not supported \(wgfsim computes in float32 or float64\); cast with"),
    (X.astype(np.complex128), r"expected real numbers \(float32 or float64; integers are converted to float64\), got dtype complex128"),
    (X > 0, r"got dtype bool"),
    (X.astype(str), r"got dtype <U"),
    (X.astype(object), r"got dtype object"),
]


@pytest.mark.parametrize("bad, message", REFUSED)
def test_points_of_unsupported_dtypes_are_refused(bad, message):
    with pytest.raises(ValueError, match=r"^x: .*" + message):
        wgfsim.velocity("kl_kde", bad, X)
    with pytest.raises(ValueError, match=r"^y: .*" + message):
        wgfsim.velocity("mmd", X, bad)


@pytest.mark.parametrize("bad, message", [
    (np.full(6, 1 / 6, dtype=np.float16), r"dtype float16 is not supported"),
    (np.full(6, 1 / 6, dtype=np.complex128), r"got dtype complex128"),
    (np.eye(6, dtype=bool)[0], r"got dtype bool"),
    (np.array([str(1 / 6)] * 6), r"got dtype <U"),
])
def test_weights_of_unsupported_dtypes_are_refused(bad, message):
    with pytest.raises(ValueError, match=r"^a: .*" + message):
        wgfsim.velocity("kl_kde", X, X + 1.0, a=bad)


def test_integer_points_and_weights_are_converted_to_float64():
    xi = np.arange(12).reshape(6, 2) % 5
    v = wgfsim.velocity("kl_kde", xi, X, b=[0, 1, 0, 0, 0, 0])
    assert v.dtype == np.float64
    np.testing.assert_array_equal(v, wgfsim.velocity("kl_kde", xi.astype(np.float64), X, b=np.eye(6)[1]))
