"""Figures from stored files: the files written, their pixel sizes, and what is drawn against the file's values.

The values drawn are read back from the matplotlib artists and compared with
the file read by h5py (and with NumPy histograms of those values), not with
anything wgfsim computed.  Every file here is written with the store's
writer from hand-made samples, so the truths are known by construction.
"""

import json
import tomllib

import h5py
import matplotlib.image
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.quiver import Quiver

import wgfsim
from wgfsim.methods import record as method_record
from wgfsim import plots
from wgfsim.io import RunStore, open_run

N, STEPS, STEP_SIZE = 40, [0, 10, 20], 0.1
METRICS = ("mmd2", "w2")  # energy_distance, sinkhorn, energy and velocity_rms are never written
SCENARIO = """name = "plot_test"
[target]
kind = "two_modes"
separation = 4.0
n = 64
[init]
kind = "two_modes"
separation = 4.0
weights = [0.2, 0.8]
n = 40
[[flow]]
name = "mmd"
bandwidth = 0.5
[run]
methods = ["particles", "generator"]
steps = 20
step_size = 0.1
record_every = 10
"""
GARBLED = "name = [[[ not toml"  # the file's scenario text: provenance only, never parsed by a figure
PNG = b"\x89PNG\r\n\x1a\n"  # the first 8 bytes of every PNG file
N_LEFT = 24  # target points built on the left mode (centre (-2, 0)): its mass is 24/64


def two_mode_points(rng, n_left, n):
    x = rng.normal(scale=0.2, size=(n, 2))
    x[:n_left, 0] -= 2.0
    x[n_left:, 0] += 2.0
    return x


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Two runs (mmd particles and generator), 3 records, 2-D, two modes, velocities; finished."""
    rng = np.random.default_rng(11)
    st = RunStore.create(
        tmp_path_factory.mktemp("plots") / "pt.h5",
        run_coords={"flow": ["mmd", "mmd"], "method": ["particles", "generator"], "seed": [0, 0], "bandwidth": [0.5, 0.5]},
        n_particles=N, dim=2, mode_names=["left", "right"], target=two_mode_points(rng, N_LEFT, 64),
        reference=two_mode_points(rng, 32, 64), attrs={"scenario": GARBLED, "scenario_name": "plot_test"},
        record_velocity=True, metrics=METRICS, extra_variables=method_record("generator").variables, mode_centres=[[-2.0, 0.0], [2.0, 0.0]],
    )
    for i, step in enumerate(STEPS):
        for run in (0, 1):
            rec = {
                "step": step, "t": step * STEP_SIZE,
                "position": two_mode_points(rng, 8 + 4 * i, N),
                "velocity": rng.normal(size=(N, 2)),
                "mode_mass": np.array([0.2 + 0.1 * i, 0.8 - 0.1 * i]),
                **{m: float(rng.uniform(0.01, 1.0)) for m in METRICS},
            }
            if run == 1:
                rec["loss"] = float(rng.uniform(0.01, 1.0))  # generator runs only: NaN for particles
            st.write_record(run, i, rec)
    return st.finish()


@pytest.fixture(scope="module")
def ds(stored):
    return open_run(stored)  # loaded once: xarray's open is slower than drawing a figure


def test_plot_all_writes_each_figure_at_its_size(ds, tmp_path, monkeypatch):
    """Every figure from a file whose scenario text is garbage, with the TOML and scenario parsers refusing."""
    import wgfsim.scenario

    def refuse(*args, **kwargs):
        raise AssertionError("a figure parsed the scenario text")

    for module, name in ((tomllib, "loads"), (wgfsim.scenario, "loads"), (wgfsim.scenario, "load")):
        monkeypatch.setattr(module, name, refuse)
    assert ds.attrs["scenario"] == GARBLED
    paths = plots.plot_all(ds, tmp_path / "figs")  # a dataset: files named after the scenario
    assert sorted(p.name for p in paths) == sorted(f"plot_test_{w}.png" for w in ("snapshots", "metrics", "mode_mass", "velocity"))
    makers = {"snapshots": plots.snapshots, "metrics": plots.metric_curves,
              "mode_mass": plots.mode_mass_curves, "velocity": plots.velocity_quiver}
    for path in paths:
        assert path.read_bytes()[:8] == PNG
        assert path.stat().st_size > 10_000
        img = matplotlib.image.imread(path)
        width, height = makers[path.stem.removeprefix("plot_test_")](ds).get_size_inches() * plots.DPI
        assert abs(img.shape[0] - height) <= 1 and abs(img.shape[1] - width) <= 1, (path.name, img.shape, width, height)
        assert img[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    # snapshots: 2 runs x 3 records, so a 2 x 3 grid
    assert len(plots.snapshots(ds).axes) == 6


def test_metric_lines_are_the_stored_values(stored, ds):
    fig = plots.metric_curves(ds)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    # the metrics never written (all NaN) get no panel
    assert set(panels) == set(METRICS) | {"loss"}
    with h5py.File(stored, "r") as h:
        t = h["t"][...]
        for name, ax in panels.items():
            lines = {line.get_gid(): line for line in ax.get_lines()}
            assert set(lines) == {"run=0", "run=1"}
            for run in (0, 1):
                np.testing.assert_array_equal(lines[f"run={run}"].get_xdata(), t[run])
                np.testing.assert_array_equal(lines[f"run={run}"].get_ydata(), h[name][run])
            assert ax.get_yscale() == "log"
            # particles solid, generator dashed, same colour: the two methods compare directly
            assert lines["run=0"].get_linestyle() == "-" and lines["run=1"].get_linestyle() == "--"
            assert lines["run=0"].get_color() == lines["run=1"].get_color()
    np.testing.assert_allclose(t[0], np.array(STEPS) * STEP_SIZE)


def test_mode_mass_panels_and_target_line(stored, ds):
    fig = plots.mode_mass_curves(ds)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["mode left", "mode right"]
    expected_target = [N_LEFT / 64, 1 - N_LEFT / 64]  # by construction of the target sample
    with h5py.File(stored, "r") as h:
        for j, ax in enumerate(axes):
            lines = {line.get_gid(): line for line in ax.get_lines()}
            np.testing.assert_allclose(lines["target"].get_ydata(), expected_target[j])
            for run in (0, 1):
                np.testing.assert_array_equal(lines[f"run={run}"].get_ydata(), h["mode_mass"][run, :, j])


def _target_line(ds):
    fig = plots.mode_mass_curves(ds)
    return [line.get_ydata()[0] for ax in fig.axes for line in ax.get_lines() if line.get_gid() == "target"]


def test_mode_mass_reference_comes_from_the_stored_variables(ds):
    """No centres and no target masses in the file: no line; the centres alone: the target sample's nearest-centre masses."""
    assert "target_mode_mass" not in ds
    assert _target_line(ds.drop_vars("mode_centre")) == []
    np.testing.assert_allclose(_target_line(ds), [N_LEFT / 64, 1 - N_LEFT / 64])
    with_masses = ds.assign(target_mode_mass=("mode", np.array([0.3, 0.7])))
    np.testing.assert_allclose(_target_line(with_masses), [0.3, 0.7])


