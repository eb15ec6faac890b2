"""The runner with both methods side by side in one file."""

import numpy as np
import pytest

from wgfsim import runner, scenario
from wgfsim.errors import OptionError
from wgfsim.io import open_run

SCENARIO = """
name = "both"
[target]
kind = "eight_gaussians"
n = 256
[init]
kind = "gaussian"
mean = [0.0, 0.0]
cov = [[1.0, 0.0], [0.0, 1.0]]
n = 128
[[flow]]
name = "mmd"
bandwidth = 1.0
[run]
methods = ["particles", "generator"]
steps = 12
step_size = 0.5
record_every = 4
[metrics]
names = ["mmd2", "velocity_rms"]
[generator]
width = 32
depth = 1
batch_size = 64
drift_step = 0.5
"""


def test_particles_and_generator_side_by_side(tmp_path):
    sc = scenario.loads(SCENARIO)
    ds = open_run(runner.run_scenario(sc, tmp_path, progress=False))
    assert list(ds.method.values) == ["particles", "generator"]
    assert list(ds.step.values) == [0, 4, 8, 12]
    np.testing.assert_allclose(ds.t.values, [[0, 2, 4, 6], [0, 2, 4, 6]])
    gen = 1
    loss, vrms = ds.loss.values[gen], ds.velocity_rms.values[gen]  # the last record too (no step follows it)
    assert np.isfinite(loss).all()
    # the drift-regression loss at the current parameters is eta^2 mean|v|^2 (x - t = -eta v)
    np.testing.assert_allclose(loss, 0.5**2 * vrms**2, rtol=1e-10)
    # both methods learn: MMD^2 to the held-out reference falls
    assert np.all(ds.mmd2.values[:, -1] < ds.mmd2.values[:, 0])
    assert np.isfinite(ds.position.values).all()


def test_generator_only_runs_need_no_euler_step(tmp_path):
    # run.step_size belongs to the particle method; the generator's clock is generator.drift_step
    text = SCENARIO.replace('methods = ["particles", "generator"]', 'methods = ["generator"]').replace("step_size = 0.5\n", "")
    assert "step_size" not in text
    ds = open_run(runner.run_scenario(scenario.loads(text), tmp_path, progress=False))
    assert np.isnan(ds.attrs["step_size"])
    np.testing.assert_allclose(ds.t.values, [[0, 2, 4, 6]])  # step * drift_step = step * 0.5
    with pytest.raises(scenario.ScenarioError, match="run.step_size: missing"):
        scenario.loads(text.replace('methods = ["generator"]', 'methods = ["particles", "generator"]'))


def test_final_score_is_the_mean_and_spread_of_the_last_records(tmp_path):
    text = SCENARIO.replace("record_every = 4", "record_every = 2").replace(
        'names = ["mmd2", "velocity_rms"]', 'names = ["mmd2", "velocity_rms"]\nfinal_window = 3')
    ds = open_run(runner.run_scenario(scenario.loads(text), tmp_path, progress=False))
    assert ds.attrs["final_window"] == 3
    for name in ("mmd2", "velocity_rms", "loss"):
        values = ds[name].values  # (run, time), read back through xarray
        for r in range(values.shape[0]):
            last = values[r][np.isfinite(values[r])][-3:]
            if last.size == 0:  # the particles have no regression loss: no score either
                assert name == "loss" and np.isnan(ds.attrs[f"final_{name}_mean"][r])
                continue
            assert len(last) == 3
            assert ds.attrs[f"final_{name}_mean"][r] == pytest.approx(np.mean(last), rel=1e-12)
            assert ds.attrs[f"final_{name}_std"][r] == pytest.approx(np.std(last, ddof=1), rel=1e-12)


