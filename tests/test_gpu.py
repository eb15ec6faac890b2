"""The CUDA backend (``primitives/gpu.py`` and ``cuda/lse_shift.cu``): kernels, launches and flows.

Kernel-level tests run on every ``runtime``: the CPU emulation of the CUDA
source (``tests/cuda_emulation``: g++ against a shim of the CUDA built-ins,
on every CI run) and CuPy on a GPU when one is visible.  The flow tests need
CuPy and a GPU (marker ``gpu``; skipped otherwise).  The truths: a dense
SciPy ``logsumexp`` reference over the whole logit matrix, closed forms
(sums whose terms are known, nearest-point saturation), SciPy's ``cdist``,
and the NumPy/Numba result of every flow.
"""

import dataclasses
import ctypes

import numpy as np
import pytest

from wgfsim.backend import cupy_status
from wgfsim.primitives import gpu

from test_primitives import assert_close, reference, rounded

_GPU_OK, _GPU_WHY = cupy_status()
needs_gpu = [pytest.mark.gpu, pytest.mark.skipif(not _GPU_OK, reason=_GPU_WHY)]
if _GPU_OK:
    import cupy as cp

    import wgfsim
    from wgfsim import flows, primitives

COSTS = ["sqeuclidean", "euclidean"]


class Runtime:
    """A kernel runtime under test and how to move arrays onto it and back."""

    def __init__(self, name):
        self.name = name
        if name == "emulated":
            from cuda_emulation import EMULATOR, compiler_available

            if not compiler_available():
                pytest.skip("no C++ compiler to emulate the CUDA kernels")
            self.rt = EMULATOR
        else:
            self.rt = gpu.CupyRuntime()

    def put(self, *arrays, dtype=np.float64):
        xp = np if self.name == "emulated" else cp
        return [None if a is None else xp.asarray(a, dtype=dtype) for a in arrays]

    def get(self, a):
        return np.asarray(a if self.name == "emulated" else cp.asnumpy(a), dtype=np.float64)

    def lse_shift(self, x, y, g, eps, cost="sqeuclidean", exclude=False, unit=False, with_shift=True, dtype=np.float64, **kw):
        lse, shift = gpu.lse_shift(*self.put(x, y, g, dtype=dtype), eps, cost, exclude, unit, with_shift, runtime=self.rt, **kw)
        return self.get(lse), (None if shift is None else self.get(shift))


@pytest.fixture(params=["emulated", pytest.param("cupy", marks=needs_gpu)])
def runtime(request):
    if request.param == "emulated":
        request.getfixturevalue("emulated_kernels")
    return Runtime(request.param)


def check(runtime, x, y, g, eps, cost, exclude, unit, dtype, rtol=None, with_shift=True, **kw):
    """One call against the SciPy reference on the dtype-rounded inputs."""
    rtol = rtol or (1e-10 if dtype == np.float64 else 1e-4)
    xr, yr, gr = (rounded(a, dtype) for a in (x, y, g))
    ref_lse, ref_shift = reference(xr, yr, gr, eps, cost, exclude, unit)
    lse, shift = runtime.lse_shift(x, y, g, eps, cost, exclude, unit, with_shift, dtype=dtype, **kw)
    assert_close(lse, ref_lse, rtol)
    if with_shift:
        assert_close(shift, ref_shift, rtol, scale=1.0 if unit else np.abs(yr).max())


def _cases(rng):
    """(name, x, y, g, eps, exclude): random and adversarial inputs (sizes not multiples of block or tile)."""
    out = []
    x = rng.normal(size=(301, 2))
    out.append(("many-tiles", x, rng.normal(size=(2999, 2)), rng.normal(size=2999), 0.3, False))
    out.append(("one-column", x, rng.normal(size=(1, 2)), None, 0.3, False))
    out.append(("fewer-columns-than-a-register-block", x, rng.normal(size=(3, 2)), None, 0.3, False))
    out.append(("one-row", x[:1], rng.normal(size=(500, 2)), None, 0.3, False))
    g = rng.normal(size=389)
    g[:300] = -np.inf  # zero weights for whole register blocks and most of a tile
    out.append(("leading-zero-weights", rng.normal(size=(200, 2)), rng.normal(size=(389, 2)), g, 0.5, False))
    single = rng.normal(size=(1, 2))
    out.append(("empty-row", single, single, None, 0.5, True))
    out.append(("all-zero-weights", x[:40], rng.normal(size=(50, 2)), np.full(50, -np.inf), 0.5, False))
    return out


