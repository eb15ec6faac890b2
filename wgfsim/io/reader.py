"""Reading stored run groups and sweeps: :func:`open_run` and :func:`open_sweep`, one reader for both.

Both return ``xarray.Dataset`` objects whose ``run`` dimension carries a
``pandas.MultiIndex`` over ``flow``, ``method``, ``seed`` and the swept
parameters, so runs are picked the xarray way::

    ds = wgfsim.open_run("outputs/quickstart.h5")
    ds.sel(flow="sinkhorn", method="particles").mmd2      # (seed..., time)
    flat = ds.reset_index("run")                          # the flat form, e.g. to write with to_netcdf

Eager reads (the default) go through h5py directly: a file is opened, read
whole and closed in milliseconds (xarray's h5netcdf backend spends ~0.5 s per
file working out the unlimited dimension), which matters for a sweep of
hundreds of points and for reading a live run between two of its records.
``open_run(path, chunks=...)`` instead opens the file lazily through xarray
(Dask-backed), for trajectories larger than memory: ``position`` is chunked
one record of one run per chunk on disk, so ``chunks={"time": 1}`` reads one
snapshot at a time.

:func:`flow_params` gives each run's flow options back typed (the flow's
``Params``).  The module is a little over 500 lines: the two readers share
the decoding and locking helpers, which a split would have to export.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import pathlib
import time
from typing import Sequence

import numpy as np

from .schema import RUN_COORDS, RUN_TEXT_VARS, SchemaError, check_version

__all__ = ["open_run", "open_sweep", "read_file", "run_index", "resolve_path", "flow_params"]

_NOT_A_VARIABLE = "This is a netCDF dimension but not a netCDF variable"
# per-point variables a sweep adds (status of the point's file)
_SWEEP_VARS = ("status", "error", "file")
# variables without a run dimension; a sweep stacks them along run only where points differ
_STATIC = ("target", "reference", "mode_centre", "target_mode_mass")
# small variables every reader needs to interpret the others: read even when ``variables`` leaves them out
_ALWAYS = RUN_TEXT_VARS + ("mode_centre", "target_mode_mass")


def resolve_path(path) -> pathlib.Path:
    """``NAME.h5``, or its ``NAME.h5.partial`` when the run is live or was killed."""
    p = pathlib.Path(path)
    if p.exists():
        if p.is_dir():
            raise IsADirectoryError(f"{p}: is a folder; open a sweep folder with wgfsim.open_sweep")
        _regular(p)
        return p
    alt = p.with_name(p.name + ".partial")
    if p.suffix == ".h5" and alt.exists():
        return alt
    raise FileNotFoundError(f"{p}: no such run file (nor {alt.name})")


def _regular(p: pathlib.Path) -> None:
    """Refuse a FIFO, a device or a socket (opening one would wait for a writer for ever)."""
    import stat

    mode = os.stat(p).st_mode
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device or special file"
        raise SchemaError(f"{p}: is {kind}, not a run file; wgfsim reads regular files only")


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _decode(d, arr: np.ndarray) -> np.ndarray:
    """An HDF5 dataset's values as xarray's netCDF decoding gives them (strings, booleans)."""
    if arr.dtype.kind in "OS":
        return np.array([_text(v) for v in arr.ravel()], dtype=str).reshape(arr.shape)
    if _text(d.attrs.get("dtype", "")) == "bool":
        return arr.astype(bool)
    return arr


# a live run republishes its .partial at every record: attempts before a read of it gives up
_READ_ATTEMPTS = 50


def _published(path: pathlib.Path, fh) -> bool:
    """Whether ``path`` still names the inode open as ``fh``."""
    try:
        named, mine = os.stat(path), os.fstat(fh.fileno())
    except FileNotFoundError:
        return False
    return (named.st_ino, named.st_dev) == (mine.st_ino, mine.st_dev)


def _share(fh) -> bool:
    """A shared ``flock`` on ``fh`` (False: the writer holds it, the inode is being rewritten)."""
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
    return True  # held, or a file system without flock (the stat checks remain)


def _open_same(h5py, path: pathlib.Path, fh, st: os.stat_result):
    """h5py's handle on the very inode open as ``fh`` (``st`` its fstat), or OSError.

    Opened by name (HDF5's fast POSIX driver) when the name still leads to
    that inode, checked through the driver's own descriptor; else through the
    Python file object ``fh`` (slower: one Python call per chunk).
    """
    try:
        h = h5py.File(path, "r", locking=False)
    except OSError:
        h = None
    if h is not None:
        try:
            got = os.fstat(h.id.get_vfd_handle())
            if (got.st_ino, got.st_dev) == (st.st_ino, st.st_dev):
                return h
        except Exception:  # noqa: BLE001 - any doubt: use the file object below
            pass
        h.close()
    return h5py.File(fh, "r", locking=False)


def read_file(path, variables: Sequence[str] | None = None):
    """One stored file as an eager ``xarray.Dataset`` (flat ``run``), read with h5py.

    ``variables``: data variables to read (default all); coordinates are always
    read.  Values, dims, ``long_name``/``units`` and global attributes equal
    those of ``xarray.open_dataset(path, engine="h5netcdf").load()``.

    A live ``NAME.h5.partial`` is read as one consistent snapshot.  The
    writer (:mod:`wgfsim.io.writer`) writes only an unpublished shadow under
    an exclusive ``flock`` and publishes it by an atomic rename; it recycles
    the previously published inode as its next shadow unless a reader holds
    a shared ``flock`` on it (then it copies instead).  So the reader opens
    the file, takes the shared ``flock``, checks that the name still points
    to that inode (it is published, hence complete and closed) and reads it
    whole; afterwards its size and modification time must be those it had
    at open.  A failed check or an HDF5 error meanwhile starts again, up to
    ``_READ_ATTEMPTS`` times; when the run finishes meanwhile the final
    ``NAME.h5`` is read.
    """
    import h5py

    path = pathlib.Path(path)
    last: BaseException | None = None
    for attempt in range(_READ_ATTEMPTS):
        if attempt:
            time.sleep(min(0.001 * attempt, 0.02))
        target = path
        if path.name.endswith(".partial") and not path.exists():
            final = path.with_name(path.name[: -len(".partial")])
            if final.exists():
                target = final  # the run finished while we were trying
        try:
            _regular(target)  # before open(): a FIFO would block it
            fh = open(target, "rb")
        except FileNotFoundError:
            if path.name.endswith(".partial") and attempt + 1 < _READ_ATTEMPTS:
                continue  # between two renames of the writer
            raise FileNotFoundError(f"{path}: no such run file") from None
        with fh:
            if not _share(fh) or not _published(target, fh):
                last = None
                continue
            before = os.fstat(fh.fileno())

            def unchanged() -> bool:
                now = os.fstat(fh.fileno())
                return (now.st_mtime_ns, now.st_size) == (before.st_mtime_ns, before.st_size)

            try:
                h = _open_same(h5py, target, fh, before)
            except OSError as err:
                if unchanged():
                    raise SchemaError(f"{path}: not an HDF5 file ({' '.join(str(err).split())})") from None
                last = err
                continue
            try:
                with h:
                    ds = _read_open(h, target, variables)
            except SchemaError:
                if unchanged():
                    raise
                continue
            except (OSError, KeyError, ValueError, RuntimeError, IndexError, TypeError) as err:
                if unchanged():  # a stable file that does not read: foreign or corrupt
                    raise SchemaError(f"{path}: not a readable wgfsim run file ({type(err).__name__}: "
                                      f"{' '.join(str(err).split())})") from None
                last = err
                continue
            if unchanged():
                return ds
    raise OSError(f"{path}: the file kept changing while it was read ({_READ_ATTEMPTS} attempts; last error: "
                  f"{last!r}); try again")


def _read_open(h, path: pathlib.Path, variables):
    """The dataset of the open h5py file ``h`` (see :func:`read_file`)."""
    import h5py
    import xarray as xr

    attrs = {k: _attr(v) for k, v in h.attrs.items() if not k.startswith("_")}
    check_version(attrs, path)
    coord_names: set[str] = set()
    for d in h.values():
        coord_names.update(str(_text(d.attrs.get("coordinates", ""))).split())
    data_vars, coords = {}, {}
    for name, d in h.items():
        if not isinstance(d, h5py.Dataset):
            continue
        if str(_text(d.attrs.get("NAME", ""))).startswith(_NOT_A_VARIABLE):
            continue  # a bare dimension (particle, dim, ...): no values
        if _text(d.attrs.get("CLASS", "")) == "DIMENSION_SCALE":
            dims = (name,)  # a coordinate variable (mode names): it is its own dimension
        else:
            dims = tuple(d.dims[i][0].name.rsplit("/", 1)[-1] for i in range(d.ndim)) if d.ndim else ()
        is_coord = name in coord_names or dims == (name,)
        if not is_coord and variables is not None and name not in variables and name not in _ALWAYS:
            continue
        var_attrs = {k: _attr(v) for k, v in d.attrs.items()
                     if k in ("long_name", "units")}
        var = xr.Variable(dims, _decode(d, d[...]), attrs=var_attrs)
        (coords if is_coord else data_vars)[name] = var
    sizes = {name: h[name].shape[0] for name in ("run", "time", "particle", "dim", "sample", "ref", "mode")
             if name in h}
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    missing = {k: v for k, v in sizes.items() if k not in ds.sizes}
    if missing:  # a dimension no loaded variable spans (e.g. mode of a target without modes)
        ds = ds.expand_dims({k: v for k, v in missing.items() if v == 0}) if all(v == 0 for v in missing.values()) else ds
    return ds


def _attr(v):
    v = _text(v)
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "OS":
            return [_text(x) for x in v.tolist()]
        return v[0].item() if v.size == 1 else v  # netCDF attributes are arrays; a single value reads as a scalar
    if isinstance(v, np.generic):
        return v.item()
    return v


def _index_keys(ds, dim: str = "run") -> list[str]:
    """Coordinates on ``dim`` that identify a run: flow, method, seed, then the swept keys in file order."""
    skip = set(RUN_TEXT_VARS) | set(_SWEEP_VARS)
    on_dim = [c for c, v in ds.coords.items() if v.dims == (dim,) and c != dim and c not in skip]
    return [c for c in RUN_COORDS if c in on_dim] + [c for c in on_dim if c not in RUN_COORDS]


def run_index(ds, dim: str = "run"):
    """``ds`` with a ``pandas.MultiIndex`` on ``dim`` over flow, method, seed and the swept keys."""
    if dim not in ds.dims or dim in ds.indexes:
        return ds
    keys = _index_keys(ds, dim)
    return ds.set_index({dim: keys}) if keys else ds


def open_run(path, *, chunks=None, variables: Sequence[str] | None = None, index: bool = True):
    """Open a stored run group as an ``xarray.Dataset``.

    Parameters
    ----------
    path : str or Path
        ``NAME.h5``, or ``NAME.h5.partial`` (a live or killed run); given
        ``NAME.h5`` that does not exist yet, its ``.partial`` is read.  The
        attribute ``status`` says which (``partial`` or ``complete``).
    chunks : None, "auto", int or dict
        ``None`` (default): load everything into memory and close the file.
        Otherwise open lazily through xarray with these Dask chunks (needs
        ``dask``); the file stays open until ``ds.close()``.  Do not open a
        *live* ``.partial`` lazily: the writer replaces it at every record.
    variables : sequence of str, optional
        Data variables to read eagerly (default all; ``["mode_mass", "mmd2"]``
        skips the positions).
    index : bool
        Give ``run`` its MultiIndex (default); ``False`` keeps the flat form.

    Raises
    ------
    FileNotFoundError
        No such file.
    wgfsim.io.schema.SchemaError
        Not a wgfsim file, or a file of another schema version (named).
    """
    p = resolve_path(path)
    if chunks is None:
        ds = read_file(p, variables)
    else:
        import xarray as xr

        if p.name.endswith(".partial"):
            raise ValueError(f"{p}: a live or unfinished run; open it eagerly (chunks=None), not lazily")
        ds = xr.open_dataset(p, engine="h5netcdf", chunks=chunks)
        try:
            check_version(ds.attrs, p)
        except SchemaError:
            ds.close()
            raise
        if variables is not None:
            ds = ds.drop_vars([v for v in ds.data_vars if v not in variables])
    return run_index(ds) if index else ds


# ------------------------------------------------------------------ sweeps


def _same(a, b) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _coord_array(values: list) -> np.ndarray:
    """One coordinate from per-point values (None where a point lacks the key), with a single dtype."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.array(values, dtype=bool)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if all(isinstance(v, int) for v in present) and len(present) == len(values):
            return np.array(values, dtype=np.int64)
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values], dtype=str)


