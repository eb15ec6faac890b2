"""Issue 22: nothing written outside the output folder, nothing deleted that wgfsim did not write, no input that
hangs or crashes.

One section per cause.  Each test plants what an adversary (or an unlucky user)
would and checks the outcome against a truth the code under test does not
produce: bytes the test itself wrote, files the test itself made, exit codes
of ``wgfsim.cli``, closed forms.
"""

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np
import pytest

import wgfsim
import wgfsim.io
import wgfsim.io.checkpoint
import wgfsim.io.manifest
import wgfsim.io.schema
import wgfsim.io.writer
import wgfsim.scenario
import wgfsim.sweep
from wgfsim.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = sys.executable

TINY = """
name = "tiny"

[target]
kind = "two_modes"
separation = 4.0
weights = [0.5, 0.5]
std = 0.1
dim = 2
n = 32

[init]
kind = "two_modes"
separation = 4.0
weights = [0.2, 0.8]
std = 0.1
dim = 2
n = 32

[[flow]]
name = "mmd"
bandwidth = 1.0

[run]
steps = 4
step_size = 0.1
record_every = 2
seeds = [0]
backend = "numpy"

[metrics]
names = ["mmd2", "mode_mass"]
"""


def _scenario(tmp_path, text=TINY, name="tiny.toml") -> pathlib.Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _run(scenario, out, *args) -> int:
    return main(["run", str(scenario), "-o", str(out), "-q", "--no-plots", *map(str, args)])


