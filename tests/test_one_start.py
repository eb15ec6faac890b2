"""One start for both methods (generator ``start = "init"``, ``[init] kind = "generator"``) and the fit residual.

Truths:

- mode masses at t = 0 of the particles (stratified ``two_modes``: exactly the
  weights) and of the generator fitted to the same ``[init]`` agree within 0.03;
- the MMD^2 between the two t = 0 samples (Gaussian kernel, bandwidth h = 1,
  the biased V-statistic written out here) is below
  ``B = (0.03 s / h)^2 + 1/n + 1/m``.  Derivation: for the Gaussian kernel
  ``||k(x, .) - k(x', .)||_H = sqrt(2 - 2 exp(-|x - x'|^2 / (2 h^2))) <= |x - x'| / h``,
  so integrating over any coupling gives ``MMD <= W1 / h``; a fit whose only
  error is a mass error of 0.03 moved across the gap ``s`` is within
  ``W1 = 0.03 s``, hence ``MMD^2 <= (0.03 s / h)^2``.  The second term is the
  V-statistic's expectation for two independent samples of one measure,
  ``(1/n + 1/m)(k(0) - E k(x, x')) <= 1/n + 1/m``;
- with ``kind = "generator"`` the particles are the generator's t = 0 samples
  point for point (the same latents and parameters), so both numbers are 0;
- a run killed mid-way and resumed writes the same file as an uninterrupted one;
- the fit residual of one step equals the residual computed here from the
  network's outputs and the MMD field written out in NumPy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import wgfsim
from wgfsim import runner
from wgfsim.methods.generator import MLPConfig, TrainConfig, init, step
from wgfsim.methods.generator.method import GeneratorMethod
from wgfsim.methods.generator.mlp import apply
from wgfsim.methods.generator.residual import fit_residual
from wgfsim.scenario import ScenarioError, loads

SEP, N = 4.0, 2000

_TEXT = """
name = "one_start"
[target]
kind = "two_modes"
separation = {sep}
weights = [0.5, 0.5]
std = 0.1
dim = 1
n = 400
[init]
{init}
n = {n}
[[flow]]
name = "mmd"
bandwidth = 1.0
[run]
methods = ["particles", "generator"]
steps = {steps}
step_size = 0.5
record_every = {every}
[generator]
{start}
width = 64
depth = 3
batch_size = 256
learning_rate = 3e-3
drift_step = 0.5
eval_n = {n}
[metrics]
names = ["mode_mass"]
reference_n = 400
"""
_INIT = f'kind = "two_modes"\nseparation = {SEP}\nweights = [0.2, 0.8]\nstd = 0.1\ndim = 1'


def _scenario(init=_INIT, start='start = "init"\nstart_steps = 800', n=N, steps=1):
    return loads(_TEXT.format(sep=SEP, init=init, start=start, n=n, steps=steps, every=min(2, steps)))


def _mmd2_v(x, y, h=1.0):
    """Biased V-statistic MMD^2 with k = exp(-|x - y|^2 / (2 h^2)), 1-D (a slow, obvious reference)."""
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    k = lambda a, b: np.exp(-((a[:, None] - b[None, :]) ** 2) / (2 * h * h)).mean()  # noqa: E731
    return k(x, x) + k(y, y) - 2 * k(x, y)


def _t0(path):
    ds = wgfsim.open_run(path)
    methods = list(ds["method"].values)
    p, g = methods.index("particles"), methods.index("generator")
    return ds, ds["position"].isel(run=p, time=0).values, ds["position"].isel(run=g, time=0).values, p, g


def test_start_init_fits_the_init_measure(tmp_path):
    path = runner.run_scenario(_scenario(), tmp_path, progress=False)
    ds, xp_, xg, p, g = _t0(path)
    masses = ds["mode_mass"].isel(time=0).values  # (run, mode)
    np.testing.assert_allclose(masses[p], [0.2, 0.8], atol=1e-12)  # stratified init: exact
    assert np.abs(masses[g] - masses[p]).max() < 0.03
    bound = (0.03 * SEP / 1.0) ** 2 + 2.0 / N
    assert _mmd2_v(xp_, xg) < bound
    # the fit's quality is stored at the first record only
    start = ds["start_mmd2"].isel(run=g).values
    assert np.isfinite(start[0]) and 0 < start[0] < 0.1 and np.isnan(start[1:]).all()
    assert np.isnan(ds["start_mmd2"].isel(run=p).values).all()
    assert ds["start_mmd2"].attrs["long_name"] and ds["fit_residual"].attrs["units"] == "1"


def test_init_kind_generator_is_the_untrained_generator(tmp_path):
    sc = _scenario(init='kind = "generator"', start="", n=500)
    path = runner.run_scenario(sc, tmp_path, progress=False)
    ds, xp_, xg, p, g = _t0(path)
    np.testing.assert_array_equal(xp_, xg)  # the same points: mass difference and MMD^2 are 0
    masses = ds["mode_mass"].isel(time=0).values
    assert np.abs(masses[g] - masses[p]).max() == 0.0
    assert _mmd2_v(xp_, xg) < 1e-12
    # the untrained network is one blob, not the two-mode target: its start is not the target's
    assert abs(float(np.std(xg)) - SEP / 2) > 0.5


def test_scenario_errors_name_the_key():
    with pytest.raises(ScenarioError, match="generator.start"):
        _scenario(start='start = "target"')
    with pytest.raises(ScenarioError, match="init.separation"):
        _scenario(init='kind = "generator"\nseparation = 4.0', start="")
    with pytest.raises(ScenarioError, match='generator.start.*start = "random"'):
        _scenario(init='kind = "generator"', start='start = "init"', n=50)
    # a particles-only scenario may carry [generator] settings for kind = "generator"
    text = _TEXT.format(sep=SEP, init='kind = "generator"', start="", n=50, steps=1, every=1).replace(
        'methods = ["particles", "generator"]', 'methods = ["particles"]')
    assert loads(text).generator.width == 64


def test_resume_after_a_kill_writes_the_same_file(tmp_path, monkeypatch):
    sc = _scenario(start='start = "init"\nstart_steps = 30', n=100, steps=4)
    ref = runner.run_scenario(sc, tmp_path / "ref", progress=False)
    real = GeneratorMethod.advance

    def advance(self, state, v):
        if state.step == 2:
            monkeypatch.setattr(GeneratorMethod, "advance", real)
            raise KeyboardInterrupt
        return real(self, state, v)

    monkeypatch.setattr(GeneratorMethod, "advance", advance)
    with pytest.raises(KeyboardInterrupt):
        runner.run_scenario(sc, tmp_path / "out", progress=False)
    out = runner.run_scenario(sc, tmp_path / "out", resume=True, progress=False)
    a, b = wgfsim.open_run(ref), wgfsim.open_run(out)
    for name in ("position", "mode_mass", "start_mmd2", "fit_residual", "loss"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    r = a["fit_residual"].isel(run=list(a["method"].values).index("generator")).values
    assert np.isfinite(r[:-1]).all() and np.isnan(r[-1])  # no step follows the last record


def _mmd_field(z, x, y, h):
    """The MMD flow's field sum_j k(z,y_j)(y_j - z)/M - sum_i k(z,x_i)(x_i - z)/N (docs/math.md), 2-D."""
    def part(pts):
        d = pts[None, :, :] - z[:, None, :]  # (K, P, d)
        k = np.exp(-(d ** 2).sum(-1) / (2 * h * h))  # (K, P)
        return (k[:, :, None] * d).mean(1)
    return part(y) - part(x)