def test_snapshots_and_quiver_draw_the_stored_points(stored, ds):
    with h5py.File(stored, "r") as h:
        pos, vel, target = h["position"][...], h["velocity"][...], h["target"][...]
    fig = plots.snapshots(ds, times=[0, -1])
    grid = np.array(fig.axes).reshape(2, 2)  # rows: particles then generator; columns: first and last record
    for row, run in enumerate((0, 1)):
        for col, ti in enumerate((0, 2)):
            target_dots, particle_dots = [c for c in grid[row, col].collections if isinstance(c, PathCollection)]
            np.testing.assert_array_equal(target_dots.get_offsets(), target)
            np.testing.assert_array_equal(particle_dots.get_offsets(), pos[run, ti])
    assert "step 20" in grid[0, 1].get_title()
    fig = plots.velocity_quiver(ds, run=1, time=2)
    (quiver,) = [c for ax in fig.axes for c in ax.collections if isinstance(c, Quiver)]
    np.testing.assert_array_equal(np.c_[quiver.U, quiver.V], vel[1, 2])
    np.testing.assert_array_equal(quiver.XY, pos[1, 2])


def test_partial_1d_file_without_modes_velocity_or_metrics(tmp_path):
    """A live (.partial) 1-D run with no modes, no stored velocity and only mmd2: snapshots and metrics only."""
    rng = np.random.default_rng(5)
    st = RunStore.create(
        tmp_path / "bare.h5", run_coords={"flow": ["sliced"], "method": ["particles"], "seed": [3]},
        n_particles=30, dim=1, mode_names=0, target=rng.normal(size=(50, 1)), reference=rng.normal(size=(20, 1)),
        attrs={}, metrics=("mmd2",),
    )
    for i in range(3):
        st.write_record(0, i, {"step": i, "t": 0.5 * i, "position": rng.normal(size=(30, 1)), "mmd2": 0.1 / (i + 1)})
    paths = plots.plot_all(st.partial_path, tmp_path / "out")
    assert [p.name for p in paths] == ["bare_snapshots.png", "bare_metrics.png"]
    ds = open_run(st.partial_path)
    assert [ax.get_title() for ax in plots.metric_curves(ds).axes if ax.get_visible()] == ["mmd2"]
    fig = plots.snapshots(ds)
    assert all(len(ax.patches) > 0 for ax in fig.axes)  # 1-D data as histograms
    assert "partial" in fig.get_suptitle()
    with pytest.raises(ValueError, match="record_velocity"):
        plots.velocity_quiver(ds)
    with pytest.raises(ValueError, match="mode_mass"):
        plots.mode_mass_curves(ds)
    st.close()