def test_fresh_target_rows_train_the_generator_and_resume_identically(tmp_path):
    """``generator.fresh_target``: a killed run resumes to the file an uninterrupted one writes."""
    text = SCENARIO.replace('methods = ["particles", "generator"]', 'methods = ["generator"]').replace(
        "step_size = 0.5\n", "minibatch = 64\n").replace("depth = 1\n", "depth = 1\nfresh_target = true\n")
    sc = scenario.loads(text)
    assert sc.generator.fresh_target is True
    whole = open_run(runner.run_scenario(sc, tmp_path / "a", progress=False))
    assert whole.mmd2.values[0, -1] < whole.mmd2.values[0, 0]
    # kill after the second record (raise inside the third record's metrics), then resume
    calls = {"n": 0}
    real = runner._metrics

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    runner._metrics = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run_scenario(sc, tmp_path / "b", progress=False)
    finally:
        runner._metrics = real
    resumed = open_run(runner.run_scenario(sc, tmp_path / "b", resume=True, progress=False))
    np.testing.assert_array_equal(resumed.position.values, whole.position.values)
    np.testing.assert_array_equal(resumed.loss.values, whole.loss.values)


def test_mmd2_at_a_fixed_bandwidth_is_the_gaussian_v_statistic(tmp_path):
    text = SCENARIO.replace('names = ["mmd2", "velocity_rms"]', 'names = ["mmd2", "velocity_rms"]\nmmd2_bandwidth = 0.3')
    ds = open_run(runner.run_scenario(scenario.loads(text), tmp_path, progress=False))
    x, y = ds.position.values[1, -1].astype(np.float64), ds.reference.values.astype(np.float64)

    def mean_k(a, b):  # the biased V-statistic, written out densely (test sizes)
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * 0.3**2)).mean()

    expected = mean_k(x, x) - 2 * mean_k(x, y) + mean_k(y, y)
    # positions are stored in float32: the recomputation from them agrees to float32 rounding
    assert ds.mmd2.values[1, -1] == pytest.approx(expected, rel=1e-4, abs=1e-7)
    with pytest.raises(scenario.ScenarioError, match="metrics.mmd2_bandwidth"):
        scenario.loads(text.replace("mmd2_bandwidth = 0.3", "mmd2_bandwidth = -1.0"))


def test_prune_tolerance_is_a_run_option_stored_with_the_settings(tmp_path):
    # run.prune_tol is stored with the run's settings (h5py reads it back) and is part of the file's identity
    import json

    import h5py

    import wgfsim

    text = SCENARIO.replace('methods = ["particles", "generator"]', 'methods = ["particles"]').replace(
        'name = "mmd"\nbandwidth = 1.0', 'name = "sinkhorn"\nepsilon = 0.05\nmax_iter = 20').split("[generator]")[0]
    exact = scenario.loads(text, overrides=["run.prune_tol=0.0"])
    assert exact.run.prune_tol == 0.0 and scenario.loads(text).run.prune_tol == 1e-12
    path = runner.run_scenario(exact, tmp_path, progress=False)
    with h5py.File(path, "r") as h:
        assert np.asarray(h.attrs["prune_tol"]).ravel().tolist() == [0.0]
        assert json.loads(h.attrs["resolved_scenario"])["run"]["prune_tol"] == 0.0
    with pytest.raises(runner.RunFileError, match=r"differing: run.prune_tol"):
        runner.run_scenario(scenario.loads(text), tmp_path, resume=True, progress=False)
    with pytest.raises(scenario.ScenarioError, match=r"run.prune_tol: got 2.0"):
        scenario.loads(text, overrides=["run.prune_tol=2.0"])
    with pytest.raises(wgfsim.errors.OptionError, match="prune_tol"):
        wgfsim.velocity("mmd", np.zeros((2, 1)), np.ones((2, 1)), prune_tol=2.0)