def _point(path: pathlib.Path, entry: dict, variables, problems: dict, name=None):
    """One point file (flat run), or None when it is missing, unreadable or of another sweep point.

    ``problems[file]`` receives why a present file was left out (shown as the
    point's ``status`` and ``error``): ``unreadable`` (corrupt, foreign, a
    FIFO) or ``foreign`` (a run file whose identity is not the one in its
    name: its ``sweep_point`` attribute and the first 12 hex digits of its
    ``fingerprint``, which are the point's hash of
    :func:`wgfsim.scenario.identity.run_identity`; a file of another scenario
    copied or written there).  Files written before points carried
    ``sweep_point`` are checked by their ``scenario_name``.
    """
    if not path.exists():
        return None
    try:
        ds = read_file(path, variables)
    except (SchemaError, OSError) as err:
        problems[entry["file"]] = ("unreadable", " ".join(str(err).split()))
        return None
    want, have = _point_id(entry["file"]), ds.attrs.get("sweep_point")
    if have is not None and str(ds.attrs.get("fingerprint", ""))[:12] != have:
        have = f"fingerprint {str(ds.attrs.get('fingerprint', ''))[:12]}"  # the file's own identity decides
    if have is None:  # written before points carried their identity (or by `wgfsim run`): the scenario's name
        other = ds.attrs.get("scenario_name")
        have = want if other is None or other == name else f"scenario {other!r}"
    if want is not None and have != want:
        problems[entry["file"]] = ("foreign", f"{path}: written for another sweep point (identity "
                                   f"{have or 'absent'}, expected {want}); re-run the sweep to replace it")
        return None
    try:
        failed = json.loads(ds.attrs.get("failed_runs", "{}") or "{}")
    except ValueError:
        failed = {"?": str(ds.attrs.get("failed_runs"))}
    failed = failed if isinstance(failed, dict) else {"?": str(failed)}
    n = ds.sizes["run"]
    ds = ds.assign(status=("run", np.array(["failed" if failed else "complete"] * n, dtype=object)),
                   error=("run", np.array(["; ".join(str(v) for v in failed.values())] * n, dtype=object)),
                   file=("run", np.array([entry["file"]] * n, dtype=object)))
    return ds


