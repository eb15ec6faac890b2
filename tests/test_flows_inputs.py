"""Bad input gets a ValueError naming the argument and what was expected; registry and dtype behaviour."""

import numpy as np
import pytest

import wgfsim

X = np.random.default_rng(0).normal(size=(10, 2))
Y = np.random.default_rng(1).normal(size=(12, 2))


def test_registry_lists_every_flow_module():
    # one file per flow, one registry line each: the registry and the folder agree
    import pathlib

    folder = pathlib.Path(wgfsim.flows.__file__).parent
    modules = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(wgfsim.flows.names()) == modules
    # the options a preset may set default to None (not given): resolved to the preset's or the paper's value
    assert wgfsim.flows.options("drift_da2") == {
        "temperatures": (0.02, 0.05, 0.2), "cost": "euclidean", "normalize_distances": None, "normalize_drift": None,
        "affinity_floor": None, "distance_floor": None, "preset": "none",
    }


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: wgfsim.velocity("kl_kd", X, Y), r"unknown flow 'kl_kd' \(did you mean 'kl_kde'\?\)"),
        (lambda: wgfsim.velocity("kl_kde", X, Y, bandwith=1.0), r"kl_kde: unknown option 'bandwith' \(did you mean 'bandwidth'\?\)"),
        (lambda: wgfsim.velocity("kl_kde", X, Y, bandwidth=-1.0), r"kl_kde: option 'bandwidth' expected a positive number"),
        (lambda: wgfsim.velocity("kl_kde", X, Y, bandwidth=[]), r"'bandwidth' expected a positive number or a non-empty list"),
        (lambda: wgfsim.velocity("mmd", X, Y, bandwidth="wide"), r"mmd: option 'bandwidth' expected .*\"median\""),
        (lambda: wgfsim.velocity("mmd", X, Y, kernel="cauchy"), r"mmd: option 'kernel' expected one of \('gaussian', 'laplace'\)"),
        (lambda: wgfsim.velocity("sinkhorn", X, Y, epsilon=0), r"sinkhorn: option 'epsilon' expected a positive number"),
        (lambda: wgfsim.velocity("sinkhorn", X, Y, cost="l1"), r"sinkhorn: option 'cost' expected one of"),
        (lambda: wgfsim.velocity("sinkhorn", X, Y, max_iter=0), r"sinkhorn: option 'max_iter' expected a positive integer"),
        (lambda: wgfsim.velocity("sinkhorn_proxy", X, Y, exclude_self="yes"), r"option 'exclude_self' expected true or false"),
        (lambda: wgfsim.velocity("sliced", X, Y, n_projections=2.5), r"sliced: option 'n_projections' expected a positive integer"),
        (lambda: wgfsim.velocity("kl_kde", X, np.ones((12, 3))), r"x and y: dimensions differ \(x has 2, y has 3\)"),
        (lambda: wgfsim.velocity("kl_kde", X[:, 0], Y), r"x: expected a 2-D array \(points, dim\), got 1-D"),
        (lambda: wgfsim.velocity("kl_kde", np.zeros((0, 2)), Y), r"x: expected at least one point"),
        (lambda: wgfsim.velocity("kl_kde", X, np.full((3, 2), np.nan)), r"y: contains NaN or inf"),
        (lambda: wgfsim.velocity("kl_kde", np.full((3, 2), np.inf), Y), r"x: contains NaN or inf"),
        (lambda: wgfsim.velocity("kl_kde", X, Y, a=np.full(10, 0.2)), r"a: weights must sum to 1, got 2"),
        (lambda: wgfsim.velocity("kl_kde", X, Y, b=-np.full(12, 1 / 12)), r"b: weights must be finite and non-negative"),
        (lambda: wgfsim.velocity("mmd", X, Y, a=np.full(9, 1 / 9)), r"a: expected shape \(10,\), got \(9,\)"),
        (lambda: wgfsim.velocity("sliced", X, Y, a=np.full(10, 0.1)), r"sliced: does not take particle or target weights"),
        (lambda: wgfsim.velocity("kl_kde", X, Y, rng="seed"), r"rng: expected a numpy.random.Generator or an int seed"),
        (lambda: wgfsim.velocity("kl_kde", X, Y, backend="jax"), r"backend: expected one of"),
        (lambda: wgfsim.velocity("w2_exact", X, Y, max_pairs=100), r"w2_exact: N x M = 10 x 12 = 120 pairs exceeds max_pairs=100"),
        (lambda: wgfsim.energy("kl_kde", X, Y), r"kl_kde: is not a Wasserstein gradient flow"),
        (lambda: wgfsim.energy("drift_da2", X, Y), r"drift_da2: is not a Wasserstein gradient flow"),
        (lambda: wgfsim.velocity("kl_kde_wgf", np.zeros((3, 4)), np.ones((3, 4)), quadrature="gauss_hermite"), r"gauss_hermite' is for d <= 3"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("name", wgfsim.flows.names())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_velocity_keeps_shape_and_dtype(name, dtype):
    v = wgfsim.velocity(name, X.astype(dtype), Y.astype(dtype))
    assert v.shape == X.shape and v.dtype == dtype
    assert np.all(np.isfinite(v))


@pytest.mark.parametrize("name", wgfsim.flows.names())
def test_float32_agrees_with_float64(name):
    v64 = wgfsim.velocity(name, X, Y, rng=3)
    v32 = wgfsim.velocity(name, X.astype(np.float32), Y.astype(np.float32), rng=3)
    np.testing.assert_allclose(v32, v64, rtol=1e-3, atol=1e-4 * np.abs(v64).max())


def test_integer_input_is_promoted_to_float64():
    v = wgfsim.velocity("kl_kde", np.arange(8).reshape(4, 2), np.arange(10).reshape(5, 2))
    assert v.dtype == np.float64


def test_same_seed_same_field_and_fresh_draws_per_call():
    v1 = wgfsim.velocity("sliced", X, Y, rng=5, n_projections=7)
    v2 = wgfsim.velocity("sliced", X, Y, rng=5, n_projections=7)
    np.testing.assert_array_equal(v1, v2)
    field = wgfsim.Field("sliced", rng=5, n_projections=7)
    assert not np.array_equal(field(X, Y), field(X, Y))  # fresh directions at every step