def test_fit_residual_against_a_hand_computation():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 2)) + 1.0
    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=2, width=3, depth=1), learning_rate=0.05, batch_size=16,
                      drift_step=0.7)
    state = init(cfg, y, wgfsim.Field("mmd", bandwidth=1.5), np.random.default_rng(1))
    new, _ = step(state, cfg)
    z_eval = rng.normal(size=(30, 2))
    got = fit_residual(state.params, new.params, cfg.mlp, cfg.drift_step, new.batch, z_eval, "mmd", {"bandwidth": 1.5})
    old_out, new_out = apply(state.params, z_eval, cfg.mlp), apply(new.params, z_eval, cfg.mlp)
    ev = cfg.drift_step * _mmd_field(old_out, new.batch["x"], y, 1.5)  # eta v at the old evaluation samples
    want = math.sqrt(((new_out - old_out - ev) ** 2).sum(1).mean()) / math.sqrt((ev ** 2).sum(1).mean())
    assert got == pytest.approx(want, rel=1e-10)
    # no move at all is a residual of exactly 1; the batch's own field (the step's targets) agrees with the test's
    assert fit_residual(state.params, state.params, cfg.mlp, 0.7, new.batch, z_eval, "mmd", {"bandwidth": 1.5}) == 1.0
    np.testing.assert_allclose(new.batch["x_target"] - new.batch["x"],
                               0.7 * _mmd_field(new.batch["x"], new.batch["x"], y, 1.5), rtol=1e-9, atol=1e-12)
    # flows with no field at arbitrary points (w2_exact): the step's own batch, where the targets are known
    sl = init(cfg, y, wgfsim.Field("w2_exact"), np.random.default_rng(1))
    sl_new, _ = step(sl, cfg)
    b = sl_new.batch
    moved, disp = apply(sl_new.params, b["z"], cfg.mlp) - b["x"], b["x_target"] - b["x"]
    want = math.sqrt(((moved - disp) ** 2).sum(1).mean()) / math.sqrt((disp ** 2).sum(1).mean())
    got = fit_residual(sl.params, sl_new.params, cfg.mlp, 0.7, b, z_eval, "w2_exact", {})
    assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.slow
