"""Animations of a stored run group: the GIF read back with Pillow, the frames chosen, and what each frame draws.

Truths: the file read with h5py (positions, mode masses), Pillow's decoding
of the written GIF (frame count, size, frame duration), NumPy histograms, and
the stated rule for subsampled frames (evenly spread, first and last kept).
"""

import h5py
import numpy as np
import pytest
from PIL import Image

from wgfsim import cli, plots
from wgfsim.io import RunStore, open_run

N, DIM, RECORDS = 40, 4, 6
N_GENERATOR = 30  # the generator run stores fewer samples: rows N_GENERATOR.. of its positions are NaN


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A particles run and a generator run of mmd, 4-D, 6 records, two modes with centres and target masses."""
    rng = np.random.default_rng(8)
    st = RunStore.create(
        tmp_path_factory.mktemp("anim") / "anim.h5",
        run_coords={"flow": ["mmd", "mmd"], "method": ["particles", "generator"], "seed": [0, 0]},
        n_particles=N, dim=DIM, mode_names=["left", "right"], target=rng.normal(size=(80, DIM)),
        reference=rng.normal(size=(20, DIM)), attrs={"scenario_name": "anim", "scenario": "not parsed"},
        metrics=("mmd2",), mode_centres=[[-1.0, 0, 0, 0], [1.0, 0, 0, 0]], target_mode_mass=[0.5, 0.5],
    )
    for i in range(RECORDS):
        for run in (0, 1):
            x = rng.normal(size=(N, DIM)) + i  # moves with the record, so frames differ
            if run == 1:
                x[N_GENERATOR:] = np.nan
            st.write_record(run, i, {"step": 10 * i, "t": (0.1 if run == 0 else 1.0) * 10 * i, "position": x,
                                     "mode_mass": np.array([i, RECORDS - i]) / RECORDS, "mmd2": 1.0 / (i + 1)})
    return st.finish()


@pytest.fixture(scope="module")
def ds(stored):
    return open_run(stored)


def test_gif_has_one_frame_per_record_at_the_figure_size(ds, tmp_path):
    path = plots.animate(ds, tmp_path / "a.gif", fps=5, progress=False)
    assert path.read_bytes()[:6] == b"GIF89a"
    fig = plots.animation_figure(ds).figure
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == RECORDS
        width, height = fig.get_size_inches() * fig.dpi
        assert abs(im.size[0] - width) <= 1 and abs(im.size[1] - height) <= 1
        assert im.info["duration"] == 200  # ms: 5 frames per second
        first = np.asarray(im.convert("RGB"))
        im.seek(RECORDS - 1)
        last = np.asarray(im.convert("RGB"))
    assert first.shape == last.shape and np.abs(first.astype(int) - last).sum() > 0  # the particles moved


@pytest.mark.parametrize("max_frames", [1, 2, 3, 4, 5, 6, 500])
def test_frames_are_evenly_subsampled_to_the_limit(ds, max_frames):
    picks = plots.frames(ds, max_frames)
    m = min(RECORDS, max_frames)
    assert len(picks) == m and picks[-1] == RECORDS - 1
    if m > 1:
        gaps = np.diff(picks)
        assert picks[0] == 0 and gaps.min() >= 1
        assert set(gaps) <= {(RECORDS - 1) // (m - 1), -(-(RECORDS - 1) // (m - 1))}


def test_each_frame_draws_the_stored_record_in_the_chosen_dims(stored, ds):
    """--dims 0,3: the offsets are coordinates 1 and 4 of the stored positions; NaN rows dropped; bars = mode_mass."""
    with h5py.File(stored, "r") as h:
        position, mass = h["position"][...], h["mode_mass"][...]
    anim = plots.animation_figure(ds, dims="0,3")
    assert anim.dims == (0, 3)
    for ti in (0, 5):
        anim.update(ti)
        for run in (0, 1):
            expected = position[run, ti][:, [0, 3]]
            expected = expected[np.isfinite(expected).all(axis=1)]
            assert len(expected) == (N if run == 0 else N_GENERATOR)
            np.testing.assert_array_equal(anim.scatters[run].get_offsets(), expected)
        bars = [ax for ax in anim.figure.axes if ax.get_ylabel() == "mode mass"]
        heights = [[p.get_height() for p in ax.patches] for ax in bars]
        np.testing.assert_allclose(heights, mass[:, ti])  # particles then generator, as stored
    labels = {ax.get_xlabel() for ax in anim.figure.axes if ax.get_ylabel() == "$x_{4}$"}
    assert labels == {"$x_{1}$"}
    # particles and generators count t differently: each panel shows its own
    texts = sorted(t.get_text() for ax in anim.figure.axes for t in ax.texts if t.get_text().startswith("t ="))
    assert texts == ["t = 5", "t = 50"]  # record 5: step 50 at step sizes 0.1 and 1


@pytest.mark.parametrize("dims", ["0,4", "1,1", "0", "a,b"])
def test_bad_dims_name_the_option(ds, dims):
    with pytest.raises(ValueError, match="dims"):
        plots.animation_figure(ds, dims=dims)


def test_one_dimensional_frames_are_histograms(tmp_path):
    rng = np.random.default_rng(2)
    st = RunStore.create(tmp_path / "line.h5", run_coords={"flow": ["sliced"], "method": ["particles"], "seed": [0]},
                         n_particles=50, dim=1, mode_names=0, target=rng.normal(size=(60, 1)),
                         reference=rng.normal(size=(10, 1)), attrs={"scenario_name": "line"}, metrics=("mmd2",))
    xs = [rng.normal(size=(50, 1)) * (1 + i) for i in range(3)]
    for i, x in enumerate(xs):
        st.write_record(0, i, {"step": i, "t": 0.1 * i, "position": x, "mmd2": 1.0 / (i + 1)})
    anim = plots.animation_figure(open_run(st.finish()))
    anim.update(2)
    counts, edges = anim.scatters[0].get_data()[:2]
    expected, _ = np.histogram(xs[2][:, 0], bins=edges, density=True)
    np.testing.assert_allclose(counts, expected)


def test_cli_animate_and_its_user_errors(stored, tmp_path, capsys, monkeypatch):
    # frames subsampled to --max-frames in the written file
    assert cli.main(["plot", str(stored), "--animate", "--max-frames", "3", "--dims", "0,3", "-q",
                     "-o", str(tmp_path)]) == 0
    with Image.open(tmp_path / "anim_animation.gif") as im:
        assert im.n_frames == 3
    capsys.readouterr()
    for argv, words in (
        (["plot", str(stored), "--animate", "--dims", "0,9"], "dims"),
        (["plot", str(stored), "--animate", "--max-frames", "0"], "max_frames"),
        (["plot", str(stored), "--max-frames", "3"], "--animate"),
        (["plot", str(tmp_path / "missing.h5")], "no such file"),
        (["info", str(tmp_path / "anim_animation.gif")], "not a wgfsim run file"),
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg there
    assert cli.main(["plot", str(stored), "--animate", "--format", "mp4", "-q"]) == 2
    assert "ffmpeg" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="MP4 needs ffmpeg on the PATH")
def test_mp4_through_ffmpeg(ds, tmp_path):
    path = plots.animate(ds, tmp_path / "a.mp4", max_frames=3, progress=False)
    head = path.read_bytes()[:12]
    assert head[4:8] == b"ftyp"  # an ISO base media file (MP4) starts with its ftyp box
