"""The CUDA backend (``primitives/gpu.py``) against the dense float64 reference and the CPU flows.

Needs CuPy and a visible NVIDIA GPU; skipped otherwise (``-m gpu`` selects
only these).  The truths: ``dense.lse_shift`` (float64, itself tested against a
naive SciPy loop in test_primitives.py), SciPy's ``cdist``, nearest-point
saturation in closed form, and the NumPy/Numba result of every flow.
"""

import dataclasses

import numpy as np
import pytest

cp = pytest.importorskip("cupy")

from wgfsim.backend import cupy_status  # noqa: E402

_GPU_OK, _GPU_WHY = cupy_status()
if not _GPU_OK:
    pytest.skip(_GPU_WHY, allow_module_level=True)

import wgfsim  # noqa: E402
from wgfsim import flows, primitives  # noqa: E402
from wgfsim.primitives import dense, gpu  # noqa: E402

pytestmark = pytest.mark.gpu

COSTS = ["sqeuclidean", "euclidean"]


def assert_close(got, ref, rtol, scale=None):
    """``|got - ref| <= rtol (|ref| + scale)`` on the finite entries, identical -inf pattern elsewhere.

    ``scale`` defaults to the largest finite ``|ref|``: a normwise tolerance,
    so entries near zero are held to the size of the whole array.
    """
    got = cp.asnumpy(got).astype(np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_array_equal(got[~finite], ref[~finite])
    if scale is None:
        scale = np.abs(ref[finite]).max(initial=0.0)
    np.testing.assert_allclose(got[finite], ref[finite], rtol=rtol, atol=rtol * scale)


def on_gpu(*arrays, dtype=np.float64):
    return [None if a is None else cp.asarray(a, dtype=dtype) for a in arrays]


def rounded(a, dtype):
    """The float64 values of ``a`` after rounding to ``dtype``: the exact input the kernel sees."""
    return None if a is None else np.asarray(a).astype(dtype).astype(np.float64)


def _cases(rng):
    """(name, x, y, g, eps, exclude): random and adversarial inputs.

    Sizes are not multiples of the block (128 rows) or the tile (256
    columns), N != M, and M spans several tiles.
    """
    out = []
    for d in (1, 2, 3, 10):
        x = rng.normal(size=(257, d))
        out.append((f"random-d{d}", x, rng.normal(size=(389, d)) + 0.3, rng.normal(size=389), 0.5, False))
        out.append((f"self-d{d}", x, x, np.zeros(257), 0.5, True))
        # coincident points: every x appears in y, some several times
        y = np.concatenate([x, x[:50], rng.normal(size=(20, d))])
        out.append((f"coincident-d{d}", x, y, np.zeros(len(y)), 0.1, False))
    x = rng.normal(size=(301, 2))
    out.append(("many-tiles", x, rng.normal(size=(2999, 2)), rng.normal(size=2999), 0.3, False))
    out.append(("one-column", x, rng.normal(size=(1, 2)), None, 0.3, False))
    out.append(("fewer-columns-than-a-register-block", x, rng.normal(size=(3, 2)), None, 0.3, False))
    out.append(("one-row", x[:1], rng.normal(size=(500, 2)), None, 0.3, False))
    # zero-weight columns (log 0 = -inf offsets), and a row whose only column is masked
    g = rng.normal(size=389)
    g[::3] = -np.inf
    out.append(("zero-weights", rng.normal(size=(200, 3)), rng.normal(size=(389, 3)), g, 0.5, False))
    # weights that are zero for the first 300 columns (whole register blocks and most of a tile) only
    g = rng.normal(size=389)
    g[:300] = -np.inf
    out.append(("leading-zero-weights", rng.normal(size=(200, 2)), rng.normal(size=(389, 2)), g, 0.5, False))
    single = rng.normal(size=(1, 2))
    out.append(("empty-row", single, single, None, 0.5, True))
    out.append(("all-zero-weights", x[:40], rng.normal(size=(50, 2)), np.full(50, -np.inf), 0.5, False))
    # distances of 1e3 at eps 1e-4: logits of order -5e9, every weight but the nearest underflows
    out.append(("huge-distances", rng.normal(size=(64, 2)) * 1e3, rng.normal(size=(97, 2)) * 1e3, None, 1e-4, False))
    return out


# ---------------------------------------------------------------- the primitive, float64
@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("unit", [False, True])
def test_cupy_equals_dense_float64(rng, cost, unit):
    for name, x, y, g, eps, exclude in _cases(rng):
        ref_lse, ref_shift = dense.lse_shift(x, y, g, eps, cost, exclude, unit)
        lse, shift = primitives.lse_shift(*on_gpu(x, y, g), eps=eps, cost=cost, exclude_diagonal=exclude, unit=unit, backend="cupy")
        assert isinstance(lse, cp.ndarray) and lse.dtype == np.float64 and shift.dtype == np.float64, name
        assert_close(lse, ref_lse, 1e-10)
        assert_close(shift, ref_shift, 1e-10, scale=1.0 if unit else np.abs(y).max())


@pytest.mark.slow  # about 130 kernel instances: NVRTC compiles each once (then CuPy's disk cache)
@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("exclude,unit", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("d", [1, 2, 3, 8, 9, 16, 17, 40])
def test_every_kernel_instance_float64(rng, cost, exclude, unit, d):
    # d <= 8: the template-specialised kernels; d > 8: the generic one (40 = three 16-coordinate slices)
    x = rng.normal(size=(131, d))
    y = x if exclude else rng.normal(size=(300, d))
    g = rng.normal(size=len(y))
    ref_lse, ref_shift = dense.lse_shift(x, y, g, 0.7 * d, cost, exclude, unit)
    lse, shift = gpu.lse_shift(*on_gpu(x, y, g), 0.7 * d, cost, exclude, unit, True)
    assert_close(lse, ref_lse, 1e-10)
    assert_close(shift, ref_shift, 1e-10, scale=1.0 if unit else np.abs(y).max())
    lse_only, none = gpu.lse_shift(*on_gpu(x, y, g), 0.7 * d, cost, exclude, unit, False)
    assert none is None
    assert_close(lse_only, ref_lse, 1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_generic_kernel_matches_fast_kernel(rng, monkeypatch, dtype, d):
    # force the generic path where the fast one would run, so both are checked on the same inputs
    x, y, g = rng.normal(size=(200, d)), rng.normal(size=(333, d)), rng.normal(size=333)
    fast = gpu.lse_shift(*on_gpu(x, y, g, dtype=dtype), 0.4, "euclidean", False, True, True)
    monkeypatch.setattr(gpu, "_FAST_MAX_D", 0)
    generic = gpu.lse_shift(*on_gpu(x, y, g, dtype=dtype), 0.4, "euclidean", False, True, True)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_close(generic[0], cp.asnumpy(fast[0]), rtol)
    assert_close(generic[1], cp.asnumpy(fast[1]), rtol, scale=1.0)


@pytest.mark.slow  # compiles the other variant of every fast-path instance
@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("unit", [False, True])
def test_other_maximum_variant_equals_dense(rng, monkeypatch, cost, unit):
    # every fast-path entry with the maximum variant it does not use by default (exact tile
    # maximum <-> lazy reference, see cuda/lse_shift.cu): both must meet the same contract
    flipped = {key: dataclasses.replace(t, lazy=not t.lazy) for key, t in gpu._FAST_TUNING.items()}
    monkeypatch.setattr(gpu, "_FAST_TUNING", flipped)
    for name, x, y, g, eps, exclude in _cases(rng):
        ref_lse, ref_shift = dense.lse_shift(x, y, g, eps, cost, exclude, unit)
        lse, shift = gpu.lse_shift(*on_gpu(x, y, g), eps, cost, exclude, unit, True)
        assert_close(lse, ref_lse, 1e-10)
        assert_close(shift, ref_shift, 1e-10, scale=1.0 if unit else np.abs(y).max())
        if name == "huge-distances":
            continue
        xr, yr, gr = (rounded(a, np.float32) for a in (x, y, g))
        ref_lse, ref_shift = dense.lse_shift(xr, yr, gr, eps, cost, exclude, unit)
        lse, shift = gpu.lse_shift(*on_gpu(x, y, g, dtype=np.float32), eps, cost, exclude, unit, True)
        assert_close(lse, ref_lse, 1e-4)
        assert_close(shift, ref_shift, 1e-4, scale=1.0 if unit else np.abs(y).max())
    # saturation: logits billions apart, where the lazy reference must fall back to the exact maximum
    check_saturation(rng, np.float64, 1e-10, cost)
    check_saturation(rng, np.float32, 1e-4, cost)


# ---------------------------------------------------------------- the primitive, float32
@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("unit", [False, True])
def test_cupy_equals_dense_float32_well_scaled(rng, cost, unit):
    for name, x, y, g, eps, exclude in _cases(rng):
        if name == "huge-distances":
            continue  # logits of 5e9 carry float32 input rounding of ~1e3: see the saturation test
        xr, yr, gr = (rounded(a, np.float32) for a in (x, y, g))
        ref_lse, ref_shift = dense.lse_shift(xr, yr, gr, eps, cost, exclude, unit)
        lse, shift = primitives.lse_shift(*on_gpu(x, y, g, dtype=np.float32), eps=eps, cost=cost, exclude_diagonal=exclude, unit=unit, backend="cupy")
        assert lse.dtype == np.float32 and shift.dtype == np.float32, name
        assert_close(lse, ref_lse, 1e-4)
        assert_close(shift, ref_shift, 1e-4, scale=1.0 if unit else np.abs(y).max())


def test_float32_sums_over_many_columns_stay_accurate(rng):
    # 2e5 columns (800 tiles): the blocked, compensated float32 sums keep 1e-4 against float64
    x = rng.normal(size=(64, 2))
    y = rng.normal(size=(200_000, 2))
    ref_lse, ref_shift = dense.lse_shift(rounded(x, np.float32), rounded(y, np.float32), None, 2.0, "sqeuclidean")
    lse, shift = primitives.lse_shift(*on_gpu(x, y, dtype=np.float32), eps=2.0, backend="cupy")
    assert_close(lse, ref_lse, 2e-5)
    assert_close(shift, ref_shift, 1e-4, scale=np.abs(ref_shift).max())


def check_saturation(rng, dtype, rtol, cost):
    """Distances of 1e3 and eps of 1e-4: logits of order -5e9; every weight but the nearest underflows."""
    x = (rng.normal(size=(64, 2)) * 1e3).astype(dtype)
    y = (rng.normal(size=(97, 2)) * 1e3).astype(dtype)
    lse, shift = primitives.lse_shift(cp.asarray(x), cp.asarray(y), eps=1e-4, cost=cost, backend="cupy")
    lse, shift = cp.asnumpy(lse), cp.asnumpy(shift)
    assert np.all(np.isfinite(lse)) and np.all(np.isfinite(shift))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    d2 = ((x64[:, None, :] - y64[None, :, :]) ** 2).sum(-1)
    nearest = d2.argmin(axis=1)
    np.testing.assert_allclose(shift, y64[nearest] - x64, rtol=rtol, atol=rtol * 1e3)
    c = 0.5 * d2.min(axis=1) if cost == "sqeuclidean" else np.sqrt(d2.min(axis=1))
    np.testing.assert_allclose(lse, -c / 1e-4, rtol=rtol)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("cost", COSTS)
def test_extreme_inputs_saturate_to_nearest_point(rng, dtype, rtol, cost):
    check_saturation(rng, dtype, rtol, cost)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_eps_coincident_points_are_finite(rng, dtype):
    x = rng.normal(size=(40, 3))
    y = np.concatenate([x, x])  # every row has two exact ties at distance 0
    lse, shift = primitives.lse_shift(*on_gpu(x, y, dtype=dtype), eps=1e-4, backend="cupy")
    np.testing.assert_allclose(cp.asnumpy(lse), np.log(2.0), rtol=1e-5)
    np.testing.assert_allclose(cp.asnumpy(shift), 0.0, atol=1e-5)
    # unit vectors at coincident points are zero, not NaN
    lse, shift = primitives.lse_shift(*on_gpu(x, y, dtype=dtype), eps=1e-4, cost="euclidean", unit=True, backend="cupy")
    np.testing.assert_allclose(cp.asnumpy(shift), 0.0, atol=1e-5)


def test_eps_too_small_for_float32_is_refused(rng):
    x = cp.asarray(rng.normal(size=(5, 2)), dtype=np.float32)
    with pytest.raises(ValueError, match="too small for float32"):
        primitives.lse_shift(x, x, eps=1e-40, backend="cupy")


def test_inputs_of_any_layout_and_mixed_dtypes(rng):
    # views, transposed storage, float64 offsets with float32 points: converted, results unchanged
    base = rng.normal(size=(3, 400))
    x = cp.asarray(base).T[::2]  # (200, 3), non-contiguous
    y = cp.asarray(rng.normal(size=(150, 6)))[:, ::2]  # (150, 3), non-contiguous
    g = cp.asarray(rng.normal(size=150))
    ref = dense.lse_shift(cp.asnumpy(x), cp.asnumpy(y), cp.asnumpy(g), 0.5)
    got = primitives.lse_shift(x, y, g, eps=0.5, backend="cupy")
    assert_close(got[0], ref[0], 1e-10)
    assert_close(got[1], ref[1], 1e-10, scale=1.0)
    got32 = primitives.lse_shift(x.astype(cp.float32), y.astype(cp.float32), g, eps=0.5, backend="cupy")
    assert got32[0].dtype == np.float32
    assert_close(got32[1], ref[1], 1e-4, scale=1.0)


def test_public_wrappers_on_cupy(rng):
    x, y = rng.normal(size=(130, 2)), rng.normal(size=(170, 2))
    g, f = rng.normal(size=170), rng.normal(size=130)
    xg, yg, gg, fg = on_gpu(x, y, g, f)
    ref_lse, ref_shift = dense.lse_shift(x, y, g, 0.3)
    lse, bary = primitives.lse_bary(xg, yg, gg, eps=0.3)  # backend="auto" picks cupy
    assert isinstance(bary, cp.ndarray)
    assert_close(bary, x + ref_shift, 1e-12)
    assert_close(primitives.lse(xg, yg, gg, eps=0.3), ref_lse, 1e-12)
    assert_close(primitives.lse_cols(xg, yg, fg, eps=0.3), dense.lse_shift(y, x, f, 0.3)[0], 1e-12)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("d", [1, 2, 3, 10])
def test_distance_sums_match_cdist(rng, dtype, rtol, d):
    from scipy.spatial.distance import cdist

    x, y = rng.normal(size=(270, d)), rng.normal(size=(1000, d))
    got = primitives.distance_sums(*on_gpu(x, y, dtype=dtype), backend="cupy")
    assert got.dtype == dtype
    assert_close(got, cdist(rounded(x, dtype), rounded(y, dtype)).sum(1), rtol)


def test_kernels_are_compiled_once(rng):
    x = cp.asarray(rng.normal(size=(50, 2)))
    primitives.lse_shift(x, x, eps=1.0, backend="cupy")
    before = gpu._function.cache_info()
    primitives.lse_shift(x, x, eps=2.0, backend="cupy")
    after = gpu._function.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


# ---------------------------------------------------------------- every flow, end to end on CuPy
FLOW_CASES = [
    ("kl_kde", dict(bandwidth=[0.5, 1.0])),
    ("kl_kde", dict(kernel="laplace", exclude_self=True)),
    ("kl_kde", dict(bandwidth="median")),
    ("kl_kde_wgf", dict(bandwidth=0.7, n_mc=4)),
    ("kl_kde_wgf", dict(bandwidth=0.7, quadrature="gauss_hermite", n_nodes=3)),
    ("mmd", dict(bandwidth=[0.5, 1.0])),
    ("mmd", dict(kernel="laplace")),
    ("sinkhorn", dict(epsilon=0.1, max_iter=30, tol=1e-30)),
    ("sinkhorn", dict(epsilon=0.1, cost="euclidean", max_iter=30, tol=1e-30)),
    ("sinkhorn", dict(epsilon=0.05, scaling=0.5, max_iter=20, tol=1e-30)),
    ("sinkhorn_proxy", dict(epsilon=[0.1, 0.5])),
    ("sinkhorn_proxy", dict(cost="euclidean", exclude_self=True)),
    ("drift_da2", dict()),
    ("drift_da2", dict(cost="sqeuclidean", normalize_distances=True, normalize_drift=True)),
    ("sliced", dict(n_projections=16)),
    ("w2_exact", dict()),
]


def test_every_registered_flow_is_covered():
    assert set(flows.names()) <= {name for name, _ in FLOW_CASES}


def _points(rng, n=160, m=190, d=2):
    return rng.normal(size=(n, d)), rng.normal(size=(m, d)) * 0.8 + 0.5


@pytest.mark.parametrize("name,params", FLOW_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FLOW_CASES)])
def test_flow_on_cupy_equals_numpy_float64(rng, name, params):
    x, y = _points(rng)
    ref = wgfsim.velocity(name, x, y, rng=7, **params)  # NumPy arrays: the Numba kernels
    got = wgfsim.velocity(name, *on_gpu(x, y), rng=7, backend="cupy", **params)
    assert isinstance(got, cp.ndarray) and got.dtype == np.float64 and got.shape == x.shape
    assert_close(got, ref, 1e-8)


@pytest.mark.parametrize("name,params", FLOW_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FLOW_CASES)])
def test_flow_on_cupy_float32_is_close_to_float64(rng, name, params):
    x, y = _points(rng)
    xr, yr = rounded(x, np.float32), rounded(y, np.float32)
    ref = wgfsim.velocity(name, xr, yr, rng=7, **params)
    got = wgfsim.velocity(name, *on_gpu(x, y, dtype=np.float32), rng=7, backend="cupy", **params)
    assert got.dtype == np.float32 and bool(cp.all(cp.isfinite(got)))
    assert_close(got, ref, 2e-3)


