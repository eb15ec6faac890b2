"""The sweep manifest ``sweep.json``: every point's file and coordinates (written by :mod:`wgfsim.sweep`)."""

from __future__ import annotations

import json
import os
import pathlib

__all__ = ["MANIFEST", "MANIFEST_FORMAT", "read_manifest", "write_manifest"]

MANIFEST = "sweep.json"
MANIFEST_FORMAT = "wgfsim-sweep/1"


def write_manifest(path: pathlib.Path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically: a killed sweep leaves the old manifest or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=repr) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
