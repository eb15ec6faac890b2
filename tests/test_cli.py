"""The command line end to end: quickstart to xarray/h5py, malformed scenarios, kill and resume."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import xarray as xr

from malformed_scenarios import CASES

ROOT = pathlib.Path(__file__).resolve().parents[1]
WGFSIM = [sys.executable, "-m", "wgfsim.cli"]


def wgfsim(*args, cwd=None, **kw):
    return subprocess.run([*WGFSIM, *args], cwd=cwd, capture_output=True, text=True, **kw)


def test_quickstart_end_to_end(tmp_path):
    out = tmp_path / "out"
    res = wgfsim("run", str(ROOT / "scenarios/quickstart.toml"), "-o", str(out), "-q", "--set", "run.steps=40")
    assert res.returncode == 0, res.stderr
    path = out / "quickstart.h5"
    assert path.exists() and not (out / "quickstart.h5.partial").exists()
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert list(ds.flow.values) == ["kl_kde", "sinkhorn", "sliced"]
    assert dict(ds.sizes) == {"run": 3, "time": 5, "particle": 512, "dim": 2, "sample": 512, "ref": 512, "mode": 2}
    assert list(ds.step.values) == [0, 10, 20, 30, 40]
    np.testing.assert_allclose(ds.t.values, np.tile([0.0, 1.0, 2.0, 3.0, 4.0], (3, 1)))
    assert ds.position.dtype == np.float32
    assert ds.attrs["status"] == "complete" and "quickstart" in ds.attrs["scenario"]
    with h5py.File(path, "r") as f:
        pos = f["position"][...]
        mass = f["mode_mass"][...]
    # the stored positions are the particles: their nearest-mode counts are the stored mode masses
    left = (pos[:, :, :, 0] < 0).mean(axis=2)
    np.testing.assert_allclose(mass[:, :, 0], left)
    # the particles start with 20/80 and the target holds 50/50 (exact counts of the stratified sampler)
    np.testing.assert_allclose(mass[:, 0, 0], 0.2, atol=1e-2)
    np.testing.assert_allclose((f_target := ds.target.values)[:, 0].__lt__(0).mean(), 0.5)
    assert f_target.shape == (512, 2)
    figures = sorted(p.name for p in (out / "quickstart_figures").glob("*.png"))
    assert figures, "no figures written"
    info = wgfsim("info", str(path))
    assert info.returncode == 0 and "sinkhorn" in info.stdout


@pytest.mark.parametrize("case_id,text,message", CASES, ids=[c[0] for c in CASES])
def test_malformed_scenario_exits_2_with_its_message_and_writes_nothing(tmp_path, capsys, case_id, text, message):
    from wgfsim.cli import main

    scenario = tmp_path / "bad.toml"
    scenario.write_text(text)
    out = tmp_path / "out"
    code = main(["run", str(scenario), "-o", str(out), "-q"])  # in-process: the same code path, no interpreter start-up
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert str(scenario) in err  # the message names the file
    assert not out.exists() or not any(out.iterdir())


def test_usage_errors_exit_2(tmp_path, capsys):
    # in-process (cli.main): the subprocess path is covered by the quickstart test above
    from wgfsim import cli

    def main(*argv):
        try:
            return cli.main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            return exc.code

    assert main("run", str(tmp_path / "missing.toml")) == 2
    assert main("info", str(tmp_path / "missing.h5")) == 2
    assert main("frobnicate") == 2
    bad = tmp_path / "not_a_run.h5"
    bad.write_text("hello")
    capsys.readouterr()
    assert main("info", str(bad)) == 2 and "not a wgfsim run file" in capsys.readouterr().err


def test_flows_lists_every_flow():
    import wgfsim as w

    res = wgfsim("flows")
    assert res.returncode == 0
    for name in w.flows.names():
        assert f"{name}:" in res.stdout


RESUME_SCENARIO = """
name = "resume"
[target]
kind = "two_modes"
separation = 3.0
weights = [0.5, 0.5]
std = 0.2
n = 200
[init]
kind = "gaussian"
mean = [0.0, 0.0]
cov = [[1.0, 0.0], [0.0, 1.0]]
n = 200
[[flow]]
name = "sinkhorn"
epsilon = 0.1
[[flow]]
name = "sliced"
n_projections = 20
[run]
steps = 200
step_size = 0.05
record_every = 5
seeds = [3]
[metrics]
names = ["mmd2", "mode_mass", "velocity_rms"]
"""


def _data_vars(path):
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


@pytest.mark.slow
def test_kill_and_resume_gives_the_identical_dataset(tmp_path):
    scenario = tmp_path / "resume.toml"
    scenario.write_text(RESUME_SCENARIO)
    ref = wgfsim("run", str(scenario), "-o", str(tmp_path / "ref"), "-q", "--no-plots")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([*WGFSIM, "run", str(scenario), "-o", str(out), "-q", "--no-plots"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = out / "resume.ckpt" / "run1.npz"  # the second run has started: the first is complete
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # part-way through the second run
    assert ckpt.exists(), "the second run never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = out / "resume.h5.partial"
    assert partial.exists() and not (out / "resume.h5").exists()
    # the killed file is readable and holds the records flushed so far
    with xr.open_dataset(partial, engine="h5netcdf") as killed:  # closed before the resume rewrites it
        assert np.isfinite(killed.mmd2.values[0]).all()  # the first run is complete
    res = wgfsim("run", str(scenario), "-o", str(out), "-q", "--no-plots", "--resume")
    assert res.returncode == 0, res.stderr
    a, b = _data_vars(tmp_path / "ref" / "resume.h5"), _data_vars(out / "resume.h5")
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
