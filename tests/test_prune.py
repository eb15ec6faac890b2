"""Block-sparse reductions (wgfsim.primitives.prune) against the dense float64 reference.

The truth is ``primitives/dense.py`` (every pair, NumPy, itself tested against a
naive loop with SciPy's logsumexp) and, for the diagonal case, a closed form.
Each case also asserts that pruning really ran and skipped pairs, so a silent
fallback to the dense kernel cannot pass for a pruned result.
"""

import itertools

import numpy as np
import pytest

from wgfsim import primitives
from wgfsim.primitives import dense, prune


@pytest.fixture(autouse=True)
def prune_small_problems(monkeypatch):
    # the test problems are small; the size threshold would send them to the dense kernel
    monkeypatch.setattr(prune, "MIN_PAIRS", 0)


def _clustered(rng, n, d, spread=3.0, width=0.3):
    centres = rng.normal(size=(6, d)) * spread
    return centres[rng.integers(0, 6, n)] + width * rng.normal(size=(n, d))


def _data(rng, kind, d):
    if kind == "clustered":
        return _clustered(rng, 300, d), _clustered(rng, 420, d)
    return rng.uniform(-2, 2, size=(600, d)), rng.uniform(-2, 2, size=(800, d))


def _assert_rel(got, ref, rtol):
    scale = np.abs(ref).max()
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


# d = 2 in the default suite; d = 1 and 3 compile their own kernel variants (about 20 s each, cold), so slow
@pytest.mark.parametrize("kind,d,cost", [
    pytest.param(kind, d, cost, marks=() if d == 2 else pytest.mark.slow)
    for kind, d, cost in itertools.product(["clustered", "spread"], [1, 2, 3], ["sqeuclidean", "euclidean"])
])
def test_pruned_equals_dense(rng, kind, d, cost):
    x, y = _data(rng, kind, d)
    g = rng.normal(size=len(y)) * 2.0  # offsets that vary column to column
    eps = 0.005 if cost == "sqeuclidean" else 0.01
    stats = {}
    lse, shift = prune.lse_shift(x, y, g, eps, cost, stats=stats)
    assert stats["path"] == "pruned" and stats["pairs"] < 0.8 * x.shape[0] * y.shape[0]
    ref_lse, ref_shift = dense.lse_shift(x, y, g, eps, cost)
    _assert_rel(lse, ref_lse, 1e-10)
    _assert_rel(shift, ref_shift, 1e-10)


@pytest.mark.parametrize("cost,unit", [("sqeuclidean", False), ("euclidean", True)])
def test_pruned_self_reduction_without_diagonal(rng, cost, unit):
    x = _clustered(rng, 500, 2)
    g = rng.normal(size=500)
    stats = {}
    lse, shift = prune.lse_shift(x, x, g, 0.03, cost, exclude_diagonal=True, unit=unit, stats=stats)
    assert stats["path"] == "pruned" and stats["pairs"] < 0.8 * 500 * 500
    ref_lse, ref_shift = dense.lse_shift(x, x, g, 0.03, cost, True, unit)
    _assert_rel(lse, ref_lse, 1e-10)
    _assert_rel(shift, ref_shift, 1e-10)


def test_only_the_diagonal_survives(rng):
    # points one unit apart on a line, eps = 1e-3: every other pair sits >= 500 nats below its
    # row's own term, so lse_i = g_i and the shift is 0 (closed form), and only the blocks
    # holding the diagonal are visited
    n = 1000
    x = np.zeros((n, 2))
    x[:, 0] = rng.permutation(n).astype(float)
    g = rng.normal(size=n)
    stats = {}
    lse, shift = prune.lse_shift(x, x, g, 1e-3, stats=stats)
    assert stats["path"] == "pruned" and stats["pairs"] <= n * prune.COL_LEAF
    np.testing.assert_allclose(lse, g, rtol=0, atol=1e-14)
    np.testing.assert_allclose(shift, 0.0, atol=1e-14)


@pytest.mark.slow  # compiles the float32 pruned kernels (about 30 s, cold)
def test_float32_pruned_is_within_float32_rounding(rng):
    x, y = _clustered(rng, 300, 2), _clustered(rng, 420, 2)
    g = rng.normal(size=420)
    stats = {}
    lse, shift = prune.lse_shift(x.astype(np.float32), y.astype(np.float32), g.astype(np.float32), 0.02, stats=stats)
    assert stats["path"] == "pruned" and lse.dtype == np.float32
    ref = dense.lse_shift(x.astype(np.float32), y.astype(np.float32), g.astype(np.float32), 0.02)
    _assert_rel(lse, ref[0], 1e-5)
    _assert_rel(shift, ref[1], 1e-4)


def test_large_eps_and_tol_zero_use_every_pair(rng):
    x, y = _clustered(rng, 300, 2), _clustered(rng, 420, 2)
    for kwargs, path in ((dict(eps=50.0), ("nothing-to-skip", "little-to-skip")), (dict(eps=0.02, tol=0), ("off",))):
        stats = {}
        lse, shift = prune.lse_shift(x, y, None, kwargs["eps"], tol=kwargs.get("tol"), stats=stats)
        assert stats["path"] in path and stats["pairs"] == 300 * 420
        ref = dense.lse_shift(x, y, None, kwargs["eps"])
        _assert_rel(lse, ref[0], 1e-12)


def test_points_moved_in_place_are_not_served_a_stale_tree(rng):
    # the trees are remembered by content: moving the same array must rebuild them
    x, y = _clustered(rng, 300, 2), _clustered(rng, 420, 2)
    prune.lse_shift(x, y, None, 0.02)
    x += rng.normal(size=x.shape) * 2.0
    lse, shift = prune.lse_shift(x, y, None, 0.02)
    ref = dense.lse_shift(x, y, None, 0.02)
    _assert_rel(lse, ref[0], 1e-10)
    _assert_rel(shift, ref[1], 1e-10)


def test_public_primitive_prunes_by_default_and_prune_tol_switches_it_off(rng, monkeypatch):
    x, y = _clustered(rng, 300, 2), _clustered(rng, 420, 2)
    seen = []
    real = prune.lse_shift

    def spy(*args, **kwargs):
        stats = {}
        out = real(*args, **dict(kwargs, stats=stats))
        seen.append(stats["path"])
        return out

    monkeypatch.setattr(prune, "lse_shift", spy)
    primitives.lse(x, y, eps=0.02, backend="numba")
    primitives.lse(x, y, eps=0.02, backend="numba", prune_tol=0)
    assert seen == ["pruned", "off"]


def test_nan_points_give_nan_rows(rng):
    x, y = _clustered(rng, 300, 2), _clustered(rng, 420, 2)
    x[7, 0] = np.nan
    stats = {}
    lse, shift = prune.lse_shift(x, y, None, 0.02, stats=stats)
    assert stats["path"] == "non-finite"
    assert np.isnan(lse[7]) and np.isnan(shift[7]).all() and np.isfinite(np.delete(lse, 7)).all()


def test_sinkhorn_velocity_pruned_equals_unpruned(rng, monkeypatch):
    import wgfsim

    x, y = _clustered(rng, 400, 2), _clustered(rng, 500, 2)
    v = wgfsim.velocity("sinkhorn", x, y, epsilon=0.02, max_iter=30, tol=1e-30)
    v0 = wgfsim.velocity("sinkhorn", x, y, epsilon=0.02, max_iter=30, tol=1e-30, prune_tol=0.0)  # every pair
    np.testing.assert_allclose(v, v0, rtol=0, atol=1e-9 * np.abs(v0).max())
