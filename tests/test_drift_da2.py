"""``drift_da2`` against dense float64 transcriptions written here from the formulas.

Truths (no line of wgfsim computes them):

* the official drifting field (lambertae/drifting, ``drift_loss.py``), transcribed
  from its formulas: mean distance over all N x (N + M) pairs with self pairs,
  ``exp(-dist / (T mbar))`` with the self pair pushed away by +100 normalised
  distance units, joint row/column softmax, the floor on their product,
  column weights, the split and the cross-weighting, per-temperature RMS
  normalisation in scaled coordinates, back to data units;
* the paper's Algorithm 2 (docs/math.md#drift-da2), dense, with the exact self mask;
* closed forms: the RMS of a normalised single-temperature field is ``mbar / sqrt(d)``;
  a floor above every affinity moves every particle by ``f^2 N M (ybar - xbar)``;
  the normalised field is equivariant under scaling, ``v(c x, c y) = c v(x, y)``;
* SciPy's ``cdist`` for the mean distance.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

import wgfsim
from wgfsim import flows
from wgfsim.primitives import dense
from wgfsim.errors import OptionError
from wgfsim.scenario import expand, loads

OFFICIAL_T = (0.02, 0.05, 0.2)


# ---------------------------------------------------------------- the references (dense, float64)

def official_drift(gen, pos, temperatures, w_gen=None, w_pos=None, floor=1e-3, distance_floor=1e-4):
    """The official field, step by step: targets are [gen | pos] (no extra negatives), weights default 1.

    The official ``cdist`` is ``sqrt(max(|x - y|^2, 1e-8))`` on every pair, self pairs included (so the
    mean distance counts them at 1e-4).  Returns ``goal - gen`` in data units (the velocity of one drift step).
    """
    n, d = gen.shape
    targets = np.concatenate([gen, pos])  # (N + M, d)
    w = np.concatenate([np.ones(n) if w_gen is None else w_gen, np.ones(len(pos)) if w_pos is None else w_pos])
    dist = np.sqrt(np.maximum(cdist(gen, targets, "sqeuclidean"), distance_floor**2))  # (N, N + M)
    scale = (dist * w[None, :]).mean() / w.mean()
    scale_inputs = scale / np.sqrt(d)
    gen_s, targets_s = gen / scale_inputs, targets / scale_inputs
    dist_normed = dist / scale
    dist_normed[np.arange(n), np.arange(n)] += 100.0  # the official self mask
    force = np.zeros_like(gen)
    for t in temperatures:
        logits = -dist_normed / t
        row = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        col = np.exp(logits - logsumexp(logits, axis=0, keepdims=True))
        aff = np.sqrt(np.maximum(row * col, floor**2)) * w[None, :]
        neg, pos_ = aff[:, :n], aff[:, n:]
        coeff = np.concatenate([-neg * pos_.sum(1, keepdims=True), pos_ * neg.sum(1, keepdims=True)], axis=1)
        f = coeff @ targets_s - coeff.sum(1, keepdims=True) * gen_s
        force += f / np.sqrt(np.mean(f**2))
    return (gen_s + force) * scale_inputs - gen


def algorithm2(x, y, temperatures, cost="euclidean", wx=None, wy=None, floor=0.0, mask=True, eps_scale=1.0):
    """The paper's Algorithm 2, dense: L = [l(X,Y) | l(X,X) masked], A = sqrt(softmax_row softmax_col)."""
    n = len(x)
    cols = np.concatenate([y, x])  # (M + N, d)
    w = np.concatenate([np.ones(len(y)) if wy is None else wy, np.ones(n) if wx is None else wx])
    dist = cdist(x, cols)
    c = 0.5 * dist**2 if cost == "sqeuclidean" else dist
    v = np.zeros_like(x)
    for t in temperatures:
        logits = -c / (t * eps_scale)
        if mask:
            logits[np.arange(n), len(y) + np.arange(n)] = -np.inf
        a = np.sqrt(np.exp(logits - logsumexp(logits, axis=1, keepdims=True)) * np.exp(logits - logsumexp(logits, axis=0, keepdims=True)))
        a = np.maximum(a, floor) * w[None, :]
        a_plus, a_minus = a[:, : len(y)], a[:, len(y):]
        w_plus = a_plus * a_minus.sum(1, keepdims=True)
        w_minus = a_minus * a_plus.sum(1, keepdims=True)
        v += (w_plus @ y - w_plus.sum(1, keepdims=True) * x) - (w_minus @ x - w_minus.sum(1, keepdims=True) * x)
    return v


def points(rng, n, m, d):
    return rng.normal(size=(n, d)), rng.normal(size=(m, d)) * 0.7 + 0.8


def assert_close(got, ref, rtol):
    """Normwise: ``max |got - ref| <= rtol max |ref|``."""
    err = np.abs(got - ref).max()
    assert err <= rtol * np.abs(ref).max(), (err, np.abs(ref).max())