# ---------------------------------------------------------------- the kernels, on every runtime
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adversarial_shapes_equal_reference(runtime, rng, dtype):
    for name, x, y, g, eps, exclude in _cases(rng):
        for cost, unit in (("sqeuclidean", False), ("euclidean", True)):
            check(runtime, x, y, g, eps, cost, exclude, unit, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_generic_kernel_matches_fast_kernel(runtime, rng, monkeypatch, dtype, d):
    # force the generic path where the fast one would run, so both are checked on the same inputs
    x, y, g = rng.normal(size=(200, d)), rng.normal(size=(333, d)), rng.normal(size=333)
    fast = runtime.lse_shift(x, y, g, 0.4, "euclidean", False, True, dtype=dtype)
    monkeypatch.setattr(gpu, "_FAST_MAX_D", 0)
    generic = runtime.lse_shift(x, y, g, 0.4, "euclidean", False, True, dtype=dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_close(generic[0], fast[0], rtol)
    assert_close(generic[1], fast[1], rtol, scale=1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_split_equals_reference(runtime, rng, dtype):
    # the fast kernel over 3 and 7 column ranges, then the combine step: masked diagonal, -inf
    # offsets, rows left empty in some ranges and in all of them, NaN in one range only
    x = rng.normal(size=(150, 2))
    y = np.concatenate([x, rng.normal(size=(2850, 2))])  # 3000 columns, 12 tiles
    g = rng.normal(size=3000)
    g[1000:2600] = -np.inf  # whole ranges without an admissible column
    for splits in (3, 7):
        check(runtime, x, y, g, 0.3, "sqeuclidean", False, False, dtype, splits=splits)
        check(runtime, x, y, g, 0.3, "euclidean", False, True, dtype, splits=splits)
        check(runtime, x, y, g, 0.3, "euclidean", False, True, dtype, splits=splits, with_shift=False)
    # y is x (1100 points, 5 tiles) with the diagonal masked: over 3 ranges, with -inf offsets, and
    # with only column 5 admissible, so row 5 is empty in every range and the others see one column
    xs = y[:1100]
    gs = g[:1100].copy()
    gs[::7] = -np.inf
    check(runtime, xs, xs, gs, 0.3, "euclidean", True, True, dtype, splits=3)
    lone = np.full(1100, -np.inf)
    lone[5] = 0.0
    check(runtime, xs, xs, lone, 0.3, "sqeuclidean", True, False, dtype, splits=3)
    gn = g.copy()
    gn[2900] = np.nan  # only the last range sees it
    lse, shift = runtime.lse_shift(x, y, gn, 0.3, dtype=dtype, splits=3)
    assert np.all(np.isnan(lse)) and np.all(np.isnan(shift))


def test_column_splits_fill_the_device():
    # N = 256 rows on 132 multiprocessors: 2 row blocks, so up to 132 ranges; each range >= 4 tiles
    assert gpu.column_splits(2, 10**6, 256, 132) == 64  # capped
    assert gpu.column_splits(2, 256 * 40, 256, 132) == 10  # 40 tiles: 10 ranges of 4
    assert gpu.column_splits(79, 10**4, 256, 132) == 4  # N = 1e4: 39 tiles -> 9 ranges wanted 4
    assert gpu.column_splits(300, 10**6, 256, 132) == 1  # enough row blocks
    assert gpu.column_splits(3, 300, 256, 132) == 1  # fewer than 4 tiles


SWEEP_SHAPES = [
    gpu.FastTuning(rows=r, k=k, tile=t, block=b, lazy=lz)
    for lz in (False, True) for r in (1, 2) for k in (8, 16, 32) for b in (128, 256) for t in (256, 512)
]
DEFAULT_SHAPES = [gpu.FastTuning(rows=2, k=8, tile=256, block=128), gpu.FastTuning(rows=1, k=16, tile=512, block=256, lazy=True)]


def shape_id(t):
    return f"{'lazy' if t.lazy else 'max'}-rows{t.rows}-k{t.k}-block{t.block}-tile{t.tile}"


def _check_shape(runtime, rng, monkeypatch, shape, dtype=np.float32):
    monkeypatch.setitem(gpu._FAST_TUNING, (np.dtype(dtype).name, 2), shape)
    x = rng.normal(size=(300, 2))  # 300 rows: a partial last block whatever the shape
    y = rng.normal(size=(1100, 2))
    g = rng.normal(size=1100)
    g[::5] = -np.inf
    check(runtime, x, y, g, 0.4, "sqeuclidean", False, False, dtype)
    check(runtime, x, x, g[:300], 0.4, "euclidean", True, True, dtype)


@pytest.mark.parametrize("shape", DEFAULT_SHAPES, ids=shape_id)
def test_launch_shapes_rows_per_thread_and_lazy(runtime, rng, monkeypatch, shape):
    # two rows per thread (a row stride of blockDim) and the lazy reference: no default tuning uses them
    _check_shape(runtime, rng, monkeypatch, shape)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SWEEP_SHAPES, ids=shape_id)
def test_every_shape_the_sweep_can_choose(runtime, rng, monkeypatch, shape):
    _check_shape(runtime, rng, monkeypatch, shape)


def test_lazy_reference_falls_back_before_overflow(runtime, monkeypatch):
    # float32, lazy: register block 1 holds a weight-1 column, block 2 columns e^80 (2^115) times
    # heavier, displaced by 1e4: taken against the old reference their weighted displacements
    # (2^115 * 1e4 > FLT_MAX) overflow, so the block must be redone against its own maximum
    monkeypatch.setitem(gpu._FAST_TUNING, ("float32", 2), gpu.FastTuning(rows=1, k=16, lazy=True))
    x = np.zeros((5, 2))
    y = np.zeros((48, 2))
    y[16:32] = 1e4
    g = np.full(48, -np.inf)
    g[0], g[16:32] = 0.0, 80.0
    check(runtime, x, y, g, 1e12, "sqeuclidean", False, False, np.float32)


@pytest.mark.parametrize("splits", [1, 64])
def test_sum_over_many_tiles_is_compensated(runtime, splits):
    # one weight-1 column, then one column of weight w = 0.9 * 2^-24 per tile for 255 tiles: each
    # w is below half an ulp of the running float32 sum, so plain addition drops all of them
    # (lse off by 255 w = 1.4e-5); the compensated sums keep them, over the tiles of one block
    # (splits=1) and over the 64 ranges of a column split (each ~1.8 ulps of the total)
    tiles = 256
    m = 256 * tiles
    w = 0.9 * 2.0**-24
    g = np.full(m, -np.inf)
    g[0] = 0.0
    g[256::256] = np.log(w)
    x, y = np.zeros((1, 1)), np.zeros((m, 1))
    y[256::256] = 1.0  # and the shift is their displacement: 255 w / (1 + 255 w)
    lse, shift = runtime.lse_shift(x, y, g, 1e6, dtype=np.float32, splits=splits)
    wr = np.exp(np.float64(np.float32(np.log(w))))  # the offset as float32 holds it
    total = 1.0 + (tiles - 1) * wr
    assert abs(lse[0] - np.log(total)) < 1e-6
    assert abs(shift[0, 0] - (tiles - 1) * wr / total) < 1e-6


def _sparse_pointer(buf, first_row, width):
    """A pointer p with p[(first_row + k) * width] at buf[k]: only the rows from first_row exist."""
    return ctypes.c_void_p((buf.ctypes.data - first_row * width * buf.itemsize) % 2**64)


@pytest.mark.parametrize("kernel", ["fast-2", "fast-8", "generic-17", "distance-3"])
def test_emulated_launch_at_rows_near_2_pow_31(rng, kernel):
    # a sparse launch: N = the largest count gpu.py accepts, only the last blocks run, and the
    # arrays exist only for their rows.  Row offsets row * d past 2^31 must be 64-bit.
    from cuda_emulation import EMULATOR, compiler_available

    if not compiler_available():
        pytest.skip("no C++ compiler to emulate the CUDA kernels")
    kind, d = kernel.split("-")
    d = int(d)
    n, m, dtype = gpu._MAX_POINTS, 37, np.float32
    block = 128
    blocks = -(-n // block)
    first = (blocks - 3) * block  # the last three blocks: rows first .. n-1
    rows = n - first
    x, y, g = rng.normal(size=(rows, d)).astype(dtype), rng.normal(size=(m, d)).astype(dtype), rng.normal(size=m).astype(dtype)
    lse = np.full(rows, np.nan, dtype)
    shift = np.full((rows, d), np.nan, dtype)
    xp, lp, sp = _sparse_pointer(x, first, d), _sparse_pointer(lse, first, 1), _sparse_pointer(shift, first, d)
    c = dtype(gpu._LOG_SCALE[np.dtype(dtype)] * 0.5 / 0.7)
    if kind == "fast":
        t = gpu.FastTuning(rows=1, k=8)
        fn = EMULATOR.kernel(gpu.fast_name(dtype, d, True, False, False, True, t))
        fn((blocks, 1), (block,), (xp, y, g, np.int32(n), np.int32(m), c, lp, sp, lp), blocks=(blocks - 3, blocks))
    elif kind == "generic":
        t = gpu.GenericTuning(k=4, slice=16)
        fn = EMULATOR.kernel(gpu.generic_name(dtype, True, False, False, True, t))
        for k0 in (0, 16):
            fn((blocks,), (block,), (xp, y, g, np.int32(n), np.int32(m), np.int32(d), np.int32(k0), np.int32(min(16, d - k0)), c, lp, sp),
               blocks=(blocks - 3, blocks))
    else:
        fn = EMULATOR.kernel(gpu.distance_name(dtype, d))
        fn((blocks,), (block,), (xp, y, np.int32(n), np.int32(m), np.int32(d), lp), blocks=(blocks - 3, blocks))
        from scipy.spatial.distance import cdist

        np.testing.assert_allclose(lse, cdist(x.astype(np.float64), y.astype(np.float64)).sum(1), rtol=1e-5)
        return
    ref_lse, ref_shift = reference(x, y, g, 0.7, "sqeuclidean")
    assert_close(lse, ref_lse, 1e-4)
    assert_close(shift, ref_shift, 1e-4, scale=np.abs(y).max())


def test_float32_offsets_beyond_base2_range_give_nan(runtime, rng):
    # |g| > FLT_MAX / log2(e) ~ 2.36e38 overflows in the float32 kernels' base 2: NaN, not a wrong value
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(30, 2))
    for big in (3e38, -3e38):
        g = np.zeros(30)
        g[4] = big
        lse, shift = runtime.lse_shift(x, y, g, 0.5, dtype=np.float32)
        assert np.all(np.isnan(lse)) and np.all(np.isnan(shift))
    g = np.zeros(30)
    g[4] = 2.3e38  # just inside: that column takes all the weight
    lse, shift = runtime.lse_shift(x, y, g, 0.5, dtype=np.float32)
    np.testing.assert_allclose(lse, 2.3e38, rtol=1e-6)
    np.testing.assert_allclose(shift, (rounded(y, np.float32)[4] - rounded(x, np.float32)), rtol=1e-5, atol=1e-5)


def test_float32_eps_too_small_is_refused(runtime, rng):
    x = rng.normal(size=(5, 2))
    with pytest.raises(ValueError, match="eps: .* too small for float32"):
        runtime.lse_shift(x, x, None, 1e-31, dtype=np.float32)
    with pytest.raises(ValueError, match="eps: .* too small for float32"):
        runtime.lse_shift(x, x, None, 1e-40, dtype=np.float32)
    # just above the bound, distances of order 1 keep their nearest point
    y = rng.normal(size=(7, 2))
    lse, shift = runtime.lse_shift(x, y, None, 1e-29, dtype=np.float32)
    xr, yr = rounded(x, np.float32), rounded(y, np.float32)
    nearest = ((xr[:, None] - yr[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_allclose(shift, yr[nearest] - xr, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("exclude,unit", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("d", [1, 2, 3, 8, 9, 16, 17, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_kernel_instance(runtime, rng, cost, exclude, unit, d, dtype):
    # d <= 8: the template-specialised kernels; d > 8: the generic one (40 = three 16-coordinate slices)
    x = rng.normal(size=(131, d))
    y = x if exclude else rng.normal(size=(301, d))
    g = rng.normal(size=len(y))
    check(runtime, x, y, g, 0.7 * d, cost, exclude, unit, dtype)
    check(runtime, x, y, g, 0.7 * d, cost, exclude, unit, dtype, with_shift=False)


@pytest.mark.slow
@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("unit", [False, True])
def test_other_maximum_variant_equals_reference(runtime, rng, monkeypatch, cost, unit):
    # every fast-path entry with the maximum variant it does not use by default (exact tile
    # maximum <-> lazy reference, see cuda/lse_shift.cu): both must meet the same contract
    flipped = {key: dataclasses.replace(t, lazy=not t.lazy) for key, t in gpu._FAST_TUNING.items()}
    monkeypatch.setattr(gpu, "_FAST_TUNING", flipped)
    for name, x, y, g, eps, exclude in _cases(rng):
        for dtype in (np.float64, np.float32):
            check(runtime, x, y, g, eps, cost, exclude, unit, dtype)


def test_float32_sums_over_many_columns_stay_accurate(runtime, rng):
    # 1e5 columns (391 tiles): the blocked, compensated float32 sums keep 1e-4 against float64
    x = rng.normal(size=(3, 2))
    y = rng.normal(size=(100_000, 2))
    check(runtime, x, y, None, 2.0, "sqeuclidean", False, False, np.float32, rtol=2e-5)


def test_launch_shapes_cover_every_dimension():
    # every (dtype, d) the fast path can see has a tuning entry whose tile is a multiple of its register block
    for dtype in ("float32", "float64"):
        for d in range(1, gpu._FAST_MAX_D + 1):
            t = gpu._FAST_TUNING[(dtype, d)]
            assert t.tile % t.k == 0 and t.block % 32 == 0
        t = gpu._GENERIC_TUNING[dtype]
        assert t.tile % t.k == 0 and t.block % 32 == 0


# ---------------------------------------------------------------- CuPy only
def on_gpu(*arrays, dtype=np.float64):
    return [None if a is None else cp.asarray(a, dtype=dtype) for a in arrays]


def assert_close_gpu(got, ref, rtol, scale=None):
    assert_close(cp.asnumpy(got), ref, rtol, scale)


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU_OK, reason=_GPU_WHY)
def test_inputs_of_any_layout_and_mixed_dtypes(rng):
    # views, transposed storage, float64 offsets with float32 points: converted, results unchanged
    from wgfsim.primitives import dense

    base = rng.normal(size=(3, 400))
    x = cp.asarray(base).T[::2]  # (200, 3), non-contiguous
    y = cp.asarray(rng.normal(size=(150, 6)))[:, ::2]  # (150, 3), non-contiguous
    g = cp.asarray(rng.normal(size=150))
    ref = dense.lse_shift(cp.asnumpy(x), cp.asnumpy(y), cp.asnumpy(g), 0.5)
    got = primitives.lse_shift(x, y, g, eps=0.5, backend="cupy")
    assert_close_gpu(got[0], ref[0], 1e-10)
    assert_close_gpu(got[1], ref[1], 1e-10, scale=1.0)
    got32 = primitives.lse_shift(x.astype(cp.float32), y.astype(cp.float32), g, eps=0.5, backend="cupy")
    assert got32[0].dtype == np.float32
    assert_close_gpu(got32[1], ref[1], 1e-4, scale=1.0)


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU_OK, reason=_GPU_WHY)
def test_kernels_are_compiled_once(rng):
    x = cp.asarray(rng.normal(size=(50, 2)))
    primitives.lse_shift(x, x, eps=1.0, backend="cupy")
    before = gpu._function.cache_info()
    primitives.lse_shift(x, x, eps=2.0, backend="cupy")
    after = gpu._function.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


# ---------------------------------------------------------------- every flow, end to end on CuPy
# every flow's own example inputs (its record's ``examples``), so a new flow is covered without a line here
FLOW_CASES = [(name, dict(example)) for name in flows.names() for example in flows.get(name).examples] if _GPU_OK else []


def _points(rng, n=160, m=190, d=2):
    return rng.normal(size=(n, d)), rng.normal(size=(m, d)) * 0.8 + 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU_OK, reason=_GPU_WHY)
@pytest.mark.parametrize("name,params", FLOW_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FLOW_CASES)])
def test_flow_on_cupy_equals_numpy_float64(rng, name, params):
    x, y = _points(rng)
    ref = wgfsim.velocity(name, x, y, rng=7, **params)  # NumPy arrays: the Numba kernels
    got = wgfsim.velocity(name, *on_gpu(x, y), rng=7, backend="cupy", **params)
    assert isinstance(got, cp.ndarray) and got.dtype == np.float64 and got.shape == x.shape
    assert_close_gpu(got, ref, 1e-8)


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU_OK, reason=_GPU_WHY)
@pytest.mark.parametrize("name,params", FLOW_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FLOW_CASES)])
def test_flow_on_cupy_float32_is_close_to_float64(rng, name, params):
    x, y = _points(rng)
    xr, yr = rounded(x, np.float32), rounded(y, np.float32)
    ref = wgfsim.velocity(name, xr, yr, rng=7, **params)
    got = wgfsim.velocity(name, *on_gpu(x, y, dtype=np.float32), rng=7, backend="cupy", **params)
    assert got.dtype == np.float32 and bool(cp.all(cp.isfinite(got)))
    assert_close_gpu(got, ref, 2e-3)


ENERGY_CASES = [(name, params) for name, params in FLOW_CASES if flows.get(name).energy is not None]


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU_OK, reason=_GPU_WHY)
@pytest.mark.parametrize("name,params", ENERGY_CASES)
def test_energy_on_cupy_equals_numpy(rng, name, params):
    x, y = _points(rng, n=80, m=90)
    ref = wgfsim.energy(name, x, y, rng=3, **params)
    got = wgfsim.energy(name, *on_gpu(x, y), rng=3, backend="cupy", **params)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU_OK, reason=_GPU_WHY)
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
    assert_close_gpu(xg, xc, 1e-7)


