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


def reference(x, y, g, eps, cost, exclude=False, unit=False):
    """The whole (N, M) logit matrix and SciPy's logsumexp: the truth every backend is held to.

    A row whose every logit is -inf gets lse = -inf and shift = 0; NaN
    anywhere in a row's logits makes the row NaN.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    g = np.zeros(len(y)) if g is None else np.asarray(g, np.float64)
    diff = y[None, :, :] - x[:, None, :]  # (N, M, d)
    dist = np.sqrt((diff**2).sum(-1))  # (N, M)
    c = 0.5 * dist**2 if cost == "sqeuclidean" else dist
    logits = g[None, :] - c / eps
    if exclude:
        logits[np.arange(len(x)), np.arange(len(x))] = -np.inf
    empty = np.all(logits == -np.inf, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = logsumexp(logits, axis=1)
        w = np.exp(logits - lse[:, None])
    lse[empty], w[empty] = -np.inf, 0.0
    if unit:
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.where(dist[..., None] > 0, diff / dist[..., None], 0.0)
    return lse, np.einsum("nm,nmd->nd", w, diff)


def assert_close(got, ref, rtol, scale=None):
    """``|got - ref| <= rtol (|ref| + scale)`` on finite entries; identical -inf / NaN pattern elsewhere.

    ``scale`` defaults to the largest finite ``|ref|`` (a normwise tolerance).
    """
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_array_equal(got[~finite], ref[~finite])  # -inf where -inf, NaN where NaN
    if scale is None:
        scale = np.abs(ref[finite]).max(initial=0.0)
    np.testing.assert_allclose(got[finite], ref[finite], rtol=rtol, atol=rtol * scale)


def rounded(a, dtype):
    """The float64 values of ``a`` after rounding to ``dtype``: the exact input a backend sees."""
    return None if a is None else np.asarray(a).astype(dtype).astype(np.float64)


# N = 131 rows: not a multiple of the GPU block (128); M = 301 columns: not a multiple of the tile (256) nor of any register block (4, 8, 16)
N_ROWS, M_COLS = 131, 301
FLAG_SETS = list(itertools.product(["sqeuclidean", "euclidean"], [False, True], [False, True]))  # cost, exclude, unit


def parity_cases(rng, d, exclude):
    """(name, x, y, g, eps) for points in R^d; y is x when ``exclude`` (the diagonal is masked)."""
    x = rng.normal(size=(N_ROWS, d))
    y = x if exclude else rng.normal(size=(M_COLS, d)) + 0.3
    m = len(y)
    g = rng.normal(size=m)
    g[::7] = -np.inf  # zero-weight columns
    out = [("random", x, y, g, 0.5 * d), ("eps-1e-4", x, y, None, 1e-4), ("eps-1e4", x, y, rng.normal(size=m), 1e4)]
    # rows with no admissible column: every offset -inf but one column, which the diagonal masks for its row
    lone = np.full(m, -np.inf)
    lone[5] = 0.0
    out.append(("one-column-left", x, y, lone, 0.5 * d))
    out.append(("every-column-excluded", x, y, np.full(m, -np.inf), 0.5 * d))
    return out


# every flag set at d = 2 (the fast GPU kernel) and d = 17 (the generic one); three at d = 1 and 3
# in the default suite (each flag set is one more GPU kernel instance to compile), the rest slow
FEW_FLAG_SETS = [("sqeuclidean", False, False), ("euclidean", True, True), ("euclidean", False, True)]
PARITY_PARAMS = [(d, flags) for d in (1, 2, 3, 17) for flags in ([FLAG_SETS] if d in (2, 17) else [FEW_FLAG_SETS])] + [
    pytest.param(d, [f for f in FLAG_SETS if f not in FEW_FLAG_SETS], marks=pytest.mark.slow) for d in (1, 3)
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d,flag_sets", PARITY_PARAMS, ids=[f"d{p[0] if isinstance(p, tuple) else p.values[0]}-{i}" for i, p in enumerate(PARITY_PARAMS)])
def test_lse_shift_equals_reference(backend, rng, d, flag_sets, dtype):
    # sizes that are not multiples of the GPU block or tile; the float32 truth is computed from
    # the float32-rounded inputs (the exact numbers the backend sees)
    for cost, exclude, unit in flag_sets:
        for name, x, y, g, eps in parity_cases(rng, d, exclude):
            xr, yr, gr = (rounded(a, dtype) for a in (x, y, g))
            ref_lse, ref_shift = reference(xr, yr, gr, eps, cost, exclude, unit)
            lse, shift = primitives.lse_shift(*backend.put(x, y, g, dtype=dtype), eps=eps, cost=cost, exclude_diagonal=exclude, unit=unit, backend=backend.name)
            if backend.name != "numpy":  # the dense reference computes and returns float64
                assert lse.dtype == dtype and shift.dtype == dtype, name
            rtol = 1e-10 if dtype == np.float64 else (1e-4 if eps > 1e-3 else 1e-3)
            scale = 1.0 if unit else np.abs(yr).max()
            try:
                assert_close(backend.get(lse), ref_lse, rtol)
                assert_close(backend.get(shift), ref_shift, rtol, scale=scale)
            except AssertionError as err:
                raise AssertionError(f"{name} cost={cost} exclude={exclude} unit={unit}: {err}") from None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [2, 17])
def test_lse_alone_equals_reference(backend, rng, d, dtype):
    # the Sinkhorn call: log-sum-exp without the shift (its own kernel instances on the GPU)
    for cost, exclude in [("sqeuclidean", False), ("euclidean", True)]:
        name, x, y, g, eps = parity_cases(rng, d, exclude)[0]
        ref_lse, _ = reference(rounded(x, dtype), rounded(y, dtype), rounded(g, dtype), eps, cost, exclude)
        lse = primitives.lse(*backend.put(x, y, g, dtype=dtype), eps=eps, cost=cost, exclude_diagonal=exclude, backend=backend.name)
        assert_close(backend.get(lse), ref_lse, 1e-10 if dtype == np.float64 else 1e-4)


def test_points_in_r0_have_every_cost_zero(backend, rng):
    # d = 0: every distance is 0, so lse_i = log sum_j exp(g_j) (log M for g = 0) and the shift is empty
    for dtype in (np.float64, np.float32):
        x, y, g = np.zeros((7, 0)), np.zeros((9, 0)), rng.normal(size=9)
        lse, shift = primitives.lse_shift(*backend.put(x, y, None, dtype=dtype), eps=0.3, backend=backend.name)
        assert shift.shape == (7, 0)
        np.testing.assert_allclose(backend.get(lse), np.log(9.0), rtol=1e-6)
        lse = primitives.lse(*backend.put(x, y, g, dtype=dtype), eps=0.3, backend=backend.name)
        np.testing.assert_allclose(backend.get(lse), logsumexp(rounded(g, dtype)), rtol=1e-6)
        lse = primitives.lse(*backend.put(x, x, dtype=dtype), eps=0.3, exclude_diagonal=True, backend=backend.name)
        np.testing.assert_allclose(backend.get(lse), np.log(6.0), rtol=1e-6)


def test_nan_inputs_give_nan_not_empty_rows(backend, rng):
    x, y, g = rng.normal(size=(40, 2)), rng.normal(size=(300, 2)), rng.normal(size=300)
    for dtype in (np.float64, np.float32):
        # a NaN coordinate of x_3: row 3 is NaN, the others untouched
        xn = x.copy()
        xn[3, 1] = np.nan
        lse, shift = primitives.lse_shift(*backend.put(xn, y, g, dtype=dtype), eps=0.5, backend=backend.name)
        lse, shift = backend.get(lse), backend.get(shift)
        assert np.isnan(lse[3]) and np.all(np.isnan(shift[3]))
        ref = reference(rounded(x, dtype), rounded(y, dtype), rounded(g, dtype), 0.5, "sqeuclidean")
        keep = np.arange(40) != 3
        assert_close(lse[keep], ref[0][keep], 1e-4)
        # a NaN in one column's point, or in its offset, reaches every row
        y_nan, g_nan = y.copy(), g.copy()
        y_nan[250, 0] = np.nan
        g_nan[250] = np.nan
        for yy, gg in ((y_nan, g), (y, g_nan)):
            lse, shift = primitives.lse_shift(*backend.put(x, yy, gg, dtype=dtype), eps=0.5, cost="euclidean", unit=True, backend=backend.name)
            assert np.all(np.isnan(backend.get(lse))) and np.all(np.isnan(backend.get(shift)))


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_extreme_inputs_saturate_to_nearest_point(backend, rng, cost):
    # distances of 1e3 and eps of 1e-4: logits of order -5e9; every weight but the nearest underflows
    for dtype, rtol in ((np.float64, 1e-10), (np.float32, 1e-4)):
        x = (rng.normal(size=(64, 2)) * 1e3).astype(dtype)
        y = (rng.normal(size=(97, 2)) * 1e3).astype(dtype)
        lse, shift = primitives.lse_shift(*backend.put(x, y, dtype=dtype), eps=1e-4, cost=cost, backend=backend.name)
        lse, shift = backend.get(lse), backend.get(shift)
        assert np.all(np.isfinite(lse)) and np.all(np.isfinite(shift))
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        d2 = ((x64[:, None, :] - y64[None, :, :]) ** 2).sum(-1)
        nearest = d2.argmin(axis=1)
        np.testing.assert_allclose(shift, y64[nearest] - x64, rtol=rtol, atol=rtol * 1e3)
        c = 0.5 * d2.min(axis=1) if cost == "sqeuclidean" else np.sqrt(d2.min(axis=1))
        np.testing.assert_allclose(lse, -c / 1e-4, rtol=rtol)


def test_tiny_eps_coincident_points_are_finite(backend, rng):
    x = rng.normal(size=(40, 3))
    y = np.concatenate([x, x])  # every row has two exact ties at distance 0
    for dtype in (np.float32, np.float64):
        lse, shift = primitives.lse_shift(*backend.put(x, y, dtype=dtype), eps=1e-4, backend=backend.name)
        np.testing.assert_allclose(backend.get(lse), np.log(2.0), rtol=1e-5)
        np.testing.assert_allclose(backend.get(shift), 0.0, atol=1e-5)
        # unit vectors at coincident points are zero, not NaN
        lse, shift = primitives.lse_shift(*backend.put(x, y, dtype=dtype), eps=1e-4, cost="euclidean", unit=True, backend=backend.name)
        np.testing.assert_allclose(backend.get(shift), 0.0, atol=1e-5)


def test_lse_bary_is_barycentre_and_cols_are_transposed_rows(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(45, 2))
    g, f = rng.normal(size=45), rng.normal(size=30)
    lse_ref, shift_ref = naive(x, y, g, 0.3, "sqeuclidean")
    lse, bary = primitives.lse_bary(x, y, g, eps=0.3)
    np.testing.assert_allclose(bary, x + shift_ref, rtol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-12)
    cols_ref = logsumexp(f[:, None] - 0.5 * ((x[:, None] - y[None]) ** 2).sum(-1) / 0.3, axis=0)
    np.testing.assert_allclose(primitives.lse_cols(x, y, f, eps=0.3), cols_ref, rtol=1e-12)


@pytest.mark.parametrize("d", [2, 17])
def test_distance_sums_match_cdist(backend, rng, d):
    from scipy.spatial.distance import cdist

    x, y = rng.normal(size=(131, d)), rng.normal(size=(300, d))
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        got = primitives.distance_sums(*backend.put(x, y, dtype=dtype), backend=backend.name)
        np.testing.assert_allclose(backend.get(got), cdist(rounded(x, dtype), rounded(y, dtype)).sum(1), rtol=rtol)


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