# ---------------------------------------------------------------- the official code

@pytest.mark.truth("drift_da2")
@pytest.mark.parametrize("d", [1, 2, 3, 17])
@pytest.mark.parametrize("temperatures", [(0.05,), OFFICIAL_T], ids=["one_T", "three_T"])
@pytest.mark.parametrize("weighted", [False, True], ids=["uniform", "weighted"])
def test_official_preset_is_the_official_field(rng, d, temperatures, weighted):
    n, m = 37, 53
    x, y = points(rng, n, m, d)
    a = b = w_gen = w_pos = None
    if weighted:
        a, b = rng.random(n) + 0.2, rng.random(m) + 0.2
        a, b = a / a.sum(), b / b.sum()
        w_gen, w_pos = n * a, m * b  # the official per-sample weights: 1 for uniform samples
    ref = official_drift(x, y, temperatures, w_gen, w_pos)
    got = wgfsim.velocity("drift_da2", x, y, a=a, b=b, temperatures=temperatures, preset="official")
    assert_close(got, ref, 1e-10)


@pytest.mark.truth("drift_da2")
def test_official_distance_floor_on_close_pairs_in_1d(rng):
    # 1-D data with pairs closer than 1e-4 (the official cdist floors them, self pairs included): the preset
    # follows the transcription with the floor, and the exact-distance field is measurably another one
    x = np.sort(rng.normal(size=(150, 1)), axis=0)
    y = rng.normal(size=(110, 1)) * 0.8 + 0.3
    y[:40] = x[::3][:40] + rng.uniform(-5e-5, 5e-5, size=(40, 1))  # target points within 1e-4 of particles
    x[1::7] = x[::7][: len(x[1::7])] + 3e-5  # close particle pairs
    ref = official_drift(x, y, OFFICIAL_T)
    got = wgfsim.velocity("drift_da2", x, y, temperatures=OFFICIAL_T, preset="official")
    assert_close(got, ref, 1e-10)
    exact = official_drift(x, y, OFFICIAL_T, distance_floor=0.0)
    assert np.abs(exact - ref).max() > 1e-6 * np.abs(ref).max()
    # the mean distance counts the N self pairs at 1e-4: its own closed form against the floored cdist
    cols = np.concatenate([x, y])
    floored = np.sqrt(np.maximum(cdist(x, cols, "sqeuclidean"), 1e-8)).mean()
    assert flows.drift_da2.mean_distance(x, y, distance_floor=1e-4) == pytest.approx(floored, rel=1e-13)


def test_official_floor_changes_the_field_at_order_one(rng):
    # the floor is not a rounding detail: without it the direction is different in low dimension
    x, y = points(rng, 60, 80, 2)
    with_floor = official_drift(x, y, (0.02,))
    without = official_drift(x, y, (0.02,), floor=0.0, distance_floor=0.0)
    cos = np.sum(with_floor * without) / np.sqrt(np.sum(with_floor**2) * np.sum(without**2))
    assert cos < 0.9
    got = wgfsim.velocity("drift_da2", x, y, temperatures=0.02, normalize_distances=True, normalize_drift=True)
    assert_close(got, without, 1e-10)


# ---------------------------------------------------------------- the paper's Algorithm 2 (defaults)

@pytest.mark.truth("drift_da2")
@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean"])
def test_default_is_algorithm2(rng, d, cost):
    x, y = points(rng, 41, 29, d)
    temperatures = OFFICIAL_T if cost == "euclidean" else (0.1, 0.5)
    ref = algorithm2(x, y, temperatures, cost=cost)
    assert_close(wgfsim.velocity("drift_da2", x, y, temperatures=temperatures, cost=cost), ref, 1e-10)


@pytest.mark.truth("drift_da2")
def test_weights_multiply_the_affinities(rng):
    x, y = points(rng, 30, 45, 2)
    a, b = rng.dirichlet(np.ones(30)), rng.dirichlet(np.ones(45))
    ref = algorithm2(x, y, (0.3,), wx=30 * a, wy=45 * b)
    assert_close(wgfsim.velocity("drift_da2", x, y, a=a, b=b, temperatures=0.3), ref, 1e-10)
    # uniform weights passed explicitly are the unweighted field
    uniform = wgfsim.velocity("drift_da2", x, y, a=np.full(30, 1 / 30), b=np.full(45, 1 / 45), temperatures=0.3)
    assert_close(uniform, algorithm2(x, y, (0.3,)), 1e-10)


