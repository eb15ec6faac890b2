"""Run-file integrity: identity (fingerprint), one writer (lock), live readers, divergence, names, environment errors.

Each test reproduces a way a run file could be lost or mislabelled and checks
the outcome against a truth the code under test does not produce: an
uninterrupted run written independently, the float32 range, a hand count,
values the test's own writer put in the file, the exit codes of
``wgfsim.cli``.
"""

import json
import math
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import wgfsim
from wgfsim import metrics
from wgfsim.cli import main
from wgfsim.io.lock import LockHeld, RunLock

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

[[flow]]
name = "kl_kde"
bandwidth = 0.5

[run]
steps = 4
step_size = 0.1
record_every = 2
seeds = [0]
backend = "numpy"

[metrics]
names = ["mmd2", "energy_distance", "mode_mass"]
"""


def _scenario(tmp_path, text=TINY, name="tiny.toml") -> pathlib.Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _run(scenario, out, *args) -> int:
    return main(["run", str(scenario), "-o", str(out), "-q", "--no-plots", *map(str, args)])


def _interrupt_before_finish(monkeypatch):
    """Make the next run stop (Ctrl-C) after its last record, before the final rename: a resumable .partial."""
    real = wgfsim.io.writer.RunStore.finish

    def finish(self, attrs=None):
        monkeypatch.setattr(wgfsim.io.writer.RunStore, "finish", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(wgfsim.io.writer.RunStore, "finish", finish)


def _positions(path):
    with h5py.File(path, "r") as h:
        return h["position"][...], h["t"][...], dict(h.attrs)


# ---------------------------------------------------------------- cause 1: identity of a run file


def test_resume_refuses_another_scenario_and_continues_the_same(tmp_path, monkeypatch, capsys):
    sc = _scenario(tmp_path)
    ref_out, out = tmp_path / "reference", tmp_path / "out"
    assert _run(sc, ref_out) == 0  # the truth: an uninterrupted run
    _interrupt_before_finish(monkeypatch)
    assert _run(sc, out, "--set", "run.steps=4") == 130
    err = capsys.readouterr().err
    # the Ctrl-C hint names the output folder and every --set (weak point: it named neither)
    assert f"-o {out}" in err and "--set run.steps=4" in err and "--resume" in err
    partial = out / "tiny.h5.partial"
    assert partial.exists()

    for override, keys in (("run.step_size=0.2", ["run.step_size"]),
                           ("run.seeds=[5]", ["run.seeds", "runs[*].seed"]),
                           ("flow.0.bandwidth=2.0", ["runs[*].params.bandwidth"]),
                           ("init.n=16", ["init.n"])):
        assert _run(sc, out, "--resume", "--set", override) == 2
        line = capsys.readouterr().err.strip()
        assert "\n" not in line and "another scenario" in line
        for key in keys:
            assert key in line, (override, line)
    assert partial.exists()  # refused: nothing touched
    # a plain re-run over a resumable .partial is refused too (it used to discard it silently)
    assert _run(sc, out) == 2
    assert "--resume" in capsys.readouterr().err and partial.exists()
    # the same scenario (the same value spelled through --set) continues and equals the uninterrupted run
    assert _run(sc, out, "--resume", "--set", "run.steps=4") == 0
    got, t, attrs = _positions(out / "tiny.h5")
    want, t_ref, ref_attrs = _positions(ref_out / "tiny.h5")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(t, t_ref)
    assert attrs["status"] == "complete" and attrs["fingerprint"] == ref_attrs["fingerprint"]
    assert not partial.exists() and not (out / "tiny.ckpt").exists() and not (out / "tiny.h5.lock").exists()


def test_overwrite_discards_an_unfinished_run(tmp_path, monkeypatch, capsys):
    sc = _scenario(tmp_path)
    out = tmp_path / "out"
    _interrupt_before_finish(monkeypatch)
    assert _run(sc, out, "--set", "run.step_size=0.3") == 130
    assert _run(sc, out, "--resume", "--overwrite") == 2  # one or the other
    assert _run(sc, out, "--overwrite") == 0
    _, t, attrs = _positions(out / "tiny.h5")
    np.testing.assert_allclose(t[0], [0.0, 0.2, 0.4])  # step * 0.1 of this scenario, not 0.3 of the discarded one
    assert attrs["status"] == "complete"


@pytest.mark.parametrize("resume", [True, False])
def test_an_interrupt_right_after_the_final_rename_is_cleaned_up(tmp_path, monkeypatch, capsys, resume):
    sc = _scenario(tmp_path)
    out = tmp_path / "out"
    real = wgfsim.io.writer._unlink

    def unlink(p):  # finish() renamed the shadow to NAME.h5 and now removes the .partial: stop right there
        if p.name == "tiny.h5.partial" and (out / "tiny.h5").exists():
            monkeypatch.setattr(wgfsim.io.writer, "_unlink", real)
            raise KeyboardInterrupt
        real(p)

    monkeypatch.setattr(wgfsim.io.writer, "_unlink", unlink)
    assert _run(sc, out) == 130
    final = out / "tiny.h5"
    assert final.exists() and (out / "tiny.h5.partial").exists() and (out / "tiny.ckpt").exists()
    with h5py.File(final, "r") as h:
        assert h.attrs["status"] == "complete"
    before = final.read_bytes()
    assert _run(sc, out, *(["--resume"] if resume else [])) == 0
    if resume:
        assert final.read_bytes() == before  # complete: left alone
    assert sorted(p.name for p in out.iterdir()) == ["tiny.h5"]


# ---------------------------------------------------------------- cause 2: one writer at a time


def test_second_writer_exits_2_naming_the_holder(tmp_path, capsys):
    sc = _scenario(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with RunLock(out / "tiny.h5"):
        assert _run(sc, out) == 2
        err = capsys.readouterr().err
        assert f"pid {os.getpid()}" in err and socket.gethostname() in err
        assert not (out / "tiny.h5.partial").exists()
    assert not (out / "tiny.h5.lock").exists()
    assert _run(sc, out) == 0


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    lock = tmp_path / "x.h5.lock"
    dead = subprocess.Popen(["true"])
    dead.wait()
    # a lock still held (a descriptor leaked into another process) but naming a pid that is gone from this host
    import fcntl

    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": dead.pid, "host": socket.gethostname()}).encode())
    try:
        with RunLock(tmp_path / "x.h5") as held:
            assert held.held and json.loads(lock.read_text())["pid"] == os.getpid()
            with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
                RunLock(tmp_path / "x.h5").acquire()
        # a live holder on another host is never judged stale
        other = tmp_path / "y.h5.lock"
        fd2 = os.open(other, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd2, fcntl.LOCK_EX)
        os.write(fd2, json.dumps({"pid": dead.pid, "host": "elsewhere"}).encode())
        with pytest.raises(LockHeld, match="on host elsewhere"):
            RunLock(tmp_path / "y.h5").acquire()
        os.close(fd2)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_two_simultaneous_writers_one_runs_one_refuses(tmp_path):
    sc = _scenario(tmp_path, TINY.replace("steps = 4", "steps = 300").replace("record_every = 2", "record_every = 3"))
    out = tmp_path / "out"
    cmd = [PY, "-m", "wgfsim.cli", "run", str(sc), "-o", str(out), "-q", "--no-plots"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / "tiny.h5.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    with h5py.File(out / "tiny.h5", "r") as h:
        assert h.attrs["status"] == "complete"
        target = h["target"][...]
    # the target sample is the two modes at -2 and +2 (never the all-zero file of two tangled writers)
    assert np.all(np.abs(np.abs(target[:, 0]) - 2.0) < 1.0)


# ---------------------------------------------------------------- cause 3: readers of a live run

_WRITER = """
import sys, time, numpy as np
from wgfsim.io.writer import RunStore
path, n_records = sys.argv[1], int(sys.argv[2])
store = RunStore.create(path, run_coords={"flow": ["a", "b"], "method": ["particles"] * 2, "seed": [0, 1]},
                        n_particles=64, dim=2, mode_names=0, target=np.zeros((4, 2)), reference=np.zeros((4, 2)),
                        attrs={}, metrics=("mmd2",))
