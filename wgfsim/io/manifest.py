"""The sweep manifest ``sweep.json``: every point's file and coordinates (written by :mod:`wgfsim.sweep`)."""

from __future__ import annotations

import json
import os
import pathlib
import stat

from ..errors import OptionError

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
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block read_text for ever
        raise ValueError(f"{path}: not a regular file; a sweep manifest is a JSON file written by `wgfsim sweep`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not a sweep manifest ({type(err).__name__}: {err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{path}: format {found!r}; expected {MANIFEST_FORMAT!r}")
    _check_fields(path, manifest)
    return manifest


def _check_fields(path: pathlib.Path, manifest: dict) -> None:
    """Every field a reader uses, checked one by one (:class:`~wgfsim.errors.OptionError` naming the field)."""
    owner = str(path)

    def need(ok: bool, key: str, value, expected: str):
        if not ok:
            raise OptionError(owner, key, value, expected, hint="the manifest was edited or damaged; "
                              "re-run `wgfsim sweep` with the same scenario to rewrite it")

    points = manifest.get("points", _ABSENT)
    need(isinstance(points, list), "points", points, "a list of point entries")
    keys = manifest.get("keys", [])
    need(isinstance(keys, list) and all(isinstance(k, str) for k in keys), "keys", keys, "a list of strings")
    for i, entry in enumerate(points):
        need(isinstance(entry, dict), f"points[{i}]", entry, "a table with 'file' and 'coords'")
        file = entry.get("file", _ABSENT)
        need(isinstance(file, str) and bool(file) and file == pathlib.PurePath(file).name
             and file not in (".", "..") and file.endswith(".h5"),
             f"points[{i}].file", file, "a file name ending in .h5 inside the sweep folder (no folder part)")
        coords = entry.get("coords", {})
        need(isinstance(coords, dict), f"points[{i}].coords", coords, "a table of coordinate values")
        for k, v in coords.items():
            need(v is None or isinstance(v, (str, int, float, bool)), f"points[{i}].coords.{k}", v,
                 "a string, number or boolean")


class _Absent:
    def __repr__(self):
        return "nothing (the field is absent)"


_ABSENT = _Absent()
