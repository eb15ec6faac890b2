"""The fused primitive against the dense reference, and the reference against a naive loop."""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from wgfsim import primitives
from wgfsim.primitives import dense


def naive(x, y, g, eps, cost, exclude_diagonal=False, unit=False):
    """Obviously-correct double loop with SciPy's logsumexp: the truth for the dense reference."""
    n, m = len(x), len(y)
    lse = np.empty(n)
    shift = np.zeros_like(x, dtype=np.float64)
    for i in range(n):
        cols = [j for j in range(m) if not (exclude_diagonal and i == j)]
        diff = y[cols] - x[i]
        dist = np.linalg.norm(diff, axis=1)
        c = 0.5 * dist**2 if cost == "sqeuclidean" else dist
        logits = g[cols] - c / eps
        lse[i] = logsumexp(logits)
        w = np.exp(logits - lse[i])
        if unit:
            diff = np.where(dist[:, None] > 0, diff / np.where(dist > 0, dist, 1)[:, None], 0.0)
        shift[i] = w @ diff
    return lse, shift


@pytest.mark.parametrize("cost,exclude,unit", list(itertools.product(["sqeuclidean", "euclidean"], [False, True], [False, True])))
def test_dense_reference_equals_naive_loop(rng, cost, exclude, unit):
    x = rng.normal(size=(23, 3))
    y = x.copy() if exclude else rng.normal(size=(31, 3))
    g = rng.normal(size=len(y))
    lse_ref, shift_ref = naive(x, y, g, 0.7, cost, exclude, unit)
    lse, shift = dense.lse_shift(x, y, g, 0.7, cost, exclude, unit)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-13)
    np.testing.assert_allclose(shift, shift_ref, rtol=1e-12, atol=1e-14)


def _cases(rng):
    """(name, x, y, g, eps, exclude) over random and adversarial inputs."""
    out = []
    for d in (1, 2, 3, 10):
        x = rng.normal(size=(257, d))
        out.append((f"random-d{d}", x, rng.normal(size=(389, d)) + 0.3, rng.normal(size=389), 0.5, False))
        out.append((f"self-d{d}", x, x, np.zeros(257), 0.5, True))
        # coincident points: every x appears in y, some several times
        y = np.concatenate([x, x[:50], rng.normal(size=(20, d))])
        out.append((f"coincident-d{d}", x, y, np.zeros(len(y)), 0.1, False))
    return out


def _check_close(lse, shift, lse_ref, shift_ref, rtol, scale):
    np.testing.assert_allclose(lse, lse_ref, rtol=rtol, atol=rtol * np.abs(lse_ref).max())
    np.testing.assert_allclose(shift, shift_ref, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("unit", [False, True])
def test_numba_equals_dense_float64(rng, cost, unit):
    for name, x, y, g, eps, exclude in _cases(rng):
        ref = dense.lse_shift(x, y, g, eps, cost, exclude, unit)
        got = primitives.lse_shift(x, y, g, eps=eps, cost=cost, exclude_diagonal=exclude, unit=unit, backend="numba")
        _check_close(*got, *ref, rtol=1e-10, scale=1.0 if unit else np.abs(y).max())


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_numba_equals_dense_float32_well_scaled(rng, cost):
    for name, x, y, g, eps, exclude in _cases(rng):
        ref = dense.lse_shift(x, y, g, eps, cost, exclude)
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        lse, shift = primitives.lse_shift(x32, y32, g.astype(np.float32), eps=eps, cost=cost, exclude_diagonal=exclude, backend="numba")
        assert lse.dtype == np.float32 and shift.dtype == np.float32
        _check_close(lse, shift, *ref, rtol=1e-4, scale=np.abs(y).max())


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_extreme_inputs_saturate_to_nearest_point(rng, dtype, rtol, cost):
    # distances of 1e3 and eps of 1e-4: logits of order -5e9; every weight but the nearest underflows
    x = (rng.normal(size=(64, 2)) * 1e3).astype(dtype)
    y = (rng.normal(size=(97, 2)) * 1e3).astype(dtype)
    lse, shift = primitives.lse_shift(x, y, eps=1e-4, cost=cost, backend="numba")
    assert np.all(np.isfinite(lse)) and np.all(np.isfinite(shift))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    d2 = ((x64[:, None, :] - y64[None, :, :]) ** 2).sum(-1)
    nearest = d2.argmin(axis=1)
    np.testing.assert_allclose(shift, y64[nearest] - x64, rtol=rtol, atol=rtol * 1e3)
    c = 0.5 * d2.min(axis=1) if cost == "sqeuclidean" else np.sqrt(d2.min(axis=1))
    np.testing.assert_allclose(lse, -c / 1e-4, rtol=rtol)


def test_tiny_eps_coincident_points_are_finite(rng):
    x = rng.normal(size=(40, 3))
    y = np.concatenate([x, x])  # every row has two exact ties at distance 0
    for dtype in (np.float32, np.float64):
        lse, shift = primitives.lse_shift(x.astype(dtype), y.astype(dtype), eps=1e-4, backend="numba")
        np.testing.assert_allclose(lse, np.log(2.0), rtol=1e-5)
        np.testing.assert_allclose(shift, 0.0, atol=1e-5)


def test_lse_bary_is_barycentre_and_cols_are_transposed_rows(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(45, 2))
    g, f = rng.normal(size=45), rng.normal(size=30)
    lse_ref, shift_ref = naive(x, y, g, 0.3, "sqeuclidean")
    lse, bary = primitives.lse_bary(x, y, g, eps=0.3)
    np.testing.assert_allclose(bary, x + shift_ref, rtol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-12)
    cols_ref = logsumexp(f[:, None] - 0.5 * ((x[:, None] - y[None]) ** 2).sum(-1) / 0.3, axis=0)
    np.testing.assert_allclose(primitives.lse_cols(x, y, f, eps=0.3), cols_ref, rtol=1e-12)


def test_distance_sums_match_cdist(rng):
    from scipy.spatial.distance import cdist

    x, y = rng.normal(size=(70, 3)), rng.normal(size=(90, 3))
    np.testing.assert_allclose(primitives.distance_sums(x, y), cdist(x, y).sum(1), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(eps=0.0), "eps: expected a positive finite number"),
        (dict(eps=-1.0), "eps: expected a positive finite number"),
        (dict(eps=1.0, cost="cosine"), "cost: expected one of"),
        (dict(eps=1.0, backend="torch"), "backend: expected one of"),
        (dict(eps=1.0, exclude_diagonal=True), "exclude_diagonal: needs y to be x"),
    ],
)
def test_bad_arguments_name_the_argument(rng, kwargs, message):
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(6, 2))
    with pytest.raises(ValueError, match=message):
        primitives.lse_bary(x, y, **kwargs)


def test_mismatched_dimensions_and_empty(rng):
    with pytest.raises(ValueError, match="dimensions differ"):
        primitives.lse_bary(rng.normal(size=(5, 2)), rng.normal(size=(5, 3)), eps=1.0)
    with pytest.raises(ValueError, match="at least one point"):
        primitives.lse_bary(np.zeros((0, 2)), rng.normal(size=(5, 2)), eps=1.0)


def test_cupy_backend_without_cupy_says_how_to_install(rng):
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match=r"wgfsim\[gpu\]"):
        primitives.lse_bary(rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), eps=1.0, backend="cupy")
