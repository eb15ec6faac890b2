"""The stored file is the contract: what the runner writes, and the one reader behind open_run and open_sweep.

Truths: the files read back with h5py and with xarray's own h5netcdf backend
(independent of our reader), the scenario's numbers (step sizes, drift
steps, defaults of the flow options as the registry declares them), and the
mode masses recomputed from the stored positions with NumPy.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import xarray as xr

import wgfsim
from wgfsim import diagnostics, scenario, sweep
from wgfsim.io import SCHEMA_VERSION, SchemaError, open_run, open_sweep

from scenarios import build

def _sweep(tmp_path, *, name="s", bandwidth=(0.5, 1.0), methods=("generator",), skip=(), metrics=None):
    """Run a sweep's points in this process (what a worker does), skipping the indices in ``skip``."""
    text = build(name=name, flow=[{"name": "kl_kde", "bandwidth": bandwidth}], run={"methods": methods},
                 **({"metrics": metrics} if metrics else {}))
    sc = scenario.loads(text, source="<test>")
    out = tmp_path / name
    out.mkdir()
    planned, manifest = sweep.plan(sc)
    (out / sweep.MANIFEST).write_text(json.dumps(manifest))
    for i, pp in enumerate(planned):
        if i in skip:
            continue
        res = sweep.run_point_task({"sc": sc, "point": pp.point, "path": str(out / pp.file), "threads": None})
        assert res["status"] == "finished", res
    return out, planned


def test_run_file_holds_what_a_reader_needs(tmp_path):
    out, planned = _sweep(tmp_path, bandwidth=0.5, methods=("particles", "generator"))
    files = {pp.point.method: out / pp.file for pp in planned}
    with h5py.File(files["generator"], "r") as h:
        assert np.ravel(h.attrs["wgfsim_schema"])[0] == SCHEMA_VERSION
        steps = h["step"][...]
        np.testing.assert_allclose(h["t"][0], steps * 0.25)  # generator time: step * drift_step
        params = json.loads(h["flow_params"][0])
        # every option the registry declares is stored, defaults included
        assert set(params) == {"flow", *wgfsim.flows.options("kl_kde")}
        assert params["kernel"] == "gaussian" and params["bandwidth"] == [0.5]
        assert json.loads(h["method_params"][0])["drift_step"] == 0.25
        # only the metrics asked for (plus the generator's loss): no all-NaN energy_distance
        assert "mmd2" in h and "loss" in h and "energy_distance" not in h and "energy" not in h
        np.testing.assert_allclose(h["mode_centre"][...], [[-1.0], [1.0]])
        for name in ("position", "t", "mode_mass", "mmd2", "flow_params"):
            assert h[name].attrs["long_name"]
    with h5py.File(files["particles"], "r") as h:
        np.testing.assert_allclose(h["t"][0], h["step"][...] * 0.5)  # particles: step * step_size
        # mode masses recomputed from the stored positions and centres
        x = h["position"][0, -1, :, 0].astype(float)
        right = np.mean(np.abs(x - 1.0) < np.abs(x + 1.0))
        assert h["mode_mass"][0, -1, 1] == pytest.approx(right)


def test_fast_reader_equals_xarray_and_has_a_multiindex(tmp_path):
    out, planned = _sweep(tmp_path, bandwidth=[0.5, 1.0], methods=("particles",))
    path = out / planned[1].file
    ours = open_run(path)
    theirs = xr.open_dataset(path, engine="h5netcdf").load()
    xr.testing.assert_identical(ours.reset_index("run"), theirs)
    assert list(ours.indexes["run"].names) == ["flow", "method", "seed", "bandwidth"]
    picked = ours.sel(flow="kl_kde", bandwidth=1.0)  # the xarray way, no boolean masks
    np.testing.assert_array_equal(picked.mmd2.values.ravel(), theirs.mmd2.values.ravel())
    lazy = open_run(path, chunks={})
    assert type(lazy.position.data).__module__.startswith("dask")
    np.testing.assert_array_equal(lazy.position.values, theirs.position.values)
    lazy.close()


