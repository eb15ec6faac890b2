"""Figures from a stored run group: the files written, their pixel sizes, and what is drawn against the file's values.

The values drawn are read back from the matplotlib artists and compared with
the file read by h5py, not with anything wgfsim computed.
"""

import h5py
import matplotlib.image
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.quiver import Quiver

from wgfsim import plots
from wgfsim.store import RunStore, open_run

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
        reference=two_mode_points(rng, 32, 64), attrs={"scenario": SCENARIO}, record_velocity=True,
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


def test_plot_all_writes_each_figure_at_its_size(ds, tmp_path):
    paths = plots.plot_all(ds, tmp_path / "figs")  # a dataset: files named after the scenario
    assert sorted(p.name for p in paths) == sorted(f"plot_test_{w}.png" for w in ("snapshots", "metrics", "mode_mass", "velocity"))
    makers = {"snapshots": plots.snapshots, "metrics": plots.metric_curves,
              "mode_mass": plots.mode_mass_curves, "velocity": plots.velocity_quiver}
    for path in paths:
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


def test_mode_mass_reference_from_the_runner_attributes(ds):
    """The runner stores centres and target masses as JSON text; without them (and no scenario) no line."""
    ds = ds.copy()
    del ds.attrs["scenario"]
    assert _target_line(ds) == []
    ds.attrs["mode_centres"] = "[[-2.0, 0.0], [2.0, 0.0]]"
    np.testing.assert_allclose(_target_line(ds), [N_LEFT / 64, 1 - N_LEFT / 64])
    ds.attrs["target_mode_mass"] = "[0.3, 0.7]"
    np.testing.assert_allclose(_target_line(ds), [0.3, 0.7])


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
        attrs={},
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