def _point_id(file: str) -> str | None:
    """The point identity a sweep puts in its file names: ``<slug>_<12 hex digits>.h5``."""
    stem = file[: -len(".h5")] if file.endswith(".h5") else file
    tail = stem.rsplit("_", 1)[-1]
    return tail if len(tail) == 12 and all(c in "0123456789abcdef" for c in tail) else None


def _missing(template, entry: dict, status: str = "missing", error: str = ""):
    """A point without a (usable) file: the template's shape, NaN everywhere, ``status`` 'missing' (or why)."""
    import xarray as xr

    out = template.isel(run=slice(0, 1)).copy(deep=True)
    for name, var in out.variables.items():
        if "run" in var.dims and var.dtype.kind == "f":  # t included: a run that never ran has no times
            out[name] = xr.full_like(out[name], np.nan)
    out["status"] = ("run", np.array([status], dtype=object))
    out["error"] = ("run", np.array([error], dtype=object))
    out["file"] = ("run", np.array([entry["file"]], dtype=object))
    for text in RUN_TEXT_VARS:
        if text in out:
            out[text] = ("run", np.array([""], dtype=object))
    return out


def _common_modes(parts: list) -> list:
    """Points whose targets have different modes (a sweep over toys): pad ``mode`` to the largest count.

    The mode names then differ from point to point, so they move from the
    ``mode`` coordinate to a ``mode_name`` variable on (run, mode); missing
    modes read as NaN (``""`` for their names).
    """
    labels = [tuple(p["mode"].values.tolist()) if "mode" in p.coords else (None,) * p.sizes.get("mode", 0)
              for p in parts]
    if len(set(labels)) <= 1:
        return parts
    k = max(len(names) for names in labels)
    out = []
    for p, names in zip(parts, labels):
        padded = ["" if v is None else str(v) for v in names] + [""] * (k - len(names))
        p = p.drop_vars("mode", errors="ignore")
        if "mode" in p.dims and p.sizes["mode"] < k:
            p = p.pad({"mode": (0, k - p.sizes["mode"])})  # a dict: pad has an argument named mode; floats pad with NaN
        p["mode_name"] = (("run", "mode"), np.array([padded] * p.sizes["run"], dtype=object))
        out.append(p)
    return out


