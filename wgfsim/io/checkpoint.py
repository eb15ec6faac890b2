"""Run checkpoints on disk: one ``.npz`` per run, written atomically, read without pickle.

A checkpoint is the method's snapshot (:mod:`wgfsim.io.snapshot`: host arrays and
JSON strings) plus the run's status; ``NAME.ckpt/run<r>.npz`` sits next to
``NAME.h5.partial`` while a run group is live and goes when it finishes.
"""

from __future__ import annotations

import pathlib

import numpy as np

from .fs import write_atomic

__all__ = ["ckpt_dir", "save", "load", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (torn, foreign, or from another version)."""


def ckpt_dir(path: pathlib.Path) -> pathlib.Path:
    """``NAME.ckpt`` beside ``NAME.h5``."""
    return path.with_name(path.name[: -len(".h5")] + ".ckpt")


def save(path: pathlib.Path, snap: dict) -> None:
    """Write ``snap`` (str -> array or str) to ``path`` atomically: a kill leaves the old file or the new one."""
    write_atomic(path, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in snap.items()}), what="checkpoint")


def load(path: pathlib.Path) -> dict | None:
    """The snapshot saved at ``path`` (None when there is none); never unpickles."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(err).__name__}: {err}); "
                              "start the run afresh with --overwrite") from None
