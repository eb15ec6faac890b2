"""Issue 22: nothing written outside the output folder, nothing deleted that wgfsim did not write, no input that
hangs or crashes.

One section per cause.  Each test plants what an adversary (or an unlucky user)
would and checks the outcome against a truth the code under test does not
produce: bytes the test itself wrote, files the test itself made, exit codes
of ``wgfsim.cli``, closed forms.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import wgfsim
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