ENERGY_CASES = [
    ("kl_kde_wgf", dict(bandwidth=0.7, n_mc=4)),
    ("kl_kde_wgf", dict(bandwidth=0.7, quadrature="gauss_hermite", n_nodes=3)),
    ("mmd", dict(bandwidth=[0.5, 1.0])),
    ("mmd", dict(kernel="laplace")),
    ("sinkhorn", dict(epsilon=0.1)),  # solved to tol 1e-9 by energy(), whatever the velocity's tol
    ("sliced", dict(n_projections=16)),
    ("w2_exact", dict()),
]


def test_every_gradient_flow_energy_is_covered():
    assert {n for n in flows.names() if flows.get(n).energy is not None} <= {name for name, _ in ENERGY_CASES}


@pytest.mark.parametrize("name,params", ENERGY_CASES)
def test_energy_on_cupy_equals_numpy(rng, name, params):
    x, y = _points(rng, n=80, m=90)
    ref = wgfsim.energy(name, x, y, rng=3, **params)
    got = wgfsim.energy(name, *on_gpu(x, y), rng=3, backend="cupy", **params)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name,params", [("sinkhorn", dict(epsilon=0.1, max_iter=20, tol=1e-30)), ("kl_kde", dict(bandwidth=0.5))])
def test_euler_loop_with_field_on_cupy(rng, name, params):
    # the bound Field keeps its state (Sinkhorn warm starts) across steps on the GPU as on the CPU
    x, y = _points(rng, n=120, m=100)
    cpu_field = wgfsim.Field(name, rng=1, **params)
    gpu_field = wgfsim.Field(name, rng=1, backend="cupy", **params)
    xc, (xg, yg) = x.copy(), on_gpu(x, y)
    for _ in range(5):
        xc = xc + 0.1 * cpu_field(xc, y)
        xg = xg + 0.1 * gpu_field(xg, yg)
    assert isinstance(xg, cp.ndarray)
    assert_close(xg, xc, 1e-7)


def test_launch_shapes_cover_every_dimension():
    # every (dtype, d) the fast path can see has a tuning entry whose tile is a multiple of its register block
    for dtype in ("float32", "float64"):
        for d in range(1, gpu._FAST_MAX_D + 1):
            t = gpu._FAST_TUNING[(dtype, d)]
            assert t.tile % t.k == 0 and t.block % 32 == 0
        t = gpu._GENERIC_TUNING[dtype]
        assert t.tile % t.k == 0 and t.block % 32 == 0