def _interrupt_before_finish(monkeypatch):
    """The next run stops (Ctrl-C) after its last record, before the final rename: a resumable .partial."""
    real = wgfsim.io.writer.RunStore.finish

    def finish(self, attrs=None):
        monkeypatch.setattr(wgfsim.io.writer.RunStore, "finish", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(wgfsim.io.writer.RunStore, "finish", finish)


def _tree(folder: pathlib.Path) -> dict:
    """Every file under ``folder`` with its bytes (the test's own record of what is there)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- cause 1: symlinks never redirect our writes


def test_a_symlink_at_the_lock_is_refused_and_its_target_untouched(tmp_path, capsys):
    sc, out, outside = _scenario(tmp_path), tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    outside.write_bytes(b"precious")
    (out / "tiny.h5.lock").symlink_to(outside)
    assert _run(sc, out) == 2
    err = capsys.readouterr().err
    assert "tiny.h5.lock" in err and "symlink" in err and "\n" not in err.strip()
    assert outside.read_bytes() == b"precious"


def test_a_symlinked_checkpoint_folder_is_refused_and_receives_nothing(tmp_path, capsys):
    sc, out, elsewhere = _scenario(tmp_path), tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_bytes(b"mine")
    (out / "tiny.ckpt").symlink_to(elsewhere, target_is_directory=True)
    assert _run(sc, out) == 2
    err = capsys.readouterr().err
    assert "tiny.ckpt" in err and "symlink" in err
    assert _tree(elsewhere) == {"keep.txt": b"mine"}


def test_a_symlink_at_a_checkpoint_temporary_on_resume_is_refused(tmp_path, monkeypatch, capsys):
    sc, out, outside = _scenario(tmp_path), tmp_path / "out", tmp_path / "outside.bin"
    _interrupt_before_finish(monkeypatch)
    assert _run(sc, out) == 130
    outside.write_bytes(b"precious")
    (out / "tiny.ckpt" / "run0.npz.tmp").symlink_to(outside)
    (out / "tiny.ckpt" / "run0.npz").unlink()  # resume must write a fresh checkpoint at step 0
    assert _run(sc, out, "--resume") == 2
    assert "run0.npz.tmp" in capsys.readouterr().err
    assert outside.read_bytes() == b"precious"


def test_a_symlink_at_the_sweep_manifest_temporary_is_refused(tmp_path, capsys):
    sc, out, outside = _scenario(tmp_path), tmp_path / "out", tmp_path / "outside.json"
    (out / "tiny").mkdir(parents=True)
    outside.write_bytes(b"precious")
    (out / "tiny" / "sweep.json.tmp").symlink_to(outside)
    assert main(["sweep", str(sc), "-o", str(out), "-q"]) == 2
    assert "sweep.json.tmp" in capsys.readouterr().err
    assert outside.read_bytes() == b"precious"


# ---------------------------------------------------------------- cause 2: we delete only what we wrote


def test_a_user_folder_named_like_the_checkpoints_is_never_removed(tmp_path, capsys):
    sc, out = _scenario(tmp_path), tmp_path / "out"
    (out / "tiny.ckpt").mkdir(parents=True)
    (out / "tiny.ckpt" / "notes.txt").write_bytes(b"mine")
    assert _run(sc, out) == 2
    assert "did not write" in capsys.readouterr().err
    assert _tree(out / "tiny.ckpt") == {"notes.txt": b"mine"}
    # the stale clean-up beside a complete file leaves it alone too
    (out / "tiny.ckpt").rename(tmp_path / "moved")
    assert _run(sc, out) == 0
    (tmp_path / "moved").rename(out / "tiny.ckpt")
    assert _run(sc, out, "--resume") == 0  # complete: nothing to do, and nothing removed
    assert _tree(out / "tiny.ckpt") == {"notes.txt": b"mine"}


def test_a_sweep_named_like_a_checkpoint_folder_survives_a_run(tmp_path, capsys):
    out = tmp_path / "out"
    text = TINY.replace('name = "tiny"', 'name = "tiny.ckpt"').replace('bandwidth = 1.0', 'bandwidth = [1.0, 2.0]')
    assert main(["sweep", str(_scenario(tmp_path, text, "sweep.toml")), "-o", str(out), "-q"]) == 0
    before = _tree(out / "tiny.ckpt")
    assert sum(name.endswith(".h5") for name in before) == 2 and "sweep.json" in before
    assert _run(_scenario(tmp_path), out) == 2
    assert "did not write" in capsys.readouterr().err
    assert _tree(out / "tiny.ckpt") == before


# ---------------------------------------------------------------- cause 4: readers never hang or crash

SWEEP = TINY.replace("bandwidth = 1.0", "bandwidth = [1.0, 2.0]")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A two-point sweep written once for this module (copied by the tests that damage it)."""
    tmp = tmp_path_factory.mktemp("sweep")
    assert main(["sweep", str(_scenario(tmp, SWEEP)), "-o", str(tmp / "out"), "-q"]) == 0
    return tmp / "out" / "tiny"


def _copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("target", ["file", "manifest"])
def test_info_on_a_fifo_is_refused_not_hung(tmp_path, target):
    if target == "file":
        fifo = tmp_path / "run.h5"
        os.mkfifo(fifo)
        cmd = [PY, "-m", "wgfsim.cli", "info", str(fifo)]
    else:  # the CLI checks for sweep.json as a file first; the library call used to block
        (tmp_path / "sweep").mkdir()
        os.mkfifo(tmp_path / "sweep" / "sweep.json")
        cmd = [PY, "-c", f"import sys, wgfsim.io\ntry: wgfsim.io.open_sweep({str(tmp_path / 'sweep')!r})\n"
                         "except ValueError as e: sys.exit(print(e, file=sys.stderr) or 2)"]
    # a hang is a TimeoutExpired here
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert "FIFO" in proc.stderr or "regular file" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("edit,key", [
    (lambda m: m.pop("points"), "'points'"),
    (lambda m: m.__setitem__("points", "a.h5"), "'points'"),
    (lambda m: m["points"][1].pop("file"), "'points[1].file'"),
    (lambda m: m["points"][0].__setitem__("file", "../../etc/passwd.h5"), "'points[0].file'"),
    (lambda m: m["points"][0].__setitem__("coords", [1, 2]), "'points[0].coords'"),
])
def test_a_damaged_manifest_names_the_field(tmp_path, capsys, sweep_dir, edit, key):
    d = _copy(sweep_dir, tmp_path / "s")
    manifest = json.loads((d / "sweep.json").read_text())
    edit(manifest)
    (d / "sweep.json").write_text(json.dumps(manifest))
    assert main(["info", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and "sweep.json" in err and "\n" not in err


def test_one_corrupt_point_reads_as_that_point_unreadable(tmp_path, sweep_dir):
    d = _copy(sweep_dir, tmp_path / "s")
    files = [e["file"] for e in json.loads((d / "sweep.json").read_text())["points"]]
    (d / files[1]).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an HDF5 signature and nothing else
    ds = wgfsim.io.open_sweep(d, layout="points")
    assert list(ds["status"].values) == ["complete", "unreadable"]
    with h5py.File(d / files[0], "r") as h:  # the good point's values are the file's own
        np.testing.assert_array_equal(ds["mmd2"].values[0], h["mmd2"][0])
    assert np.isnan(ds["mmd2"].values[1]).all()


def test_a_point_file_of_another_scenario_is_refused(tmp_path, sweep_dir):
    d = _copy(sweep_dir, tmp_path / "s")
    files = [e["file"] for e in json.loads((d / "sweep.json").read_text())["points"]]
    other = wgfsim.scenario.loads(SWEEP.replace("step_size = 0.1", "step_size = 0.05"), source="<other>")
    planned = wgfsim.sweep.plan(other)[0][0]
    outcome = wgfsim.sweep.run_point_task({"sc": other, "point": planned.point, "path": str(tmp_path / planned.file),
                                           "threads": None})  # in this process: no worker pool to start
    assert outcome["status"] == "finished", outcome
    # a file of another scenario (same name, same flow) under this point's name
    (d / files[0]).write_bytes((tmp_path / planned.file).read_bytes())
    ds = wgfsim.io.open_sweep(d, layout="points")
    assert list(ds["status"].values) == ["foreign", "complete"]
    assert np.isnan(ds["mmd2"].values[0]).all()


def test_info_on_a_file_without_t(tmp_path, capsys, sweep_dir):
    src = sorted(sweep_dir.glob("*.h5"))[0]
    f = tmp_path / "old.h5"
    f.write_bytes(src.read_bytes())
    with h5py.File(f, "r+") as h:
        n_records = int(np.isfinite(h["t"][0]).sum())
        del h["t"]
    assert main(["info", str(f)]) == 0
    out = capsys.readouterr().out
    assert f"  {n_records}  " in out.splitlines()[3] + "  "


@pytest.mark.parametrize("version", ["2.7", 2.7, "two"])
def test_a_schema_that_is_not_an_integer_is_refused(tmp_path, capsys, sweep_dir, version):
    src = sorted(sweep_dir.glob("*.h5"))[0]
    f = tmp_path / "v.h5"
    f.write_bytes(src.read_bytes())
    with h5py.File(f, "r+") as h:
        h.attrs["wgfsim_schema"] = version
    with pytest.raises(wgfsim.io.schema.SchemaError, match="2.7|two"):
        wgfsim.io.open_run(f)


# ---------------------------------------------------------------- cause 9: SIGTERM and SIGHUP take the Ctrl-C path

LONG = TINY.replace("steps = 4", "steps = 1000000").replace("record_every = 2", "record_every = 1000")


def _start(tmp_path, *words) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "wgfsim.cli", *map(str, words)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for(pattern_dir: pathlib.Path, glob: str, proc, seconds=120.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if list(pattern_dir.glob(glob)) if pattern_dir.exists() else []:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {glob} in {pattern_dir} after {seconds} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_run_stopped_by_a_signal_exits_130_with_the_resume_hint(tmp_path, sig):
    out = tmp_path / "out"
    proc = _start(tmp_path, "run", _scenario(tmp_path, LONG), "-o", out, "-q", "--no-plots")
    _wait_for(out, "tiny.ckpt/run0.npz", proc)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the checkpoint comes just before the first record: wait for the record
        try:
            t = wgfsim.io.open_run(out / "tiny.h5.partial", index=False)["t"].values
            if t.size and np.isfinite(t[0, 0]):
                break
        except (OSError, ValueError):  # not yet published
            pass
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert signal.Signals(sig).name in err and "--resume" in err and "Traceback" not in err
    with h5py.File(out / "tiny.h5.partial", "r") as h:  # every record so far is kept
        assert h.attrs["status"] == "partial" and np.isfinite(h["t"][0, 0])


@pytest.mark.slow  # spawns a worker pool and waits for a point's first checkpoint: 5-8 s
def test_a_sweep_parent_stopped_by_sigterm_exits_130_without_leaks(tmp_path):
    out = tmp_path / "out"
    proc = _start(tmp_path, "sweep", _scenario(tmp_path, LONG.replace("bandwidth = 1.0", "bandwidth = [1.0, 2.0]")),
                  "-o", out, "-q")
    _wait_for(out / "tiny", "*.ckpt/run0.npz", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "SIGTERM" in err and "again" in err
    assert "leaked" not in err and "resource_tracker" not in err and "Traceback" not in err
    assert list((out / "tiny").glob("*.h5.partial"))  # the unfinished point is kept to resume


# ---------------------------------------------------------------- cause 10: I/O faults and non-finite results


def test_an_io_fault_says_the_run_is_resumable_and_resume_finishes_it(tmp_path, monkeypatch, capsys):
    import errno

    sc, out, ref = _scenario(tmp_path), tmp_path / "out", tmp_path / "ref"
    assert _run(sc, ref) == 0
    real, calls = wgfsim.io.checkpoint.save, []

    def save(path, snap):  # the disk fills up at the second checkpoint
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, snap)

    monkeypatch.setattr(wgfsim.io.checkpoint, "save", save)
    assert _run(sc, out) == 1
    err = capsys.readouterr().err.strip()
    assert "No space left" in err and "resumable" in err and "--resume" in err and "\n" not in err
    monkeypatch.setattr(wgfsim.io.checkpoint, "save", real)
    assert _run(sc, out, "--resume") == 0
    with h5py.File(out / "tiny.h5", "r") as got, h5py.File(ref / "tiny.h5", "r") as want:
        np.testing.assert_array_equal(got["position"][...], want["position"][...])


def test_no_inodes_left_exits_1_like_a_full_disk(tmp_path, capsys):
    import shutil

    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=1", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("needs root and tmpfs to make a file system without inodes")
    try:
        assert _run(_scenario(tmp_path), mnt) == 1
        assert "No space left" in capsys.readouterr().err
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("call", [
    lambda x, y: wgfsim.velocity("drift_da2", x, y, affinity_floor=1e300),
    lambda x, y: wgfsim.velocity("drmmd", x, y, lambda_=1e-310),
    lambda x, y: wgfsim.velocity("sinkhorn_proxy", x * 1e200, y * 1e200),
    lambda x, y: wgfsim.velocity("drift_da2", x * 1e200, y * 1e200),
    lambda x, y: wgfsim.energy("sinkhorn", x * 1e200, y, epsilon=0.1),
    lambda x, y: wgfsim.energy("sliced", x * 1e200, y),
])
def test_a_non_finite_field_or_energy_of_finite_inputs_is_an_error(call):
    from wgfsim.errors import NonFiniteError

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(30, 2)) + 1.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overflow warnings on the way are not the point
        with pytest.raises(NonFiniteError, match="not finite"):
            call(x, y)


# ---------------------------------------------------------------- cause 11: unconverged Sinkhorn is never silent


def _two_modes(n, rng):
    """Particles 20/80 and targets 50/50 on two modes 6 apart (1-D blobs in 2-D)."""
    def sample(w_left):
        left = rng.random(n) < w_left
        x = rng.normal(scale=0.3, size=(n, 2))
        x[:, 0] += np.where(left, -3.0, 3.0)
        return x

    return sample(0.2), sample(0.5)


def test_sinkhorn_warns_when_the_tolerance_is_not_met_and_converges_to_the_exact_field():
    import ot

    from wgfsim.errors import ConvergenceWarning

    rng = np.random.default_rng(3)
    x, y = _two_modes(128, rng)
    with pytest.warns(ConvergenceWarning, match=r"max_iter = 100 \(100 iterations\) with marginal error"):
        wgfsim.velocity("sinkhorn", x, y, epsilon=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # converged: no warning
        field = wgfsim.Field("sinkhorn", epsilon=0.1, max_iter=3000)
        v = field(x, y)
    assert field.ctx.state["sinkhorn_error"] < 1e-6 and field.ctx.state["sinkhorn_iterations"] < 3000
    # the truth: the exact W2 map from POT's network simplex, v = T(x) - x, on the crowded (right) mode
    plan = ot.emd(np.full(128, 1 / 128), np.full(128, 1 / 128), ot.dist(x, y))
    exact = 128 * plan @ y - x
    right = x[:, 0] > 0
    assert abs(v[right, 0].mean() - exact[right, 0].mean()) < 0.1 * abs(exact[right, 0].mean())


def test_a_run_records_sinkhorn_iterations_and_error_per_step(tmp_path, capsys):
    text = TINY.replace('name = "mmd"\nbandwidth = 1.0', 'name = "sinkhorn"\nepsilon = 0.1\nmax_iter = 3')
    out = tmp_path / "out"
    assert _run(_scenario(tmp_path, text), out) == 0
    err = capsys.readouterr().err
    assert "did not reach its tol" in err and err.count("\n") == 1  # one line for the run, not one per step
    with h5py.File(out / "tiny.h5", "r") as h:
        its, errors = h["sinkhorn_iterations"][0], h["sinkhorn_error"][0]
    ds = wgfsim.open_run(out / "tiny.h5")
    assert ds["sinkhorn_error"].attrs["units"] == "1" and "marginal error" in ds["sinkhorn_error"].attrs["long_name"]
    np.testing.assert_array_equal(its, [3, 3, 3])  # max_iter = 3 cannot reach tol = 1e-6 from a cold start
    assert (errors > 1e-6).all() and np.isfinite(errors).all()


# ---------------------------------------------------------------- cause 3: the data's content is part of a run's identity

FROM_FILE = TINY.replace('''[target]
kind = "two_modes"
separation = 4.0
weights = [0.5, 0.5]
std = 0.1
dim = 2
n = 32''', '''[target]
kind = "from_file"
path = "data.npy"
n = 32''').replace('names = ["mmd2", "mode_mass"]', 'names = ["mmd2"]')


def _data(tmp_path, shift: float) -> None:
    np.save(tmp_path / "data.npy", np.random.default_rng(0).normal(size=(200, 2)) + shift)


def test_resume_after_the_data_changed_is_refused(tmp_path, monkeypatch, capsys):
    _data(tmp_path, 0.0)
    sc, out = _scenario(tmp_path, FROM_FILE), tmp_path / "out"
    _interrupt_before_finish(monkeypatch)
    assert _run(sc, out) == 130
    _data(tmp_path, 1.0)  # same path, same shape, other values
    capsys.readouterr()
    assert _run(sc, out, "--resume") == 2
    err = capsys.readouterr().err
    assert "another scenario" in err and "target.content.sha256" in err
    _data(tmp_path, 0.0)  # the data the run started on: it resumes
    assert _run(sc, out, "--resume") == 0
    with h5py.File(out / "tiny.h5", "r") as h:
        resolved = json.loads(h.attrs["resolved_scenario"])
    import hashlib

    assert resolved["target"]["content"]["sha256"] == hashlib.sha256((tmp_path / "data.npy").read_bytes()).hexdigest()


def test_a_sweep_reruns_points_whose_data_changed(tmp_path):
    """A sweep skips a point whose file exists; the file names carry the data's content, so edited data reruns."""
    _data(tmp_path, 0.0)
    sc = wgfsim.scenario.load(_scenario(tmp_path, FROM_FILE.replace("bandwidth = 1.0", "bandwidth = [1.0, 2.0]")))
    before = [pp.file for pp in wgfsim.sweep.plan(sc)[0]]
    assert [pp.file for pp in wgfsim.sweep.plan(sc)[0]] == before  # the same data: the same points
    _data(tmp_path, 1.0)
    after = [pp.file for pp in wgfsim.sweep.plan(sc)[0]]
    assert len(set(after)) == 2 and not set(after) & set(before)


def test_a_particle_checkpoint_refuses_another_target_sample():
    from wgfsim.io.checkpoint import CheckpointError
    from wgfsim.methods.particles.method import ParticlesMethod

    from wgfsim.methods.particles.method import ParticleSettings

    sc = wgfsim.scenario.loads(TINY, source="<tiny>")
    point = wgfsim.scenario.expand(sc)[0]
    y = np.random.default_rng(1).normal(size=(32, 2))
    settings = ParticleSettings(step_size=0.1, minibatch=0)
    a = ParticlesMethod(settings, point, y, np, np.float64, "numpy")
    snap = a.snapshot(a.init())
    b = ParticlesMethod(settings, point, y.copy(), np, np.float64, "numpy")
    np.testing.assert_array_equal(b.restore(snap).x, snap["x"])
    y[3, 1] += 1e-9  # one value of the target moved
    with pytest.raises(CheckpointError, match="another target sample"):
        ParticlesMethod(settings, point, y, np, np.float64, "numpy").restore(snap)


def test_the_studies_flag_or_refuse_unconverged_points(tmp_path):
    from wgfsim.studies import paper_fig2
    from wgfsim.studies.convergence import unconverged

    text = TINY.replace('name = "mmd"\nbandwidth = 1.0', 'name = "sinkhorn"\nepsilon = 1.0\nmax_iter = [3, 2000]')
    sc = wgfsim.scenario.loads(text.replace('names = ["mmd2", "mode_mass"]', 'names = ["mmd2"]'), source="<s>")
    out = tmp_path / "sweep"
    out.mkdir()
    planned, manifest = wgfsim.sweep.plan(sc)
    wgfsim.io.manifest.write_manifest(out / "sweep.json", manifest)
    for pp in planned:  # in this process: no worker pool to start
        assert wgfsim.sweep.run_point_task({"sc": sc, "point": pp.point, "path": str(out / pp.file),
                                            "threads": None})["status"] == "finished"
    ds = wgfsim.io.open_sweep(out, layout="points")
    # the truth: the errors the files hold against the tol the test set (1e-6, the default)
    errors = ds["sinkhorn_error"].values
    want = [bool(e[-1] >= 1e-6 or (e >= 1e-6).mean() > 0.5) for e in errors]
    assert want == [True, False]  # 3 iterations a step cannot converge; 2000 can
    np.testing.assert_array_equal(unconverged(ds, "point"), want)
    rows = paper_fig2.collect(out)
    assert sorted(r["converged"] for r in rows) == [False, True]
    assert "(unconverged)" in paper_fig2.markdown_table(rows)
    assert paper_fig2.main([str(out), "--unconverged", "refuse", "--figure", str(tmp_path / "f.png")]) == 1


# ---------------------------------------------------------------- cause 6: a boolean option takes only a boolean


@pytest.mark.parametrize("value", ["false", 0, 1, math.nan, {}, [True]])
@pytest.mark.parametrize("flow,option", [("sinkhorn", "warm_start"), ("kale", "warm_start"),
                                         ("kl_kde", "exclude_self"), ("drift_da2", "normalize_drift")])
def test_every_boolean_option_refuses_what_is_not_a_boolean(flow, option, value):
    from wgfsim.errors import OptionError

    x, y = np.zeros((3, 2)), np.ones((4, 2))
    with pytest.raises(OptionError, match=f"{flow}: option '{option}' expected true or false"):
        wgfsim.velocity(flow, x, y, **{option: value})


@pytest.mark.parametrize("value", ['"false"', "0", "{}"])
def test_a_scenario_boolean_that_is_not_a_boolean_is_refused(tmp_path, capsys, value):
    text = TINY.replace('name = "mmd"\nbandwidth = 1.0', f'name = "sinkhorn"\nwarm_start = {value}')
    assert main(["validate", str(_scenario(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert "warm_start" in err and "true or false" in err and "\n" not in err.strip()


def test_the_number_rule_is_one_rule():
    from wgfsim.errors import OptionError, number

    assert number("o", "k", 3, integer=True, minimum=1) == 3
    assert number("o", "k", np.int64(3), integer=True, minimum=1) == 3
    assert number("o", "k", 0.5, minimum=0, open_minimum=True) == 0.5
    for bad in (True, "3", 3.0, 1e11, math.nan, None, [3]):
        with pytest.raises(OptionError):
            number("o", "k", bad, integer=True, minimum=1)
    for bad in (0.0, -1.0, math.inf, math.nan, "1"):
        with pytest.raises(OptionError, match="a positive number"):
            number("o", "k", bad, minimum=0, open_minimum=True)


# ---------------------------------------------------------------- cause 5: scenario values refused, not crashed on


def test_a_huge_separation_is_refused_naming_separation(tmp_path, capsys):
    text = TINY.replace("separation = 4.0\nweights = [0.5, 0.5]", "separation = 1e300\nweights = [0.5, 0.5]", 1)
    assert main(["validate", str(_scenario(tmp_path, text))]) == 2
    err = capsys.readouterr().err.strip()
    assert "target.separation" in err and "1e+75" in err and "eps" not in err and "\n" not in err
    # the limit is the one the kernels need: a squared distance of (1e75)^2 is the largest temperature
    from wgfsim.flows._common import TEMPERATURE_RANGE
    from wgfsim.targets import LENGTH_LIMIT

    assert math.isclose(LENGTH_LIMIT ** 2, TEMPERATURE_RANGE[1], rel_tol=1e-12)


def test_kale_that_cannot_converge_is_one_line_exit_2(tmp_path, capsys):
    text = """name = "k"
[target]
kind = "two_modes"
n = 32
[init]
kind = "gaussian"
n = 32
[[flow]]
name = "kale"
lambda_ = 1e-10
[run]
steps = 2
step_size = 0.1
backend = "numpy"
"""
    assert _run(_scenario(tmp_path, text), tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert "kale" in err and "lambda_" in err and "Traceback" not in err and "\n" not in err


@pytest.mark.parametrize("where", ["file", "set"])
@pytest.mark.parametrize("opening,closing", [("[", "]"), ("{a = ", "}")])
def test_values_nested_thousands_deep_are_refused_not_a_recursion_error(tmp_path, capsys, where, opening, closing):
    deep = opening * 3000 + "1.0" + closing * 3000
    if where == "file":
        args = [str(_scenario(tmp_path, TINY.replace("bandwidth = 1.0", f"bandwidth = {deep}")))]
    else:
        args = [str(_scenario(tmp_path)), "--set", f"flow.0.bandwidth={deep}"]
    assert main(["validate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "nested more than 32 deep" in err and "\n" not in err and len(err) < 400


def test_a_huge_generator_eval_n_is_refused_at_validation(tmp_path, capsys):
    text = TINY.replace('seeds = [0]', 'seeds = [0]\nmethods = ["generator"]') + "\n[generator]\neval_n = 100000000000\n"
    assert main(["validate", str(_scenario(tmp_path, text))]) == 2
    err = capsys.readouterr().err.strip()
    assert "generator evaluation samples" in err and "memory" in err and "\n" not in err


# ---------------------------------------------------------------- causes 7 and 8: one resource estimator, before any allocation

GiB = 2 ** 30


@pytest.fixture
def eight_gib(monkeypatch):
    """The machine has 8 GiB free, whatever this one has (the estimate is what is tested, not the machine)."""
    import wgfsim.flows
    import wgfsim.targets

    monkeypatch.setattr(wgfsim.targets, "_available_memory", lambda: 8 * GiB)
    monkeypatch.setitem(wgfsim.flows.LIMITS, "check", True)
    monkeypatch.setitem(wgfsim.flows.LIMITS, "max_pairs", 1e13)


def test_no_size_check_lasts_one_command(tmp_path, capsys):
    """`--no-size-check` turns the API's check off for its command only (the process goes on checking)."""
    import wgfsim.flows

    assert wgfsim.flows.LIMITS["check"] is True
    assert main(["validate", str(_scenario(tmp_path)), "--no-size-check"]) == 0
    assert wgfsim.flows.LIMITS["check"] is True


@pytest.mark.parametrize("flow,options,part,bytes_", [
    # the offsets and weights: 2 copies of n_mc (d + 1) float64
    ("kl_kde_wgf", {"n_mc": 10 ** 9}, "Monte-Carlo offsets", 8 * 2 * 10 ** 9 * 3),
    # the tensor rule's n_nodes^d nodes with their weights, and the n_nodes^2 companion matrix twice
    ("kl_kde_wgf", {"quadrature": "gauss_hermite", "n_nodes": 10 ** 5}, "Gauss-Hermite nodes",
     8 * (10 ** 10 * 3 + 2 * 10 ** 10)),
    # the projections: n_projections (n + m + d) float64
    ("sliced", {"n_projections": 10 ** 10}, "sliced projections", 8 * 10 ** 10 * (20 + 30 + 2)),
])
def test_the_api_refuses_options_beyond_memory_before_allocating(eight_gib, flow, options, part, bytes_):
    from wgfsim.flows import ResourceError

    rng = np.random.default_rng(0)
    assert bytes_ > 8 * GiB  # the case is beyond the machine the fixture pretends
    t0 = time.perf_counter()
    with pytest.raises(ResourceError, match=part) as err:
        wgfsim.velocity(flow, rng.normal(size=(20, 2)), rng.normal(size=(30, 2)), **options)
    assert time.perf_counter() - t0 < 2.0  # refused, not computed
    value, unit = str(err.value).split("need about ")[1].split(" ")[:2]
    assert float(value) * {"GiB": GiB, "TiB": 2 ** 40}[unit] == pytest.approx(bytes_, rel=0.01)


@pytest.mark.parametrize("flow", ["sinkhorn_proxy", "drift_da2", "mmd", "kale", "drmmd"])
def test_the_api_refuses_a_billion_rows_before_allocating(eight_gib, flow):
    from wgfsim.flows import ResourceError

    x = np.broadcast_to(np.zeros(2), (10 ** 9, 2))  # zero-stride views: no memory of their own
    y = np.broadcast_to(np.ones(2), (10 ** 9, 2))
    t0 = time.perf_counter()
    with pytest.raises(ResourceError, match="point pairs|of memory"):
        wgfsim.velocity(flow, x, y)
    with pytest.raises(ResourceError):
        wgfsim.Field(flow)(x, y[:50])
    assert time.perf_counter() - t0 < 2.0


def test_the_dense_critic_solve_is_refused_by_its_size(eight_gib):
    from wgfsim.flows import ResourceError

    x = np.broadcast_to(np.zeros(2), (60_000, 2))
    for flow in ("kale", "drmmd"):  # 3 (N + M)^2 float64 Gram matrices: 345 GB
        with pytest.raises(ResourceError, match="Gram matrices"):
            wgfsim.velocity(flow, x, x, max_dense=200_000)


@pytest.mark.parametrize("override,part", [
    ('flow.0={name = "kl_kde_wgf", n_mc = 1000000000}', "Monte-Carlo offsets"),
    ('flow.0={name = "kl_kde_wgf", quadrature = "gauss_hermite", n_nodes = 100000}', "Gauss-Hermite nodes"),
    ('flow.0={name = "sliced", n_projections = 10000000000}', "sliced projections"),
])
def test_validate_refuses_what_the_flow_record_says_cannot_fit(tmp_path, capsys, eight_gib, override, part):
    assert main(["validate", str(_scenario(tmp_path)), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert part in err and "8 GiB is available" in err and "\n" not in err


def test_a_metric_that_would_sit_for_hours_is_refused_and_the_default_reference_is_bounded(tmp_path, capsys):
    from wgfsim.scenario.spec import REFERENCE_N_MAX

    big = TINY.replace("n = 32\n\n[init]", "n = 20000\n\n[init]")
    sc = wgfsim.scenario.loads(big, source="<big>")
    assert (sc.target.n, sc.metrics.reference_n) == (20000, REFERENCE_N_MAX) == (20000, 10_000)
    # mmd2 of 32 particles against 4.1M reference samples: (32 + 4.1e6)^2 = 1.7e13 pairs every record
    assert main(["validate", str(_scenario(tmp_path)), "--set", "metrics.reference_n=4100000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "per record" in err and f"{(32 + 4.1e6) ** 2:.3g}" in err and "metrics.reference_n" in err
    assert main(["validate", str(_scenario(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert f"{(32 + 32) ** 2 * 1.0:.3g} per record" in out  # mmd2's (n + m)^2 at n = m = 32


def test_a_run_stores_nan_for_an_energy_that_overflows():
    from wgfsim import runner

    text = TINY.replace('names = ["mmd2", "mode_mass"]', 'names = ["energy"]').replace(
        'name = "mmd"\nbandwidth = 1.0', 'name = "sliced"')
    sc = wgfsim.scenario.loads(text, source="<s>")
    point = wgfsim.scenario.expand(sc)[0]
    y = np.random.default_rng(0).normal(size=(32, 2))
    data = runner._Data(target=y, reference=y, centres=None, mode_names=[], target_mode_mass=None)
    finite = runner._metrics(sc, point, data, y + 1.0, None, step=2)["energy"]
    assert np.isfinite(finite) and finite > 0  # SW_2^2 of a shifted copy
    assert np.isnan(runner._metrics(sc, point, data, y * 1e200, None, step=2)["energy"])
