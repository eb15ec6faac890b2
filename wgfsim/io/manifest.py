"""The sweep manifest ``sweep.json``: every point's file and coordinates (written by :mod:`wgfsim.sweep`)."""

from __future__ import annotations

import json
import pathlib

from .fs import write_atomic

__all__ = ["MANIFEST", "MANIFEST_FORMAT", "read_manifest", "write_manifest"]

MANIFEST = "sweep.json"
MANIFEST_FORMAT = "wgfsim-sweep/1"


def write_manifest(path: pathlib.Path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically: a killed sweep leaves the old manifest or the new one."""
    text = json.dumps(obj, indent=1, default=repr) + "\n"
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")), what="sweep manifest", fsync=False)


def read_manifest(out_dir) -> dict:
    """The ``sweep.json`` of a sweep folder (FileNotFoundError naming the folder when absent)."""
    path = pathlib.Path(out_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sweep manifest; is {out_dir} a folder written by `wgfsim sweep`?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a sweep manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{path}: format {found!r}; expected {MANIFEST_FORMAT!r}")
    return manifest