def _stack_static(parts: list):
    """Variables without ``run``: kept once where every point agrees, else stacked along ``run`` (NaN-padded)."""
    import xarray as xr

    out = {}
    for name in _STATIC:
        have = [p[name] for p in parts if name in p]
        if not have:
            continue
        first = have[0].values
        if all(_same(first, h.values) for h in have):
            out[name] = have[0].variable
            continue
        shape = tuple(max(h.shape[i] for h in have) for i in range(first.ndim))
        stacked = []
        for p in parts:
            block = np.full(shape, np.nan)
            if name in p:
                v = p[name].values
                block[tuple(slice(0, s) for s in v.shape)] = v
            stacked.extend([block] * p.sizes["run"])
        out[name] = xr.Variable(("run",) + have[0].dims, np.stack(stacked), attrs=have[0].attrs)
    return out


def open_sweep(out_dir, *, layout: str = "grid", variables: Sequence[str] | None = None):
    """Combine a sweep folder's point files into one ``xarray.Dataset``.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`wgfsim.sweep.run_sweep` (``sweep.json`` + point files).
    layout : {"grid", "runs", "points"}
        ``"runs"``: the points' runs along one ``run`` dimension with a
        MultiIndex over flow, method, seed and every swept key, exactly as
        :func:`open_run` gives a run file (a one-point sweep equals
        ``open_run`` of its file, plus the sweep's per-point variables).
        ``"points"``: the same with the dimension named ``point``.
        ``"grid"`` (default): ``ds.unstack`` of the runs into one dimension per
        independent swept key (``flow``, ``bandwidth``, ``target.separation``,
        ``seed``, ...), NaN where a combination has no point.  Two rules keep
        the grid honest: a key that equals an earlier key at every point (a
        tied data axis: ``init.separation`` with ``target.separation``) is a
        coordinate along that key's dimension; keys that only some points have
        (``bandwidth`` of ``kl_kde`` next to ``epsilon`` of ``sinkhorn``) form,
        with ``flow``, one ``config`` dimension labelled
        ``"kl_kde bandwidth=0.5"``.
    variables : sequence of str, optional
        Data variables to load (default all; ``["mode_mass"]`` skips the
        positions of a large sweep).

    Returns
    -------
    xarray.Dataset
        The run files' variables (``t`` per run and record, as stored),
        ``time`` aligned on ``step`` across points (NaN where a point has no
        such record).  Per run also ``status`` (``complete``; ``failed``:
        diverged, records kept; ``missing``: no file yet; in the grid,
        ``absent``: a cell no point has), ``error`` and ``file``.
        Attributes: the first file's, plus ``sweep_dir``, ``sweep_keys`` and
        ``sweep_layout``.
    """
    from .manifest import MANIFEST, read_manifest

    layouts = ("grid", "runs", "points")
    if layout not in layouts:
        raise ValueError(f"layout: expected one of {list(layouts)}, got {layout!r}")
    out = pathlib.Path(out_dir)
    manifest = read_manifest(out)
    entries = manifest["points"]
    problems: dict = {}
    loaded = [_point(out / e["file"], e, variables, problems, manifest.get("name")) for e in entries]
    present = [d for d in loaded if d is not None]
    if not present:
        if problems:
            file, (why, text) = next(iter(problems.items()))
            raise SchemaError(f"{out}: none of the {len(entries)} point files of {MANIFEST} can be read "
                              f"({len(problems)} {why}; first: {text})")
        raise FileNotFoundError(f"{out}: none of the {len(entries)} point files of {MANIFEST} exists yet; "
                                "run the sweep first")
    padded = iter(_common_modes(present))
    loaded = [None if d is None else next(padded) for d in loaded]
    present = [d for d in loaded if d is not None]
    template = present[0]
    parts = [d if d is not None else _missing(template, e, *problems.get(e["file"], ("missing", "")))
             for d, e in zip(loaded, entries)]
    steps = sorted({int(s) for d in present for s in d["step"].values})
    static = _stack_static(parts)
    aligned = []
    for d in parts:
        # swept keys come from the manifest below (a point file only has the keys of its own flow)
        d = d.drop_vars([n for n in _STATIC if n in d] +
                        [c for c, v in d.coords.items() if v.dims == ("run",) and c not in RUN_COORDS])
        # align records on their step: a point that stopped early has NaN past its last record
        d = d.drop_vars("step").assign_coords(time=d["step"].values).reindex(time=steps).drop_vars("time")
        aligned.append(d)
    import xarray as xr

    ds = xr.concat(aligned, dim="run", data_vars="minimal", coords="minimal", compat="override", join="outer",
                   combine_attrs="override")
    ds = ds.assign_coords(step=("time", np.asarray(steps, dtype=np.int64)))
    ds = ds.assign(static)
    all_keys: list[str] = []
    for e in entries:
        for k in e["coords"]:
            if k not in all_keys:
                all_keys.append(k)
    per_run = {k: [] for k in all_keys}
    for d, e in zip(parts, entries):
        for k in all_keys:
            per_run[k].extend([e["coords"].get(k)] * d.sizes["run"])
    ds = ds.assign_coords({k: ("run", _coord_array(per_run[k])) for k in all_keys})
    keys = [k for k in manifest["keys"] if k in all_keys]
    ds.attrs = {**template.attrs, "sweep_dir": str(out), "sweep_keys": json.dumps(keys), "sweep_layout": layout}
    for name in ("failed_runs", "status", "start_time", "end_time", "fingerprint", "resolved_scenario"):  # per point
        ds.attrs.pop(name, None)
    if layout == "runs":
        return run_index(ds)
    ds = ds.rename(run="point")
    if layout == "points":
        return run_index(ds, "point")
    from .grid import grid_layout

    table = {k: per_run[k] for k in all_keys}
    return grid_layout(ds, keys, table)


def flow_params(ds) -> list:
    """Each run's flow options as typed ``(flow name, Params)`` pairs, from the stored ``flow_params`` JSON.

    The stored text holds every option with its default filled, so
    ``wgfsim.flows.make_params`` rebuilds exactly the ``Params`` the run used
    (lists read back as the tuples the flow normalised them to).  Works on
    :func:`open_run` and :func:`open_sweep` datasets (any run dimension).
    The flows are imported here, on first call: reading a file needs no
    kernel compiler.
    """
    from .. import flows

    texts = np.asarray(ds["flow_params"].values).ravel()
    out = []
    for text in texts:
        if not isinstance(text, str) and hasattr(text, "decode"):
            text = text.decode()
        if not text:  # a sweep point without a file yet
            out.append((None, None))
            continue
        options = json.loads(str(text))
        name = options.pop("flow")
        out.append((name, flows.make_params(name, **options)))
    return out