def test_the_generator_table_reaches_its_configs_field_by_field():
    # the runner's translation drops no [generator] option: each non-default value comes out in the configs
    import dataclasses

    from wgfsim.methods import record as method_record

    sc = scenario.loads(SCENARIO.replace("width = 32", "width = 48\nlatent_dim = 5\nema_decay = 0.5\nlr_schedule = \"cosine\""))
    spec = sc.generator
    settings = method_record("generator").settings(sc.run, spec, 2, 128)
    cfg = settings.train
    own = ("eval_n", "start", "start_steps")  # the method's own settings, beside the configs
    given = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in own}
    got = {**dataclasses.asdict(cfg.mlp), **{k: v for k, v in dataclasses.asdict(cfg).items() if k != "mlp"}}
    assert {k: got[k] for k in given} == given
    assert (cfg.mlp.width, cfg.mlp.latent_dim, cfg.ema_decay, cfg.lr_schedule) == (48, 5, 0.5, "cosine")
    assert (cfg.mlp.out_dim, cfg.total_steps, cfg.minibatch, settings.eval_n) == (2, 12, 0, 128)
    assert (settings.start, settings.start_steps) == (spec.start, spec.start_steps)


MULTI = SCENARIO.replace('methods = ["particles", "generator"]', 'methods = ["particles"]').replace(
    'names = ["mmd2", "velocity_rms"]', 'names = ["mmd2"]\nmmd2_bandwidths = [0.05, 0.3, 1.5]\nfinal_window = 2'
).split("[generator]")[0]


def test_mmd2_at_each_listed_bandwidth_is_the_gaussian_v_statistic(tmp_path):
    import h5py

    ds = open_run(runner.run_scenario(scenario.loads(MULTI), tmp_path, progress=False))
    assert ds.mmd2_at.dims == ("run", "time", "mmd2_bandwidth")
    np.testing.assert_array_equal(ds.mmd2_bandwidth.values, [0.05, 0.3, 1.5])  # the coordinate round-trips
    y = ds.reference.values.astype(np.float64)
    for k in range(ds.sizes["time"]):
        x = ds.position.values[0, k].astype(np.float64)
        for sigma in (0.05, 0.3, 1.5):
            def mean_k(a, b):  # the biased V-statistic, written out densely (test sizes)
                d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
                return np.exp(-d2 / (2 * sigma**2)).mean()

            expected = mean_k(x, x) - 2 * mean_k(x, y) + mean_k(y, y)
            # positions are stored in float32: the recomputation from them agrees to float32 rounding
            got = float(ds.mmd2_at.sel(mmd2_bandwidth=sigma).values[0, k])
            assert got == pytest.approx(expected, rel=1e-4, abs=1e-7)
    # the median-heuristic mmd2 is still stored beside it
    assert np.isfinite(ds.mmd2.values).all()
    with h5py.File(tmp_path / "both.h5", "r") as h:  # an independent reader: the coordinate's own attributes
        assert h["mmd2_bandwidth"].attrs["units"] == "data"
        assert "bandwidth" in str(h["mmd2_bandwidth"].attrs["long_name"])
        assert h["mmd2_at"].shape == (1, 4, 3)
        # the final score per bandwidth: the mean and spread of its last final_window = 2 records
        last = h["mmd2_at"][0, -2:, 0]
        assert h.attrs["final_mmd2_at_0.05_mean"][0] == pytest.approx(last.mean(), rel=1e-12)
        assert h.attrs["final_mmd2_at_0.05_std"][0] == pytest.approx(last.std(ddof=1), rel=1e-12)


def test_mmd2_bandwidths_one_number_and_bad_values(tmp_path):
    one = scenario.loads(MULTI.replace("mmd2_bandwidths = [0.05, 0.3, 1.5]", "mmd2_bandwidths = 0.2"))
    assert one.metrics.mmd2_bandwidths == (0.2,) and "mmd2_at" in one.metrics.names
    # unset: no mmd2_at (the default names hold it only when the bandwidths are given)
    assert "mmd2_at" not in scenario.loads(SCENARIO).metrics.names
    for bad in ("-0.1", "[]", '["wide"]', "[0.1, -2.0]", "[0.1, 0.1]", "true", "[0.0]"):
        with pytest.raises(OptionError, match=r"metrics\.mmd2_bandwidths"):
            scenario.loads(MULTI.replace("[0.05, 0.3, 1.5]", bad))
    with pytest.raises(OptionError, match=r"metrics\.mmd2_bandwidths"):  # asked for by name without its values
        scenario.loads(SCENARIO.replace('names = ["mmd2", "velocity_rms"]', 'names = ["mmd2_at"]'))
