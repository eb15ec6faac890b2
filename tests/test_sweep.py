"""Sweeps: planning, executors (local processes, Dask), skip/resume, combining point files.

Fast tests build point files with the store directly; the tests that run
real points spawn worker processes (each pays an interpreter start and the
numba cache load) and are marked slow.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr

import wgfsim
from wgfsim import scenario, sweep
from wgfsim.io import RunStore, open_run

REPO = pathlib.Path(__file__).resolve().parents[1]

TINY = """
name = "tiny"
[target]
kind = "two_modes"
separation = [2.0, 3.0]
weights = [0.5, 0.5]
std = 0.05
dim = 1
n = 32
[init]
kind = "two_modes"
separation = [2.0, 3.0]
weights = [0.2, 0.8]
std = 0.05
dim = 1
n = 32
[[flow]]
name = "kl_kde"
bandwidth = [0.5, 1.0]
[[flow]]
name = "sinkhorn_proxy"
epsilon = 0.5
[run]
steps = {steps}
step_size = 0.5
record_every = {every}
seeds = {seeds}
[metrics]
names = ["mode_mass"]
"""


def tiny(steps=4, every=2, seeds="[0, 1]", **extra) -> scenario.Scenario:
    return scenario.loads(TINY.format(steps=steps, every=every, seeds=seeds), source="<tiny>", **extra)


# ---------------------------------------------------------------- planning (fast)


def test_plan_ties_target_and_init_and_names_files_stably():
    sc = tiny()
    planned, manifest = sweep.plan(sc)
    # 2 separations (tied, not 2 x 2) x (2 kl_kde bandwidths + 1 proxy) x 2 seeds
    assert len(planned) == 2 * 3 * 2
    assert manifest["tied"] == {"init.separation": "target.separation"}
    assert all(p.coords["init.separation"] == p.coords["target.separation"] for p in planned)
    assert manifest["keys"] == ["flow", "seed", "target.separation", "init.separation", "bandwidth"]
    names = [p.file for p in planned]
    assert len(set(names)) == len(names)
    assert all(n.endswith(".h5") and "/" not in n for n in names)
    assert names[0].startswith("kl_kde_seed-0_target.separation-2.0_bandwidth-0.5_")


@pytest.mark.slow
def test_file_names_are_the_same_in_another_process():
    names = [p.file for p in sweep.plan(tiny())[0]]
    code = "from wgfsim import sweep; from tests.test_sweep import tiny; print([p.file for p in sweep.plan(tiny())[0]])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr(names)  # hashlib over canonical JSON, not the salted hash()


def test_plan_full_product_and_changed_settings_change_names():
    assert len(sweep.plan(tiny(), tie=())[0]) == 4 * 3 * 2
    a = [p.file for p in sweep.plan(tiny())[0]]
    b = [p.file for p in sweep.plan(tiny(steps=6))[0]]  # more steps: different runs, different files
    assert not set(a) & set(b)


def test_bad_arguments_are_reported_before_any_work(tmp_path):
    sc = tiny()
    with pytest.raises(ValueError, match="workers"):
        sweep.run_sweep(sc, tmp_path, workers=0, progress=False)
    with pytest.raises(ValueError, match="give one of them"):
        sweep.run_sweep(sc, tmp_path, scheduler="tcp://127.0.0.1:1", dask_local=2, progress=False)
    with pytest.raises(ValueError, match="unknown executor"):
        sweep.run_sweep(sc, tmp_path, executor="slurm", progress=False)
    assert not (tmp_path / sweep.MANIFEST).exists()


def test_missing_dask_gives_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(sweep.DistributedMissing, match=r"wgfsim\[dist\]"):
        sweep.run_sweep(tiny(), tmp_path, dask_local=2, progress=False)
    with pytest.raises(ImportError, match="pip install"):
        sweep.run_sweep(tiny(), tmp_path, scheduler="tcp://127.0.0.1:8786", progress=False)


def test_executors_are_a_registry():
    assert set(sweep.EXECUTORS) == {"local", "dask", "dask-local"}


# ---------------------------------------------------------------- open_sweep on synthetic point files (fast)


def _fake_point_file(path, coords, *, n_records, value, n=8, failed=None):
    """A point file as the runner writes it: one run, mode_mass = value + record index / 100."""
    rng = np.random.default_rng(0)
    sep = coords.get("target.separation", 2.0)
    store = RunStore.create(
        path,
        run_coords={k: [v] for k, v in coords.items()},
        n_particles=n,
        dim=1,
        mode_names=["left", "right"],
        target=rng.normal(size=(n, 1)),
        reference=rng.normal(size=(n, 1)),
        attrs={"scenario": "fake", "step_size": 0.5},
        mode_centres=[[-sep / 2], [sep / 2]],
        target_mode_mass=[0.5, 0.5],
    )
    for k in range(n_records):
        m = value + k / 100
        store.write_record(0, k, {"step": 2 * k, "t": k * 1.0, "position": np.full((n, 1), m), "mode_mass": [m, 1 - m]})
    return store.finish({"failed_runs": json.dumps(failed or {})})


def test_open_sweep_grid_config_ties_and_missing_points(tmp_path):
    sc = tiny(seeds="[0]")
    planned, manifest = sweep.plan(sc)
    (tmp_path / sweep.MANIFEST).write_text(json.dumps(manifest))
    values = {}
    for i, pp in enumerate(planned):
        if i == 3:
            continue  # never ran: NaN
        values[pp.file] = 0.1 + 0.01 * i
        # the last point diverged after 2 records: shorter time axis, status 'failed'
        short = i == len(planned) - 1
        _fake_point_file(tmp_path / pp.file, pp.coords, n_records=2 if short else 3, value=values[pp.file],
                         failed={"x": "step 3: NaN"} if short else None)
    ds = wgfsim.open_sweep(tmp_path)
    # flow-specific keys (kl_kde bandwidth vs proxy: none) form one config dimension
    assert ds["mode_mass"].dims == ("config", "target.separation", "time", "mode")
    assert list(ds["config"].values) == ["kl_kde bandwidth=0.5", "kl_kde bandwidth=1.0", "sinkhorn_proxy"]
    assert list(ds["flow"].values) == ["kl_kde", "kl_kde", "sinkhorn_proxy"]
    np.testing.assert_array_equal(ds["bandwidth"].values, [0.5, 1.0, np.nan])
    # the tied init.separation rides on the target.separation dimension
    assert ds["init.separation"].dims == ("target.separation",)
    np.testing.assert_array_equal(ds["init.separation"].values, ds["target.separation"].values)
    for key, value in (("method", "particles"), ("seed", 0)):  # one value over the sweep: a scalar coordinate
        assert ds[key].ndim == 0 and ds[key].values.item() == value
    np.testing.assert_array_equal(ds["step"].values, [0, 2, 4])
    # t is stored per run and record (step * step_size here): NaN only where a point has no such record
    t = ds["t"].values  # (config, target.separation, time)
    assert t.shape == ds["mode_mass"].shape[:3]
    have = np.isfinite(t)
    np.testing.assert_allclose(t[have], np.broadcast_to([0.0, 1.0, 2.0], t.shape)[have])
    assert have.sum() == 3 * (len(planned) - 1) - 1  # one point never ran, the diverged one lacks its last record
    # every present point reads back its own values at the right grid cell
    for pp in planned:
        cell = ds.sel({"config": pp.coords["flow"] + (f" bandwidth={pp.coords['bandwidth']}" if "bandwidth" in pp.coords else ""),
                       "target.separation": pp.coords["target.separation"]})
        if pp.file not in values:
            assert str(cell["status"].values) == "missing"
            assert np.isnan(cell["mode_mass"].values).all()
            continue
        got = cell["mode_mass"].isel(mode=0).values
        n_rec = 2 if pp is planned[-1] else 3
        np.testing.assert_allclose(got[:n_rec], values[pp.file] + np.arange(n_rec) / 100)
        assert np.isnan(got[n_rec:]).all()
        assert str(cell["status"].values) == ("failed" if pp is planned[-1] else "complete")
        np.testing.assert_allclose(cell["mode_centre"].values[:, 0], np.array([-1, 1]) * pp.coords["target.separation"] / 2)
    # the points layout keeps one point dimension with every key as a coordinate
    pts = wgfsim.open_sweep(tmp_path, layout="points", variables=["mode_mass"])
    assert pts["mode_mass"].dims == ("point", "time", "mode") and pts.sizes["point"] == len(planned)
    assert "position" not in pts
    assert np.isnan(pts["bandwidth"].values[-1])


def test_open_sweep_crossed_hyper_parameters_are_dimensions(tmp_path):
    sc = scenario.loads(
        TINY.format(steps=4, every=2, seeds="[0]").replace('name = "sinkhorn_proxy"\nepsilon = 0.5', 'name = "kl_kde"\nbandwidth = [0.25]\nkernel = "laplace"')
        .replace("separation = [2.0, 3.0]", "separation = 2.0"),
        source="<x>",
    )
    planned, manifest = sweep.plan(sc)
    (tmp_path / sweep.MANIFEST).write_text(json.dumps(manifest))
    for i, pp in enumerate(planned):
        _fake_point_file(tmp_path / pp.file, pp.coords, n_records=2, value=0.1 * i)
    ds = wgfsim.open_sweep(tmp_path)
    # bandwidth is swept in one table and kernel distinguishes the two tables: all points have both keys
    assert set(ds["mode_mass"].dims) == {"bandwidth", "kernel", "time", "mode"}
    assert ds.sizes["bandwidth"] == 3 and ds.sizes["kernel"] == 2
    assert int(np.isfinite(ds["mode_mass"].isel(time=0, mode=0)).sum()) == 3  # 3 points on a 3 x 2 grid, rest NaN


def test_open_sweep_without_files_says_so(tmp_path):
    _, manifest = sweep.plan(tiny())
    (tmp_path / sweep.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(FileNotFoundError, match="run the sweep first"):
        wgfsim.open_sweep(tmp_path)
    with pytest.raises(FileNotFoundError, match="no sweep manifest"):
        wgfsim.open_sweep(tmp_path / "nowhere")


# ---------------------------------------------------------------- real runs (worker processes)


@pytest.mark.slow
def test_failing_point_is_reported_and_rerun_runs_only_it(tmp_path):
    sc = tiny(seeds="[0]")
    planned, _ = sweep.plan(sc)
    blocked = tmp_path / (planned[1].file + ".partial")
    blocked.mkdir(parents=True)  # the runner cannot create its file: this point fails, the others go on
    (blocked / "x").write_text("in the way")
    first = sweep.run_sweep(sc, tmp_path, workers=2, progress=False)
    assert [o.file.name for o in first.failed] == [planned[1].file]
    failure = first.failed[0]
    assert failure.coords == planned[1].coords and failure.error
    assert len(first.finished) == len(planned) - 1
    # numba limited to one thread per worker: its pool was created with NUMBA_NUM_THREADS=1 from the environment
    assert all(o.threads == 1 and o.pool_threads == 1 for o in first.finished)
    mtimes = {o.file.name: o.file.stat().st_mtime_ns for o in first.finished}
    (blocked / "x").unlink()
    blocked.rmdir()
    second = sweep.run_sweep(sc, tmp_path, workers=1, progress=False)
    assert [o.file.name for o in second.finished] == [planned[1].file]
    assert sorted(o.file.name for o in second.skipped) == sorted(mtimes)
    assert {n: (tmp_path / n).stat().st_mtime_ns for n in mtimes} == mtimes
    assert not second.failed and "1 finished" in second.summary()


@pytest.mark.slow
def test_killed_sweep_reruns_only_the_missing_points(tmp_path):
    """SIGKILL a sweep (and its worker) mid-point, after a first point file appeared; the re-run does only the rest."""
    script = tmp_path / "run.py"
    out = tmp_path / "sweep"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from wgfsim import sweep
        from tests.test_sweep import tiny
        if __name__ == "__main__":
            sweep.run_sweep(tiny(steps=60, every=5, seeds="[0]"), {str(out)!r}, workers=1, progress=False)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    try:  # wait for a finished point and the next one half-way (its .partial holds records)
        # the checkpoint of a point whose .partial is live (a finished point's lingers until its cleanup)
        while not (list(out.glob("*.h5")) and any(p.with_name(p.name[: -len(".ckpt")] + ".h5.partial").exists()
                                                   for p in (c.parent for c in out.glob("*.ckpt/run0.npz")))):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep made no progress in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker process: the group this test started
        proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    half_done = [p.name[: -len(".partial")] for p in out.glob("*.h5.partial")]
    sc = tiny(steps=60, every=5, seeds="[0]")
    planned, _ = sweep.plan(sc)
    assert 1 <= len(done_before) < len(planned) and len(half_done) == 1
    result = sweep.run_sweep(sc, out, workers=1, progress=False)
    assert sorted(o.file.name for o in result.skipped) == sorted(done_before)
    assert sorted(o.file.name for o in result.finished) == sorted(p.file for p in planned if p.file not in done_before)
    assert {n: (out / n).stat().st_mtime_ns for n in done_before} == done_before  # untouched
    assert not list(out.glob("*.partial")) and not list(out.glob("*.ckpt"))
    ds = wgfsim.open_sweep(out, variables=["mode_mass"])
    assert np.isfinite(ds["mode_mass"]).all()
    # the point continued from the killed .partial equals an uninterrupted run of it
    from wgfsim import runner

    point = next(p.point for p in planned if p.file == half_done[0])
    fresh = runner.run_points(sc, [point], tmp_path / "fresh.h5", progress=False)
    np.testing.assert_array_equal(open_run(out / half_done[0])["position"].values, open_run(fresh)["position"].values)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The tiny sweep through the local executor (2 worker processes), opened."""
    out = tmp_path_factory.mktemp("local")
    result = sweep.run_sweep(tiny(steps=4, every=2, seeds="[0]"), out, workers=2, progress=False)
    assert not result.failed and len(result.finished) == 6
    return wgfsim.open_sweep(out)