@pytest.mark.truth("drift_da2")
def test_self_pair_is_excluded(rng):
    # the mask (the paper's and the official code's exclude-self) is on: the unmasked formula is far away
    x, y = points(rng, 40, 40, 2)
    got = wgfsim.velocity("drift_da2", x, y, temperatures=0.2)
    assert_close(got, algorithm2(x, y, (0.2,), mask=True), 1e-10)
    unmasked = algorithm2(x, y, (0.2,), mask=False)
    assert np.abs(got - unmasked).max() > 0.1 * np.abs(unmasked).max()


# ---------------------------------------------------------------- each official option alone

def _mbar(x, y):
    return cdist(x, np.concatenate([x, y])).mean()  # N x (N + M) pairs, self pairs included


@pytest.mark.truth("drift_da2")
@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean"])
def test_normalize_distances_is_a_temperature_in_units_of_the_mean_distance(rng, cost):
    x, y = points(rng, 35, 50, 3)
    mbar = _mbar(x, y)
    ref = algorithm2(x, y, (0.05, 0.2), cost=cost, eps_scale=mbar if cost == "euclidean" else mbar**2)
    got = wgfsim.velocity("drift_da2", x, y, temperatures=(0.05, 0.2), cost=cost, normalize_distances=True)
    assert_close(got, ref, 1e-10)
    # dimensionless kernel: scaling the data scales the field once
    scaled = wgfsim.velocity("drift_da2", 3.0 * x, 3.0 * y, temperatures=(0.05, 0.2), cost=cost, normalize_distances=True)
    assert_close(scaled, 3.0 * got, 1e-10)


@pytest.mark.truth("drift_da2")
def test_normalize_drift_is_in_data_units_with_the_exact_mean_distance(rng):
    # N + M > 2048: the sizes at which a strided mean would be used; RMS of one field = mbar / sqrt(d) exactly
    x, y = points(rng, 1100, 1200, 2)
    v = wgfsim.velocity("drift_da2", x, y, temperatures=0.3, normalize_drift=True)
    rms = np.sqrt(np.mean(v**2))
    assert abs(rms - _mbar(x, y) / np.sqrt(2)) <= 1e-12 * rms


@pytest.mark.truth("drift_da2")
def test_normalize_drift_sums_unit_rms_fields(rng):
    x, y = points(rng, 33, 47, 2)
    parts = [algorithm2(x, y, (t,)) for t in (0.1, 0.4)]
    ref = _mbar(x, y) / np.sqrt(2) * sum(p / np.sqrt(np.mean(p**2)) for p in parts)
    assert_close(wgfsim.velocity("drift_da2", x, y, temperatures=(0.1, 0.4), normalize_drift=True), ref, 1e-10)


@pytest.mark.truth("drift_da2")
def test_affinity_floor_alone_is_algorithm2_with_the_floor(rng):
    x, y = points(rng, 31, 43, 2)
    ref = algorithm2(x, y, (0.05, 0.3), floor=2e-3)
    assert_close(wgfsim.velocity("drift_da2", x, y, temperatures=(0.05, 0.3), affinity_floor=2e-3), ref, 1e-10)


@pytest.mark.truth("drift_da2")
def test_a_floor_above_every_affinity_moves_every_particle_by_the_mean_difference(rng):
    # every A_ij <= 1, so A = f everywhere: v_i = (N f)(f sum_j (y_j - x_i)) - (M f)(f sum_k (x_k - x_i))
    n, m, f = 25, 40, 2.0
    x, y = points(rng, n, m, 3)
    v = wgfsim.velocity("drift_da2", x, y, temperatures=0.1, affinity_floor=f)
    expected = f * f * n * m * (y.mean(0) - x.mean(0))
    assert_close(v, np.broadcast_to(expected, v.shape), 1e-12)


def test_dense_mean_distance_is_exact(rng):
    x, y = rng.normal(size=(1500, 2)), rng.normal(size=(1300, 2)) + 1.0
    assert abs(dense.mean_distance(x, y) - cdist(x, y).mean()) <= 1e-13


# ---------------------------------------------------------------- the preset and its keys

def test_preset_official_is_the_four_options():
    p = flows.make_params("drift_da2", preset="official")
    assert (p.normalize_distances, p.normalize_drift, p.affinity_floor, p.distance_floor) == (True, True, 1e-3, 1e-4)
    assert flows.make_params("drift_da2") == flows.make_params("drift_da2", preset="none")
    paper = flows.make_params("drift_da2")  # the default is the paper's algorithm
    assert (paper.normalize_distances, paper.normalize_drift, paper.affinity_floor, paper.distance_floor) == (False, False, 0.0, 0.0)
    # the preset's own values may be repeated (a stored run reloads its full options)
    assert flows.make_params("drift_da2", preset="official", normalize_drift=True, affinity_floor=1e-3) == p
    stored = dataclasses.asdict(p)
    assert flows.make_params("drift_da2", **stored) == p
    # any other value is refused, the paper's default included (it used to be overridden silently)
    for option, value in (("affinity_floor", 1e-2), ("affinity_floor", 0.0), ("normalize_drift", False),
                          ("distance_floor", 0.0)):
        with pytest.raises(OptionError, match=rf"drift_da2: option '{option}' expected .* or no value: preset = 'official' sets it"):
            flows.make_params("drift_da2", preset="official", **{option: value})
    with pytest.raises(ValueError, match=r"drift_da2: option 'preset' expected one of \('none', 'official'\)"):
        flows.make_params("drift_da2", preset="paper")
    with pytest.raises(ValueError, match=r"drift_da2: option 'affinity_floor' expected a non-negative number"):
        flows.make_params("drift_da2", affinity_floor=-1.0)