base = np.arange(128, dtype=np.float32).reshape(64, 2)
for k in range(n_records):
    for r in range(2):
        store.write_record(r, k, {"step": k, "t": 0.5 * k, "position": base + 1000 * k + r, "mmd2": float(k + r)})
    if k == 0:
        print("ready", flush=True)
    time.sleep(0.002)
store.finish()
"""


def test_the_writer_never_rewrites_a_file_a_reader_holds(tmp_path):
    import fcntl

    store = wgfsim.io.RunStore.create(
        tmp_path / "w.h5", run_coords={"flow": ["a"], "method": ["particles"], "seed": [0]}, n_particles=8, dim=2,
        mode_names=0, target=np.zeros((4, 2)), reference=np.zeros((4, 2)), attrs={}, metrics=("mmd2",))
    x = np.ones((8, 2))
    store.write_record(0, 0, {"step": 0, "t": 0.0, "position": x})
    with open(tmp_path / "w.h5.partial", "rb") as held:  # a reader of the published file, as read_file holds it
        fcntl.flock(held.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        snapshot = held.read()
        for k in range(1, 5):  # the held inode would be the shadow of record 2 and 4
            store.write_record(0, k, {"step": k, "t": float(k), "position": k * x})
        held.seek(0)
        assert held.read() == snapshot and os.fstat(held.fileno()).st_size == len(snapshot)
    store.finish()
    with h5py.File(tmp_path / "w.h5", "r") as h:  # and the run lost nothing
        np.testing.assert_array_equal(h["t"][0], [0, 1, 2, 3, 4])
        np.testing.assert_array_equal(h["position"][0, :, 0, 0], [1, 1, 2, 3, 4])


@pytest.mark.slow
def test_a_live_run_reads_consistently_every_time(tmp_path):
    path = tmp_path / "live.h5"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    writer = subprocess.Popen([PY, str(script), str(path), "20000"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        base = np.arange(128, dtype=np.float32).reshape(64, 2)
        seen = []
        for _ in range(50):
            ds = wgfsim.open_run(path, index=False)  # a read of the live .partial: must never fail
            t = ds["t"].values
            n = int(np.isfinite(t[0]).sum())
            seen.append(n)
            assert ds.attrs["status"] == "partial"
            for r in range(2):
                k = np.flatnonzero(np.isfinite(t[r]))
                # records are contiguous and each holds what the writer put there
                np.testing.assert_array_equal(k, np.arange(k.size))
                np.testing.assert_array_equal(t[r, k], 0.5 * k)
                np.testing.assert_array_equal(ds["mmd2"].values[r, k], k + r)
                pos = ds["position"].values[r, k]
                np.testing.assert_array_equal(pos, base[None] + 1000 * k[:, None, None] + r)
        assert seen[-1] > seen[0] > 0  # the run advanced while it was read
    finally:
        writer.kill()
        writer.wait()


# ---------------------------------------------------------------- causes 4, 5: divergence is a run failure


@pytest.mark.parametrize("step_size", ["1e20", "1e150"])
def test_divergence_is_a_run_failure_with_finite_records(tmp_path, capsys, step_size):
    sc = _scenario(tmp_path)
    out = tmp_path / "out"
    assert _run(sc, out, "--set", f"run.step_size={step_size}", "--set", "run.steps=6") == 1
    pos, t, attrs = _positions(out / "tiny.h5")
    failed = json.loads(attrs["failed_runs"])
    assert attrs["status"] == "complete"
    # at 1e150 both runs leave the float32 range; at 1e20 kl_kde does (mmd's far particles stop: its kernel
    # vanishes), each with its reason, and the other run goes on
    assert len(failed) == (2 if step_size == "1e150" else 1) and "kl_kde particles seed=0" in failed
    for reason in failed.values():
        assert "diverged" in reason
    for r in range(2):
        k = np.isfinite(t[r])
        assert k[0]  # the first record of every run is kept
        # every stored position is a finite float32: never inf cast from a huge float64
        assert np.isfinite(pos[r, k]).all() and np.abs(pos[r, k]).max() <= np.finfo(np.float32).max
    assert not (out / "tiny.h5.partial").exists()


def test_a_diverged_file_resumes(tmp_path, monkeypatch, capsys):
    sc = _scenario(tmp_path)
    out = tmp_path / "out"
    _interrupt_before_finish(monkeypatch)
    assert _run(sc, out, "--set", "run.step_size=1e150", "--set", "run.steps=6") == 130
    assert _run(sc, out, "--set", "run.step_size=1e150", "--set", "run.steps=6", "--resume") == 1
    _, _, attrs = _positions(out / "tiny.h5")
    assert attrs["status"] == "complete" and len(json.loads(attrs["failed_runs"])) == 2


def test_a_step_that_fails_after_a_record_keeps_that_record(tmp_path, monkeypatch, capsys):
    from wgfsim.methods import particles
    from wgfsim.methods.particles import ParticlesMethod

    real = ParticlesMethod.advance

    def advance(self, state, v):
        if state.step == 2 and self.point.flow == "mmd":
            raise particles.SimulationError("step 2: NaN in the field (injected)")
        return real(self, state, v)

    monkeypatch.setattr(ParticlesMethod, "advance", advance)
    sc = _scenario(tmp_path)
    assert _run(sc, tmp_path / "out") == 1
    pos, t, attrs = _positions(tmp_path / "out" / "tiny.h5")
    assert list(json.loads(attrs["failed_runs"])) == ["mmd particles seed=0"]
    # records at steps 0 and 2 of the failed run are stored (step 2 was recorded before its step failed)
    np.testing.assert_array_equal(np.isfinite(t[0]), [True, True, False])
    assert np.isfinite(pos[0, 1]).all()
    np.testing.assert_array_equal(np.isfinite(t[1]), [True, True, True])  # the other run went on


def test_metrics_of_huge_or_infinite_particles_are_nan_not_errors():
    ref = np.random.default_rng(0).normal(size=(20, 2))
    for scale in (1e160, 1e300, np.inf):
        x = np.full((10, 2), scale)
        for name in ("mmd2", "energy_distance", "sinkhorn", "w2"):
            assert math.isnan(getattr(metrics, name)(x, ref)), (name, scale)
        assert np.isnan(metrics.mode_mass(x, np.zeros((2, 2)))).all()
    # velocity_rms stays exact for huge finite fields: |(3e200, 4e200)| = 5e200
    assert metrics.velocity_rms(np.array([[3e200, 4e200]])) == pytest.approx(5e200, rel=1e-15)
    assert math.isnan(metrics.velocity_rms(np.array([[np.inf, 0.0]])))
    # the bound of within_range: sqrt(max / (8 d)) for float64, d = 2
    bound = math.sqrt(np.finfo(np.float64).max / 16)
    assert metrics.within_range(np.array([[bound * 0.999, 0.0]]))
    assert not metrics.within_range(np.array([[bound * 1.001, 0.0]]))


# ---------------------------------------------------------------- cause 6: names are file names


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a\\u0000b", "x" * 101, ".hidden", "a/b", ""])
def test_a_scenario_name_that_is_not_a_file_name_is_refused(tmp_path, capsys, name):
    sc = _scenario(tmp_path, TINY.replace('name = "tiny"', f'name = "{name}"'))
    work = tmp_path / "work"
    work.mkdir()
    assert main(["validate", str(sc)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "name:" in err
    assert _run(sc, work / "out") == 2
    assert list(work.iterdir()) == [] and not pathlib.Path("/tmp/abs.h5.partial").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml", "work"]


def test_the_longest_allowed_name_runs(tmp_path, capsys):
    name = "n" * 100
    sc = _scenario(tmp_path, TINY.replace('name = "tiny"', f'name = "{name}"'))
    assert main(["validate", str(sc)]) == 0


# ---------------------------------------------------------------- causes 7, 8, 9: environment and file errors


def test_output_that_is_a_file_is_one_line_exit_2(tmp_path, capsys):
    sc = _scenario(tmp_path)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert _run(sc, blocker) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "afile" in err and "is a file" in err
    assert _run(sc, blocker / "sub") == 2
    assert "\n" not in capsys.readouterr().err.strip()


def _mount_tmpfs(where: pathlib.Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return res.returncode == 0


def _umount(where: pathlib.Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_read_only_output_folder_is_one_line_exit_2(tmp_path, capsys):
    mnt = tmp_path / "ro"
    if not _mount_tmpfs(mnt, "size=1m,ro"):
        pytest.skip("needs root and tmpfs to make a read-only folder")
    try:
        sc = _scenario(tmp_path)
        assert _run(sc, mnt) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "cannot write" in err
        assert _run(sc, mnt / "sub") == 2
        assert "cannot create" in capsys.readouterr().err
    finally:
        _umount(mnt)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["64k", "200k", "300k", "700k"])
def test_a_full_disk_is_exit_1_keeps_the_partial_and_never_crashes(tmp_path, size):
    mnt = tmp_path / "disk"
    if not _mount_tmpfs(mnt, f"size={size}"):
        pytest.skip("needs root and tmpfs to make a tiny disk")
    try:
        big = TINY.replace("n = 32", "n = 1500").replace("steps = 4", "steps = 60").replace("record_every = 2",
                                                                                             "record_every = 1")
        sc = _scenario(tmp_path, big)
        res = subprocess.run([PY, "-m", "wgfsim.cli", "run", str(sc), "-o", str(mnt / "o"), "-q", "--no-plots"],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 1, (res.returncode, res.stderr[-2000:])  # 139 was a segfault
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and ("No space left" in lines[0] or "no space left" in lines[0]), lines
        partial = mnt / "o" / "tiny.h5.partial"
        if partial.exists():  # a disk too small for even the empty file leaves nothing
            ds = wgfsim.open_run(partial, index=False)
            assert ds.attrs["status"] == "partial"
            k = np.isfinite(ds["t"].values)
            assert np.isfinite(ds["position"].values[k]).all()
    finally:
        _umount(mnt)


def test_cupy_backend_without_cupy_is_refused_by_validate_and_run(tmp_path, capsys):
    from wgfsim.backend import GPU_INSTALL_HINT, cupy_status

    if cupy_status()[0]:
        pytest.skip("CuPy works here")
    sc = _scenario(tmp_path, TINY.replace('backend = "numpy"', 'backend = "cupy"'))
    assert main(["validate", str(sc)]) == 2
    err = capsys.readouterr().err.strip()
    assert "run.backend" in err and "\n" not in err and ("pip install" in err or "CUDA" in err or "GPU" in err)
    assert GPU_INSTALL_HINT in err or "not installed" not in err
    assert _run(sc, tmp_path / "out") == 2
    assert not (tmp_path / "out").exists()


def test_corrupt_or_foreign_files_are_one_line_exit_2(tmp_path, capsys):
    sc = _scenario(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny.h5.partial").write_bytes(os.urandom(2000))
    assert _run(sc, out, "--resume") == 2
    assert "\n" not in capsys.readouterr().err.strip()
    with h5py.File(out / "tiny.h5.partial", "w") as h:  # an HDF5 file of someone else's
        h["x"] = [1, 2]
    assert _run(sc, out, "--resume") == 2
    assert "fingerprint" in capsys.readouterr().err
    fake = tmp_path / "fake.h5"  # claims our schema but holds none of our variables
    with h5py.File(fake, "w") as h:
        h.attrs["wgfsim_version"] = wgfsim.__version__
        h.attrs["wgfsim_schema"] = wgfsim.io.SCHEMA_VERSION
        h["x"] = [1, 2]
    for bad in (out / "tiny.h5.partial", fake):
        assert main(["info", str(bad)]) == 2
        assert "\n" not in capsys.readouterr().err.strip()
        figs = tmp_path / "figs"
        assert main(["plot", str(bad), "-o", str(figs)]) == 2
        assert "\n" not in capsys.readouterr().err.strip()
        assert not figs.exists()  # no empty figure folder left behind


def test_a_corrupt_checkpoint_on_resume_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    sc = _scenario(tmp_path)
    out = tmp_path / "out"
    _interrupt_before_finish(monkeypatch)
    assert _run(sc, out) == 130
    (out / "tiny.ckpt" / "run0.npz").write_bytes(b"\x80\x04not a zip")  # a pickle header, not an npz
    capsys.readouterr()
    assert _run(sc, out, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "checkpoint" in err
    assert (out / "tiny.h5.partial").exists()


def test_unreachable_scheduler_is_one_line_in_bounded_time(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from wgfsim import scenario, sweep
    from wgfsim.sweep.executors import EXECUTORS

    monkeypatch.setattr(EXECUTORS["dask"], "connect_timeout", 1.0)
    sc = scenario.loads(TINY.replace("bandwidth = 1.0", "bandwidth = [0.5, 1.0]"), source="tiny.toml")
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="scheduler tcp://127.0.0.1:9: cannot connect within 1 s"):
        sweep.run_sweep(sc, tmp_path / "sweep", scheduler="tcp://127.0.0.1:9", progress=False)
    assert time.monotonic() - start < 20


# ---------------------------------------------------------------- cause 11: size check at validation


@pytest.mark.parametrize("override,part", [("init.n=1000000000", "particles"),
                                           ("metrics.reference_n=1000000000", "reference sample"),
                                           ("flow.0.bandwidth=1.0", None)])
def test_sizes_beyond_memory_are_refused_at_validation(tmp_path, capsys, monkeypatch, override, part):
    sc = _scenario(tmp_path, TINY + '\n[[flow]]\nname = "sliced"\nn_projections = 1000000000000\n'
                   if part is None else TINY)
    monkeypatch.setattr(wgfsim.targets, "_available_memory", lambda: 8 << 30)
    assert main(["validate", str(sc), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs about" in err and "8 GiB is available" in err
    assert (part or "sliced projections") in err and "--no-size-check" in err
    assert main(["validate", str(sc), "--set", override, "--no-size-check"]) == 0


def test_memory_estimate_is_at_least_the_arrays_it_names():
    from wgfsim.scenario.resources import memory_estimate

    sc = wgfsim.scenario.loads(TINY, source="tiny.toml", overrides=["init.n=1000000", "metrics.reference_n=2000000"])
    need, parts = memory_estimate(sc)
    # lower bounds counted by hand: x (N, d) float64 once, the reference (M, d) float64 once
    assert parts["particles"] >= 1_000_000 * 2 * 8
    assert parts["reference sample"] >= 2_000_000 * 2 * 8
    assert need >= sum(parts.values()) - 1


def test_pairs_estimate_counts_the_flows_and_metrics_pairs_by_hand():
    from wgfsim.scenario.resources import pairs_estimate

    sc = wgfsim.scenario.loads(TINY, source="tiny.toml", overrides=["init.n=300", "target.n=200",
                                                                     "metrics.reference_n=100",
                                                                     'metrics.names=["mmd2", "w2"]'])
    got = pairs_estimate(sc)
    # by hand: mmd and kl_kde, one bandwidth each: one pull (N M) and one push (N^2) per step
    assert got["per step"] == 300 * 200 + 300 * 300
    # per record: mmd2 sums over the pooled (N + R)^2 pairs, the exact W2 over its N x R plan
    assert got["per record"] == (300 + 100) ** 2 + 300 * 100


# ---------------------------------------------------------------- weak points


def test_validate_counts_the_runs_a_tied_sweep_runs(tmp_path, capsys):
    text = (TINY.replace("separation = 4.0", "separation = [2.0, 3.0]")
            .replace('[[flow]]\nname = "kl_kde"\nbandwidth = 0.5\n', ""))
    sc = _scenario(tmp_path, text)
    assert main(["validate", str(sc)]) == 0
    out = capsys.readouterr().out
    # by hand: one flow x one seed x separations {2, 3}, init tied to the target: 2 runs, not 2 x 2
    assert "ok: 2 run(s)" in out


_KILLER = """
import os, sys, pathlib
sys.path.insert(0, {root!r})
from wgfsim import scenario, sweep
from wgfsim.sweep import executors

real = executors.run_point_task


def task(payload):
    flag = pathlib.Path({flag!r})
    if "bandwidth-0.5" in payload["path"] and not flag.exists():
        flag.write_text("killed")
        os.kill(os.getpid(), 9)  # the worker dies mid-sweep, once
    return real(payload)


executors.run_point_task = task

if __name__ == "__main__":
    sc = scenario.load({scenario!r})
    res = sweep.run_sweep(sc, {out!r}, workers=2, progress=False)
    print(len(res.finished), len(res.failed))
"""


@pytest.mark.slow
def test_a_killed_sweep_worker_is_retried_not_failed(tmp_path):
    sc = _scenario(tmp_path, TINY.replace("bandwidth = 1.0", "bandwidth = [0.5, 1.0, 2.0]"))
    script = tmp_path / "killer.py"
    script.write_text(_KILLER.format(root=str(ROOT), flag=str(tmp_path / "flag"), scenario=str(sc),
                                     out=str(tmp_path / "sweep")))
    res = subprocess.run([PY, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "flag").exists()  # a worker was killed
    # 3 mmd bandwidths + 1 kl_kde point, all finished
    assert res.stdout.split() == ["4", "0"], res.stdout + res.stderr[-2000:]