def test_one_axis_generator_sweep_opens_with_finite_times_and_half_times(tmp_path):
    out, planned = _sweep(tmp_path)
    ds = open_sweep(out)
    assert ds["mode_mass"].dims == ("bandwidth", "time", "mode")
    np.testing.assert_allclose(ds["bandwidth"].values, [0.5, 1.0])
    t = ds["t"].values
    assert np.isfinite(t).all()
    np.testing.assert_allclose(t, np.broadcast_to(ds["step"].values * 0.25, t.shape))
    h = diagnostics.half_time(ds)
    # the truth: the first record whose |mode_mass - target| sum is at most half the first one (h5py, NumPy)
    for i, pp in enumerate(sorted(planned, key=lambda p: p.point.params["bandwidth"])):
        with h5py.File(out / pp.file, "r") as f:
            mm, tt, tm = f["mode_mass"][0], f["t"][0], f["target_mode_mass"][...]
        err = np.abs(mm - tm).sum(axis=1)
        hit = np.flatnonzero(err <= err[0] / 2)
        expected = tt[hit[0]] if hit.size else np.inf
        assert h.values[i] <= expected + 1e-12
        if hit.size and hit[0] > 0:
            assert h.values[i] >= tt[hit[0] - 1]
    assert np.isfinite(h.values).all()


@pytest.mark.parametrize("method", ["particles", "generator"])
def test_a_one_point_sweep_equals_open_run_of_its_file(tmp_path, method):
    out, planned = _sweep(tmp_path, bandwidth=0.5, methods=(method,))
    (pp,) = planned
    a = open_sweep(out, layout="runs")
    b = open_run(out / pp.file)
    for name in b.variables:
        if name == "run":
            continue
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert list(a["status"].values) == ["complete"]
    grid = open_sweep(out)  # nothing swept: the grid is the one point
    np.testing.assert_array_equal(grid["t"].values, b["t"].values[0])


def test_missing_and_several_axes(tmp_path):
    out, planned = _sweep(tmp_path, bandwidth=[0.5, 1.0], methods=("particles", "generator"), skip=(1,))
    runs = open_sweep(out, layout="runs")
    status = runs["status"].values.tolist()
    assert status.count("missing") == 1 and status.count("complete") == 3
    missing = runs.reset_index("run").isel(run=status.index("missing"))
    assert np.isnan(missing["t"].values).all() and np.isnan(missing["mode_mass"].values).all()
    grid = open_sweep(out)
    assert set(grid["mode_mass"].dims) == {"method", "bandwidth", "time", "mode"}
    assert int((grid["status"] == "missing").sum()) == 1


def test_a_sweep_combines_mmd2_at_over_its_points(tmp_path):
    out, planned = _sweep(tmp_path, bandwidth=[0.5, 1.0], methods=("particles",),
                          metrics={"names": ["mmd2"], "mmd2_bandwidths": [0.1, 0.4]})
    grid = open_sweep(out)
    assert set(grid["mmd2_at"].dims) == {"bandwidth", "time", "mmd2_bandwidth"}
    np.testing.assert_array_equal(grid["mmd2_bandwidth"].values, [0.1, 0.4])
    assert grid["mmd2_bandwidth"].attrs["units"] == "data"
    for pp in planned:  # each point's values, as xarray's own backend reads its file
        with xr.open_dataset(out / pp.file, engine="h5netcdf") as one:
            np.testing.assert_array_equal(one["mmd2_bandwidth"].values, [0.1, 0.4])
            same = grid["mmd2_at"].sel(bandwidth=float(pp.point.coords["bandwidth"]))
            np.testing.assert_array_equal(same.values, one["mmd2_at"].values[0])
    # a point file written with another bandwidth list is another scenario: foreign to this sweep, never mixed in
    other = scenario.loads(build(name="s", flow=[{"name": "kl_kde", "bandwidth": [0.5, 1.0]}], run={"methods": ["particles"]},
                                 metrics={"names": ["mmd2"], "mmd2_bandwidths": [0.1, 0.8]}), source="<test>")
    (out / planned[1].file).unlink()
    res = sweep.run_point_task({"sc": other, "point": planned[1].point, "path": str(out / planned[1].file), "threads": None})
    assert res["status"] == "finished"
    mixed = open_sweep(out, layout="runs")
    assert mixed["status"].values.tolist() == ["complete", "foreign"]
    np.testing.assert_array_equal(mixed["mmd2_bandwidth"].values, [0.1, 0.4])
    assert np.isnan(mixed["mmd2_at"].values[1]).all() and np.isfinite(mixed["mmd2_at"].values[0]).all()


def test_the_session_run_has_both_methods_and_their_times(tiny_run):
    ds = open_run(tiny_run)
    with h5py.File(tiny_run, "r") as h:
        steps = h["step"][...]
    gen = ds.sel({"method": "generator"})
    np.testing.assert_allclose(gen["t"].values, np.broadcast_to(steps * 0.25, gen["t"].shape))  # drift_step
    parts = ds.sel({"method": "particles"})
    assert sorted(parts["flow"].values.tolist()) == ["kl_kde", "sinkhorn"]
    np.testing.assert_allclose(parts["t"].values, np.broadcast_to(steps * 0.5, parts["t"].shape))