def test_scenario_accepts_the_preset():
    text = """
name = "p"
[target]
kind = "gaussian"
dim = 2
n = 64
[init]
kind = "gaussian"
dim = 2
n = 32
[[flow]]
name = "drift_da2"
preset = "official"
temperatures = [[0.02, 0.05, 0.2]]
[run]
steps = 2
step_size = 0.1
seeds = [0]
"""
    (point,) = expand(loads(text))
    p = flows.make_params(point.flow, **point.params)
    assert p.preset == "official" and p.affinity_floor == 1e-3 and p.temperatures == OFFICIAL_T


# ---------------------------------------------------------------- field_at: the same formulas at a row no column sees

@pytest.mark.truth("drift_da2")
def test_field_at_is_an_extra_unmasked_row(rng):
    x, y = points(rng, 30, 40, 2)
    z = rng.normal(size=(7, 2))
    flow = flows.get("drift_da2")
    params = flows.make_params("drift_da2", temperatures=(0.05, 0.3), affinity_floor=1e-3, normalize_distances=True)
    got = flow.field_at(z, x, y, None, None, params, flows.Context(backend="numba", rng=np.random.default_rng(0)))
    # dense: z's rows are normalised over all M + N columns; columns over the particle rows (masked)
    cols = np.concatenate([y, x])
    mbar = _mbar(x, y)
    ref = np.zeros_like(z)
    for t in (0.05, 0.3):
        lx = -cdist(x, cols) / (t * mbar)
        lx[np.arange(30), 40 + np.arange(30)] = -np.inf
        lz = -cdist(z, cols) / (t * mbar)
        a = np.exp(lz - 0.5 * logsumexp(lz, axis=1, keepdims=True) - 0.5 * logsumexp(lx, axis=0, keepdims=True))
        a = np.maximum(a, 1e-3)
        sp, sm = a[:, :40].sum(1, keepdims=True), a[:, 40:].sum(1, keepdims=True)
        ref += sm * (a[:, :40] @ y - sp * z) - sp * (a[:, 40:] @ x - sm * z)
    assert_close(got, ref, 1e-10)


# ---------------------------------------------------------------- the GPU path honours the options

GPU_CASES = [
    dict(preset="official"),
    dict(affinity_floor=1e-3, temperatures=0.05),
    dict(normalize_distances=True, cost="sqeuclidean", temperatures=(0.05, 0.2)),
    dict(normalize_drift=True),
]


@pytest.mark.truth("drift_da2")
@pytest.mark.gpu
@pytest.mark.parametrize("weighted", [False, True], ids=["uniform", "weighted"])
@pytest.mark.parametrize("params", GPU_CASES, ids=[str(i) for i in range(len(GPU_CASES))])
def test_gpu_equals_cpu(rng, params, weighted):
    cp = pytest.importorskip("cupy")
    from wgfsim.backend import cupy_status

    ok, why = cupy_status()
    if not ok:
        pytest.skip(why)
    # sizes past one row block of the floored pass (2^20 numbers) so the blocks are exercised
    x, y = points(rng, 700, 900, 3)
    a = rng.dirichlet(np.ones(700)) if weighted else None
    b = rng.dirichlet(np.ones(900)) if weighted else None
    ref = wgfsim.velocity("drift_da2", x, y, a=a, b=b, backend="numpy", **params)  # the dense float64 reference
    on = (lambda w: None if w is None else cp.asarray(w))
    got = wgfsim.velocity("drift_da2", cp.asarray(x), cp.asarray(y), a=on(a), b=on(b), backend="cupy", **params)
    assert isinstance(got, cp.ndarray) and got.dtype == np.float64
    assert_close(cp.asnumpy(got), ref, 1e-8)
    got32 = wgfsim.velocity("drift_da2", cp.asarray(x, np.float32), cp.asarray(y, np.float32),
                            a=None if a is None else cp.asarray(a, np.float32), b=None if b is None else cp.asarray(b, np.float32),
                            backend="cupy", **params)
    assert got32.dtype == np.float32 and bool(cp.all(cp.isfinite(got32)))
    assert_close(cp.asnumpy(got32).astype(np.float64), ref, 5e-3)