def _same_dataset(a, b):
    xr.testing.assert_equal(a.drop_vars(["file"]).drop_attrs(), b.drop_vars(["file"]).drop_attrs())
    np.testing.assert_array_equal(a["file"].values, b["file"].values)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_dataset_as_local_processes(tmp_path, local_reference):
    pytest.importorskip("distributed")
    sc = tiny(steps=4, every=2, seeds="[0]")
    result = sweep.run_sweep(sc, tmp_path, dask_local=2, progress=False)  # a LocalCluster of 2 worker processes
    assert result.executor == "dask-local" and not result.failed and len(result.finished) == 6
    assert len({o.pid for o in result.finished}) == 2  # both worker processes did work
    assert {(o.threads, o.pool_threads) for o in result.finished} == {(1, 1)}  # NUMBA_NUM_THREADS=1 via the nanny's env
    _same_dataset(wgfsim.open_sweep(tmp_path), local_reference)


@pytest.mark.slow
def test_existing_dask_scheduler_gives_the_same_dataset(tmp_path, local_reference):
    distributed = pytest.importorskip("distributed")
    sc = tiny(steps=4, every=2, seeds="[0]")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = sweep.run_sweep(sc, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert result.executor == "dask" and not result.failed and len(result.finished) == 6
    assert {o.threads for o in result.finished} == {1}  # numba.set_num_threads in each task
    _same_dataset(wgfsim.open_sweep(tmp_path), local_reference)


def test_a_resumed_sweep_with_a_default_left_implicit_skips_every_finished_point(tmp_path):
    # one run identity (the resolved Params): `bandwidth = 1.0` written out and the default left out are the
    # same runs, so the second sweep finds every point file of the first and runs nothing
    explicit = TINY.replace('bandwidth = [0.5, 1.0]\n', 'bandwidth = 1.0\nkernel = "gaussian"\n')
    implicit = TINY.replace('bandwidth = [0.5, 1.0]\n', '')
    assert "bandwidth" not in implicit and 'kernel = "gaussian"' in explicit
    sc = scenario.loads(explicit.format(steps=2, every=1, seeds="[0]"), source="<explicit>")
    first = sweep.run_sweep(sc, tmp_path, progress=False)
    assert len(first.finished) == 4 and not first.failed and not first.skipped
    sc2 = scenario.loads(implicit.format(steps=2, every=1, seeds="[0]"), source="<implicit>")
    assert sc2.flows[0].options == {} and sc.flows[0].options["bandwidth"] == 1.0  # written differently
    again = sweep.run_sweep(sc2, tmp_path, progress=False)
    assert len(again.skipped) == 4 and not again.finished and not again.failed
    assert sorted(o.file.name for o in again.skipped) == sorted(o.file.name for o in first.finished)
    # the resume fingerprint is the same identity: resuming a finished point's file with the other spelling works
    import h5py

    from wgfsim.scenario.identity import identity_hash, run_identity

    pp = sweep.plan(sc2)[0][0]
    with h5py.File(tmp_path / pp.file, "r") as h:
        assert h.attrs["fingerprint"] == identity_hash(run_identity(sc2, [pp.point]))