# ---------------------------------------------------------------- host synchronisation of the Sinkhorn loop
class CountingScalar(np.ndarray):
    """A 0-d array that counts its conversions to a Python float (the host syncs of a device array)."""

    reads = 0

    def __float__(self):
        CountingScalar.reads += 1
        return float(np.asarray(self))


def test_sinkhorn_reads_its_error_every_k_iterations(rng, monkeypatch):
    # a GPU array's error stays on the device; float() blocks the host, so the loop reads it back
    # only every CHECK_EVERY iterations and at the last: 10, 20, 30 and 35 of 35 iterations
    from wgfsim.flows import sinkhorn

    plain = sinkhorn._marginal_error
    monkeypatch.setattr(sinkhorn, "_marginal_error", lambda *a: np.asarray(plain(*a)).view(CountingScalar))
    monkeypatch.setattr(sinkhorn, "_check_every", lambda x: sinkhorn.CHECK_EVERY)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) + 1.0
    CountingScalar.reads = 0
    f, g, fxx, it, err = sinkhorn.solve(x, y, None, None, 0.05, "sqeuclidean", tol=1e-30, max_iter=35, backend="numpy")
    assert (it, CountingScalar.reads) == (35, 4)
    # converged at a check: the same potentials as checking every iteration, a few iterations later at most
    CountingScalar.reads = 0
    f, g, fxx, it, err = sinkhorn.solve(x, y, None, None, 1.0, "sqeuclidean", tol=1e-6, max_iter=500, backend="numpy")
    assert it % sinkhorn.CHECK_EVERY == 0 and err < 1e-6 and CountingScalar.reads == it // sinkhorn.CHECK_EVERY
    monkeypatch.setattr(sinkhorn, "_check_every", lambda x: 1)
    f1, g1, fxx1, it1, err1 = sinkhorn.solve(x, y, None, None, 1.0, "sqeuclidean", tol=1e-6, max_iter=500, backend="numpy")
    assert it - sinkhorn.CHECK_EVERY < it1 <= it
    np.testing.assert_allclose(f, f1, atol=1e-5)


def test_every_mutant_of_the_mutation_check_still_applies():
    # tests/cuda_emulation/mutations.py injects each bug by replacing a text that must occur
    # exactly once in the kernel source: a kernel edit that moves one is caught here, not later
    from cuda_emulation import mutations

    text = gpu.source_path().read_text()
    assert len(mutations.MUTANTS) >= 9
    for name, (_, old, new) in mutations.MUTANTS.items():
        assert text.count(old) == 1, name
        assert mutations.mutate(text, name) != text