def test_a_sweep_starts_every_point_at_the_same_untrained_generator(tmp_path):
    from wgfsim.io import open_sweep
    from wgfsim.sweep import run_sweep

    # kind = "generator" under a target sweep: the untrained generator does not see the target, so every
    # separation's particles start at the same points
    text = _TEXT.format(sep="[3.0, 4.0]", init='kind = "generator"', start="", n=64, steps=1, every=1)
    text = text.replace('methods = ["particles", "generator"]', 'methods = ["particles"]')
    run_sweep(loads(text), tmp_path / "gen", progress=False)
    ds = open_sweep(tmp_path / "gen", layout="runs", variables=["position"])
    x0 = ds["position"].isel(time=0).values  # (run, particle, dim)
    assert x0.shape[0] == 2
    np.testing.assert_array_equal(x0[1], x0[0])
    # and they are the generator's own t = 0 samples: the same as a plain run of both methods
    path = runner.run_scenario(_scenario(init='kind = "generator"', start="", n=64), tmp_path / "run", progress=False)
    np.testing.assert_array_equal(_t0(path)[2], x0[0])


@pytest.mark.slow
def test_a_sweep_fits_each_points_init(tmp_path):
    from wgfsim.io import open_sweep
    from wgfsim.sweep import run_sweep

    # start = "init" with the init's separation tied to the target's: each point fits its own init
    init = _INIT.replace(f"separation = {SEP}", "separation = [3.0, 4.0]")
    text = _TEXT.format(sep="[3.0, 4.0]", init=init, start='start = "init"\nstart_steps = 300', n=400, steps=1,
                        every=1).replace('methods = ["particles", "generator"]', 'methods = ["generator"]')
    run_sweep(loads(text), tmp_path / "init", progress=False)
    ds = open_sweep(tmp_path / "init", layout="runs", variables=["position", "mode_mass"])
    for r in range(2):
        x = ds["position"].isel(run=r, time=0).values[:, 0]
        sep = float(ds["target.separation"].values[r])
        # the fitted left mode sits at -sep/2 (the init's, not the other point's)
        assert abs(np.median(x[x < -sep / 4]) + sep / 2) < 0.2  # the other point's mode is 0.5 away
        assert abs(float(ds["mode_mass"].isel(run=r, time=0).values[0]) - 0.2) < 0.05