# ------------------------------------------------------------------ sweep folders

SWEEP = """name = "grid_test"
[target]
kind = ["moons", "checkerboard"]
n = 300
[init]
kind = "gaussian"
dim = 2
n = 50
[[flow]]
name = "mmd"
bandwidth = [0.5, 2.0]
[[flow]]
name = "sliced"
n_projections = [4, 64]
[run]
methods = ["particles"]
steps = 10
step_size = 0.1
record_every = 10
seeds = [0, 1]
"""
SWEEP_STEPS = [0, 10]
CENTRE = {"moons": (0.0, 0.0), "checkerboard": (3.0, -1.0)}  # where each target's hand-made sample sits


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """The sweep folder of SWEEP as the sweep writes it (sweep.json from wgfsim.sweep.plan), points hand-made.

    Point k's samples are Gaussian about its target's centre with std 0.2 + 0.1 k,
    so every panel differs; its mmd2 at record i is (k + 1) / (i + 1) / 100.
    """
    from wgfsim.scenario import loads
    from wgfsim.sweep import MANIFEST, plan

    out = tmp_path_factory.mktemp("sweep") / "grid_test"
    out.mkdir()
    planned, manifest = plan(loads(SWEEP))
    (out / MANIFEST).write_text(json.dumps(manifest, default=repr))
    rng = np.random.default_rng(3)
    for k, pp in enumerate(planned):
        c = pp.coords
        kind = c["target.kind"]
        hyper_key = "bandwidth" if c["flow"] == "mmd" else "n_projections"
        st = RunStore.create(
            out / pp.file, run_coords={"flow": [c["flow"]], "method": ["particles"], "seed": [c["seed"]],
                                       "target.kind": [kind], hyper_key: [c[hyper_key]]},
            n_particles=50, dim=2, mode_names=0, target=rng.normal(CENTRE[kind], 0.5, size=(300, 2)),
            reference=rng.normal(CENTRE[kind], 0.5, size=(40, 2)), metrics=("mmd2",),
            attrs={"scenario": "garbage [[", "scenario_name": "grid_test"},
            run_text={"flow_params": [json.dumps({"flow": c["flow"], hyper_key: c[hyper_key]})]},
        )
        for i, step in enumerate(SWEEP_STEPS):
            st.write_record(0, i, {"step": step, "t": 0.1 * step, "mmd2": (k + 1) / (i + 1) / 100,
                                   "position": rng.normal(CENTRE[kind], 0.2 + 0.1 * k, size=(50, 2))})
        st.finish()
    return out, planned


@pytest.fixture(scope="module")
def sweep_ds(sweep_dir):
    return wgfsim.open_sweep(sweep_dir[0], layout="points", variables=list(plots.sweeps.SWEEP_VARIABLES))


def _point_files(sweep_dir):
    out, planned = sweep_dir
    return {pp.file: pp.coords for pp in planned}


def test_sample_grid_draws_the_final_samples_of_each_point(sweep_dir, sweep_ds):
    """One figure per target; rows: flows; columns: target, then the hyper-parameter values; pixels: 2-D histograms."""
    out, planned = sweep_dir
    ds = sweep_ds
    figures = dict(plots.sample_grid(ds))
    assert list(figures) == ["moons", "checkerboard"]
    files = list(ds["file"].values)
    for kind, fig in figures.items():
        drawn = [ax for ax in fig.axes if ax.get_visible() and ax.get_gid()]
        titles = [ax.get_title() for ax in drawn]
        assert titles == ["bandwidth=0.5", "bandwidth=2", "n_projections=4", "n_projections=64"]
        for ax in drawn:
            i = int(ax.get_gid().removeprefix("point="))
            coords = _point_files(sweep_dir)[files[i]]
            assert coords["target.kind"] == kind and coords["seed"] == 0  # the smallest seed
            (image,) = ax.images
            x0, x1, y0, y1 = image.get_extent()
            with h5py.File(out / files[i], "r") as h:
                last = h["position"][0, -1]  # (particle, dim): the final record
            expected, _, _ = np.histogram2d(last[:, 0], last[:, 1], bins=plots.sweeps.BINS, range=[[x0, x1], [y0, y1]])
            np.testing.assert_array_equal(np.asarray(image.get_array()).T, expected)
        # the first column is the target sample of this kind
        (target_ax,) = [ax for ax in fig.axes if ax.get_title() == "target"]
        x0, x1, y0, y1 = target_ax.images[0].get_extent()
        assert x0 < CENTRE[kind][0] < x1 and y0 < CENTRE[kind][1] < y1