def test_files_of_the_first_schema_are_refused_with_both_versions(tmp_path):
    path = tmp_path / "old.h5"
    xr.Dataset({"position": (("run", "time"), np.zeros((1, 1)))}, attrs={"wgfsim_version": "0.1.0"}).to_netcdf(
        path, engine="h5netcdf")
    with pytest.raises(SchemaError, match=f"schema 1.*reads schema {SCHEMA_VERSION}"):
        open_run(path)
    foreign = tmp_path / "foreign.h5"
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(SchemaError, match="not a wgfsim run file"):
        open_run(foreign)


def test_a_sweep_over_targets_with_different_modes(tmp_path):
    # two_modes (2 modes) next to a gaussian (one mode, its mean): one dataset, mode padded with NaN
    sc = scenario.loads(build(name="kinds", target={"kind": ["two_modes", "gaussian"], "separation": None,
                                                    "weights": None, "std": None},
                              run={"steps": 3, "record_every": 3}), source="<kinds>")
    out = tmp_path / "kinds"
    out.mkdir()
    planned, manifest = sweep.plan(sc)
    (out / sweep.MANIFEST).write_text(json.dumps(manifest))
    for pp in planned:
        assert sweep.run_point_task({"sc": sc, "point": pp.point, "path": str(out / pp.file), "threads": None})[
            "status"] == "finished"
    ds = open_sweep(out, layout="runs").reset_index("run")
    kinds = ds["target.kind"].values.tolist()
    two, gauss = kinds.index("two_modes"), kinds.index("gaussian")
    assert ds.sizes["mode"] == 2
    assert ds["mode_name"].values[two].tolist() == ["left", "right"]
    assert ds["mode_name"].values[gauss].tolist() == ["mean", ""]
    with h5py.File(out / planned[two].file, "r") as h:
        np.testing.assert_array_equal(ds["mode_mass"].values[two], h["mode_mass"][0])
    with h5py.File(out / planned[gauss].file, "r") as h:
        np.testing.assert_array_equal(ds["mode_mass"].values[gauss][:, :1], h["mode_mass"][0])
    assert np.isnan(ds["mode_mass"].values[gauss][:, 1]).all()


def test_flow_params_are_typed_from_the_file(tmp_path):
    # the stored JSON (read with h5py) rebuilt by the flow's own Params: the typed options the run used
    out, planned = _sweep(tmp_path, bandwidth=(0.5, 1.0), methods=("particles",))
    from wgfsim.io import flow_params

    for pp in planned:
        path = out / pp.file
        typed = flow_params(open_run(path))
        with h5py.File(path, "r") as h:
            stored = json.loads(h["flow_params"][0])
        ((name, params),) = typed
        assert name == stored.pop("flow") == "kl_kde"
        assert isinstance(params, wgfsim.flows.get("kl_kde").Params)
        assert params.bandwidth == tuple(stored["bandwidth"]) and params.kernel == stored["kernel"]
        assert params == pp.point.flow_params  # what expansion resolved, read back
    ds = open_sweep(out)
    assert [p.bandwidth for _, p in flow_params(ds)] == [(0.5,), (1.0,)]


def test_a_checkpoint_holds_the_carried_state_as_plain_data(tmp_path):
    # Sinkhorn's warm start under string keys: the saved description is plain JSON (no repr to re-parse)
    from wgfsim.io import snapshot

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(25, 2))
    field = wgfsim.Field("sinkhorn", epsilon=0.5, max_iter=5)
    field(x, y)
    ck: dict = {}
    snapshot.save_field(field, ck)
    entries = json.loads(ck["field_state"])
    assert {key for key, _ in entries} == {"sinkhorn/0.5", "sinkhorn_iterations", "sinkhorn_error"}
    np.save(tmp_path / "x0.npy", ck["field/0/0"])
    again = wgfsim.Field("sinkhorn", epsilon=0.5, max_iter=5)
    snapshot.restore_field(again, {k: np.load(tmp_path / "x0.npy") if k == "field/0/0" else v for k, v in ck.items()}, np)
    np.testing.assert_array_equal(again.state["sinkhorn/0.5"][0], x)
    np.testing.assert_array_equal(again(x, y), field(x, y))  # the same warm start, the same field
    with pytest.raises(TypeError, match="keys are strings"):
        field.state[("sinkhorn", 0.5)] = None
