"""Analysis: half-times, two-atom initial velocities, fields at arbitrary points, curl.

Truths: the closed forms of docs/math.md#truth-1 (wgfsim.analytic), the exact
gradient structure of MMD (v = -sigma^2 grad f), an independent dense NumPy
construction of DA2's row for an evaluation point, and the closed-form curl of
our reconstruction of Gretton et al.'s toy example.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import wgfsim
from wgfsim import analytic, diagnostics as analysis, fields, runner, scenario
from wgfsim.studies import curl as curl_study, mass_transfer as mt_study
from wgfsim.io import RunStore, open_run

# ---------------------------------------------------------------- half-times on synthetic runs


def _run_file(path, curves, t, *, target=(0.5, 0.5), n=10):
    """A stored group whose run r has mode_mass[:, 0] = curves[r] (records at times t)."""
    rng = np.random.default_rng(0)
    store = RunStore.create(
        path,
        run_coords={"flow": ["kl_kde"] * len(curves), "method": ["particles"] * len(curves), "seed": list(range(len(curves)))},
        n_particles=n,
        dim=1,
        mode_names=["left", "right"],
        target=rng.normal(size=(n, 1)),
        reference=rng.normal(size=(n, 1)),
        attrs={},
        mode_centres=[[-1.0], [1.0]],
        target_mode_mass=list(target),
        run_text={"flow_params": ['{"flow": "kl_kde", "bandwidth": [1.0]}'] * len(curves)},
    )
    for r, curve in enumerate(curves):
        for k, (m, tk) in enumerate(zip(curve, t)):
            store.write_record(r, k, {"step": k, "t": float(tk), "position": np.zeros((n, 1)), "mode_mass": [m, 1 - m]})
    return store.finish()


def test_half_time_of_exponential_decay_and_never(tmp_path):
    t = np.linspace(0.0, 10.0, 81)
    tau = 2.0
    decay = 0.5 - 0.3 * np.exp(-t / tau)  # error 0.3 e^{-t/tau}: halves at tau ln 2
    stuck = np.full_like(t, 0.2)  # never moves
    there = np.full_like(t, 0.5)  # already at the target
    ds = open_run(_run_file(tmp_path / "h.h5", [decay, stuck, there], t))
    h = analysis.half_time(ds)
    assert h.dims == ("run",)
    assert h.values[0] == pytest.approx(tau * math.log(2), abs=(t[1] - t[0]) ** 2)  # linear interpolation: O(dt^2)
    assert np.isinf(h.values[1])
    assert h.values[2] == 0.0
    # the record's own time without interpolation: the first record at or past the crossing
    h_rec = analysis.half_time(ds, interpolate=False)
    assert h_rec.values[0] == pytest.approx(t[np.argmax(0.3 * np.exp(-t / tau) <= 0.15)])
    # "first" mode's error halves at the same time for two modes
    assert analysis.half_time(ds, error="first").values[0] == pytest.approx(h.values[0])
    # an explicit target mass overrides the stored one
    assert np.isinf(analysis.half_time(ds, target_mass=[0.9, 0.1]).values[0])


def test_plot_half_times_draws_one_line_per_flow(tmp_path):
    t = np.linspace(0.0, 10.0, 21)
    ds = open_run(_run_file(tmp_path / "h.h5", [0.5 - 0.3 * np.exp(-t), 0.5 - 0.3 * np.exp(-t / 3)], t))
    fig = mt_study.plot_half_times(ds, sigma=1.0)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(lab.startswith("kl_kde") for lab in labels)
    assert fig.axes[0].get_yscale() == "log"


def test_fit_slopes_recovers_an_exponential():
    x = np.array([4.0, 6.0, 8.0, 10.0, 4.0, 6.0])
    h = np.array([np.exp(0.5 * 4) * 3, np.exp(0.5 * 6) * 3, np.exp(0.5 * 8) * 3, np.inf, 1.0, 1.0])
    fits = analysis.fit_slopes(x, h, ["a", "a", "a", "a", "b", "b"])
    assert fits["a"]["slope"] == pytest.approx(0.5) and fits["a"]["n"] == 3
    assert fits["b"]["slope"] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- two atoms: closed forms


D, PI, ALPHA = 1.5, 0.5, 0.2


def _atoms(n_left, n_right, D=D):
    return np.concatenate([np.full((n_left, 1), -D), np.full((n_right, 1), D)])


@pytest.mark.parametrize(
    "flow, params, sigma, closed",
    [
        ("kl_kde", {"bandwidth": 1.0}, 1.0, analytic.two_atom_kl_kde),
        ("kl_kde", {"bandwidth": 1.7}, 1.7, analytic.two_atom_kl_kde),
        ("sinkhorn_proxy", {"epsilon": 1.0}, 1.0, analytic.two_atom_sinkhorn_proxy),
        ("sinkhorn_proxy", {"epsilon": 2.25}, 1.5, analytic.two_atom_sinkhorn_proxy),
    ],
)
def test_initial_velocity_of_stacked_atoms_matches_the_closed_form(flow, params, sigma, closed):
    x = _atoms(20, 80)  # alpha = 0.2 exactly
    y = _atoms(60, 60)  # pi = 0.5, M != N
    v = wgfsim.velocity(flow, x, y, backend="numpy", **params)
    measured = v[x[:, 0] > 0, 0]
    assert np.ptp(measured) == 0.0 or np.ptp(measured) < 1e-15  # every stacked particle has the same velocity
    expected = closed(D, sigma, PI, ALPHA)
    assert measured.mean() == pytest.approx(expected, rel=1e-6)
    assert analysis.two_atom_closed_form(flow, D, PI, ALPHA, **params) == pytest.approx(expected, rel=1e-12)


def test_w2_initial_velocity_is_exact():
    x = _atoms(20, 80)
    y = _atoms(50, 50)
    v = wgfsim.velocity("w2_exact", x, y)
    assert v[x[:, 0] > 0, 0].mean() == pytest.approx(analytic.two_atom_w2(D, 1.0, PI, ALPHA), rel=1e-14)  # -1.125


def test_mirror_case_uses_the_left_atom():
    # alpha > pi: the left atom is overcrowded; its velocity points right
    x = _atoms(80, 20)
    y = _atoms(50, 50)
    v = wgfsim.velocity("kl_kde", x, y, bandwidth=1.0)
    assert v[x[:, 0] < 0, 0].mean() == pytest.approx(analysis.two_atom_closed_form("kl_kde", D, 0.5, 0.8, bandwidth=1.0), rel=1e-6)


ATOMS = """
name = "atoms"
[target]
kind = "two_modes"
separation = 3.0
weights = [0.5, 0.5]
std = 0.0
dim = 1
n = 40
[init]
kind = "two_modes"
separation = 3.0
weights = [0.2, 0.8]
std = 0.0
dim = 1
n = 50
[[flow]]
name = "kl_kde"
bandwidth = [1.0, [1.0, 1.5]]
[[flow]]
name = "sinkhorn_proxy"
epsilon = 1.0
[[flow]]
name = "mmd"
bandwidth = 1.0
[[flow]]
name = "w2_exact"
[run]
steps = 1
step_size = 0.1
record_every = 1
record_velocity = true
[metrics]
names = ["mode_mass"]
"""


def test_initial_velocity_through_a_stored_run(tmp_path):
    sc = scenario.loads(ATOMS, source="<atoms>")
    ds = open_run(runner.run_scenario(sc, tmp_path, progress=False))
    iv = analysis.initial_velocity(ds)
    assert list(iv["flow_name"].values) == ["kl_kde", "kl_kde", "sinkhorn_proxy", "mmd", "w2_exact"]
    np.testing.assert_array_equal(iv["n_overcrowded"].values, 40)  # 0.8 * 50 particles at +D
    np.testing.assert_allclose(iv["alpha"].values, 0.2)
    np.testing.assert_allclose(iv["D"].values, 1.5)
    expected = [
        analytic.two_atom_kl_kde(D, 1.0, PI, ALPHA),
        analytic.two_atom_kl_kde(D, 1.0, PI, ALPHA) + analytic.two_atom_kl_kde(D, 1.5, PI, ALPHA),  # two bandwidths sum
        analytic.two_atom_sinkhorn_proxy(D, 1.0, PI, ALPHA),
        -2 * D * analytic.kappa(D, 1.0) * (PI - ALPHA),  # MMD: only the far atoms pull
        analytic.two_atom_w2(D, 1.0, PI, ALPHA),
    ]
    np.testing.assert_allclose(iv["closed_form"].values, expected, rtol=1e-12)
    # stored velocities are float32: 6e-8 relative resolution
    np.testing.assert_allclose(iv["measured"].values, expected, rtol=3e-7)
    assert (iv["relative_error"].values < 3e-7).all()


# ---------------------------------------------------------------- fields at arbitrary points


@pytest.fixture
def cloud():
    rng = np.random.default_rng(3)
    return rng.normal(size=(40, 2)), rng.normal(size=(55, 2)) + [1.0, 0.0]


@pytest.mark.parametrize(
    "flow, params",
    [
        ("mmd", {"bandwidth": 0.8}),
        ("mmd", {"bandwidth": 0.8, "kernel": "laplace"}),
        ("kl_kde", {"bandwidth": [0.5, 1.0]}),
        ("sinkhorn_proxy", {"epsilon": 0.7}),
        ("sinkhorn_proxy", {"epsilon": [0.3, 1.0], "cost": "euclidean"}),
    ],
)
def test_field_at_the_particles_is_their_velocity(cloud, flow, params):
    x, y = cloud
    v = wgfsim.velocity(flow, x, y, backend="numpy", **params)
    np.testing.assert_allclose(fields.field_at(flow, x, x, y, backend="numpy", **params), v, rtol=1e-12, atol=1e-14)


def _da2_row_dense(z, x, y, temperature, cost):
    """docs/math.md#drift-da2 written out densely: z is an extra row; columns normalised over the particle rows."""

    def logits(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        c = d2 / 2 if cost == "sqeuclidean" else np.sqrt(d2)
        return -c / temperature

    from scipy.special import logsumexp

    lxy, lxx = logits(x, y), logits(x, x)
    np.fill_diagonal(lxx, -np.inf)
    col = np.concatenate([logsumexp(lxy, axis=0), logsumexp(lxx, axis=0)])  # (M + N,)
    lz = np.concatenate([logits(z, y), logits(z, x)], axis=1)  # (G, M + N): z is no particle, nothing masked
    row = logsumexp(lz, axis=1)  # (G,)
    A = np.exp(lz - row[:, None] / 2 - col[None, :] / 2)
    m = y.shape[0]
    Ap, Am = A[:, :m], A[:, m:]
    Wp, Wm = Ap * Am.sum(1, keepdims=True), Am * Ap.sum(1, keepdims=True)
    return (Wp[:, :, None] * (y[None] - z[:, None])).sum(1) - (Wm[:, :, None] * (x[None] - z[:, None])).sum(1)


@pytest.mark.parametrize("cost, temperature", [("sqeuclidean", 0.5), ("euclidean", 0.2)])
def test_da2_field_at_matches_a_dense_construction(cloud, cost, temperature):
    x, y = cloud
    z = np.random.default_rng(9).uniform(-2, 2, size=(30, 2))
    got = fields.field_at("drift_da2", z, x, y, temperatures=temperature, cost=cost)
    np.testing.assert_allclose(got, _da2_row_dense(z, x, y, temperature, cost), rtol=1e-10, atol=1e-13)


def test_mmd_curl_is_zero_and_the_proxy_and_da2_curls_are_not():
    x, y = curl_study.default_curl_setup()
    g = np.linspace(-2.0, 2.0, 15)
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    rel = {name: fields.relative_curl(name, x, y, grid, **params) for name, params in curl_study.CURL_FLOWS}
    # max|curl| / max||J||: for MMD only the O(h^2) differencing error remains (h = 1e-4 x spread)
    assert rel["mmd"] < 1e-6
    assert rel["sinkhorn_proxy"] > 1e-2
    assert rel["drift_da2"] > 1e-2
    # the step does not matter for a gradient: a 10x larger h is still curl-free to O(h^2)
    assert fields.relative_curl("mmd", x, y, grid, h=5e-3, bandwidth=1.0) < 1e-4
    c, v = fields.curl("mmd", x, y, grid, bandwidth=1.0)
    assert c.shape == (grid.shape[0],) and v.shape == grid.shape


def test_toy_example_curl_matches_its_closed_form():
    toy = curl_study.toy_example()
    assert abs(toy["wedge"]) > 0.1  # grad Gamma and grad psi are not parallel: not a gradient field (eq. 39)
    assert toy["curl_measured"] == pytest.approx(toy["curl_closed_form"], rel=1e-6)
    np.testing.assert_allclose(toy["field"], toy["field_closed_form"], rtol=1e-12)


def test_curl_figure_has_three_panels():
    fig = curl_study.plot_curl_maps(grid_size=9)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t.split(":")[0] for t in titles] == ["mmd", "sinkhorn_proxy", "drift_da2"]


# ---------------------------------------------------------------- the study


@pytest.mark.slow
def test_mass_transfer_study(tmp_path):
    """Kernel flows' half-times grow exponentially in separation^2/sigma^2; transport flows' stay bounded."""
    study = mt_study.mass_transfer_study(tmp_path, x_values=(4.0, 6.0, 8.0, 10.0), kernel_steps=200, workers=2)
    h = study.half_times
    print(study.table())
    for flow in ("kl_kde", "sinkhorn_proxy"):
        vals = h.sel(flow=flow).values.ravel()
        finite = vals[np.isfinite(vals)]
        assert finite.size >= 3
        assert (np.diff(np.log(finite)) > 0).all()  # strictly growing over the range where runs finish
        slope = study.slopes[flow]["slope"]
        assert 0.25 < slope < 1.0, slope  # exponential growth, next to the closed form's 1/2
    for flow in ("sinkhorn", "sliced", "w2_exact"):
        vals = h.sel(flow=flow).values.ravel()
        assert np.isfinite(vals).all() and vals.max() < 3.0
        assert vals.max() / vals.min() < 3.0  # no growth with the separation