def test_final_metric_against_the_length_scale(sweep_dir, sweep_ds):
    """mmd against its bandwidth (its length scale); sliced dashed against n_projections; y: the mean over seeds."""
    out, planned = sweep_dir
    fig = plots.final_metric_figure(sweep_ds)
    finals = {}
    for pp in planned:
        with h5py.File(out / pp.file, "r") as h:
            c = pp.coords
            value = c.get("bandwidth", c.get("n_projections"))
            finals.setdefault((c["target.kind"], c["flow"], float(value)), []).append(h["mmd2"][0, -1])
    panels = [ax for ax in fig.axes if ax.get_title() in ("moons", "checkerboard")]
    assert len(panels) == 2
    for ax in panels:
        kind = ax.get_title()
        lines = {line.get_gid(): line for a in fig.axes if a.bbox.bounds == ax.bbox.bounds for line in a.get_lines()
                 if line.get_gid()}
        for flow, values in (("mmd", [0.5, 2.0]), ("sliced", [4.0, 64.0])):
            line = lines[f"{flow}|particles"]
            np.testing.assert_allclose(line.get_xdata(), values)
            np.testing.assert_allclose(line.get_ydata(), [np.mean(finals[(kind, flow, v)]) for v in values])
            assert line.get_linestyle() == ("-" if flow == "mmd" else "--")


def test_sweep_with_a_missing_point_still_plots(sweep_dir, tmp_path, capsys):
    """A point's file removed, another diverged: `wgfsim plot` still writes the figures, both panels marked; `info` counts them."""
    import shutil

    from wgfsim import cli

    out, planned = sweep_dir
    copy = tmp_path / "grid_test"
    shutil.copytree(out, copy)
    gone = next(pp for pp in planned if pp.coords["flow"] == "sliced" and pp.coords["n_projections"] == 64
                and pp.coords["target.kind"] == "checkerboard" and pp.coords["seed"] == 0)
    (copy / gone.file).unlink()
    # and one point that diverged: its last record NaN, its file saying so (as the runner writes it)
    broken = next(pp for pp in planned if pp.coords["flow"] == "mmd" and pp.coords["bandwidth"] == 2.0
                  and pp.coords["target.kind"] == "moons" and pp.coords["seed"] == 0)
    with h5py.File(copy / broken.file, "r+") as h:
        h["position"][0, -1] = np.nan
        h.attrs["failed_runs"] = json.dumps({"mmd bandwidth=2.0": "non-finite positions at step 10"})
        first = h["position"][0, 0]
    assert cli.main(["plot", str(copy), "-o", str(tmp_path / "figs")]) == 0
    names = ["grid_test_samples_moons.png", "grid_test_samples_checkerboard.png", "grid_test_final_mmd2.png"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(names)
    assert all((tmp_path / "figs" / n).read_bytes()[:8] == PNG for n in names)
    ds = wgfsim.open_sweep(copy, layout="points", variables=list(plots.sweeps.SWEEP_VARIABLES))
    fig = dict(plots.sample_grid(ds))["checkerboard"]
    (panel,) = [ax for ax in fig.axes if ax.get_title() == "n_projections=64"]
    assert [t.get_text() for t in panel.texts] == ["missing\n(no file)"] and not panel.images
    # the diverged point: its last finite record, marked failed
    (panel,) = [ax for ax in dict(plots.sample_grid(ds))["moons"].axes if ax.get_title() == "bandwidth=2"]
    assert [t.get_text() for t in panel.texts] == ["failed"]
    x0, x1, y0, y1 = panel.images[0].get_extent()
    expected, _, _ = np.histogram2d(first[:, 0], first[:, 1], bins=plots.sweeps.BINS, range=[[x0, x1], [y0, y1]])
    np.testing.assert_array_equal(np.asarray(panel.images[0].get_array()).T, expected)
    text = plots.sweep_summary(ds)  # what `wgfsim info` prints
    assert f"{len(planned)} point(s)" in text and f"status: complete {len(planned) - 2}, failed 1, missing 1" in text
    assert f"  failed: {broken.file}: non-finite positions at step 10" in text
    assert "  bandwidth: 0.5, 2 (8 points)" in text and "  n_projections: 4, 64 (8 points)" in text
    assert gone.file in text
    capsys.readouterr()
    assert cli.main(["plot", str(copy), "--animate"]) == 2
    assert "sweep folder" in capsys.readouterr().err
