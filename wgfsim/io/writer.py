"""Crash-safe, incremental HDF5 writer of a run group (the schema: :mod:`wgfsim.io.schema`).

One file holds every run of a group (one scenario file, all its flows,
methods, seeds and hyper-parameters), in the netCDF4 flavour of HDF5 that
``xarray.open_dataset(path, engine="h5netcdf")`` and ``h5py.File(path)`` read.
The variables, their dimensions, ``long_name`` and ``units`` are listed in
:data:`wgfsim.io.schema.VARIABLES` (and ``docs/file_format.md``); only the
scalar metrics a scenario asks for are created.

The module is long because crash safety is one design (the shadow file,
the atomic publish, the replay of the record the shadow lacks) that only
holds if its pieces stay together; about a third of it is this explanation.

``time`` is unlimited and grows one record at a time.  Entries no record has
written read as NaN (the fill value).  Global attributes: ``wgfsim_version``,
``wgfsim_schema``, ``start_time`` and ``end_time`` (ISO 8601, UTC), ``status``
(``partial`` or ``complete``) set by the store, plus the caller's (the runner
passes ``scenario`` as provenance, ``backend``, ``dtype``).

Crash safety: why a shadow file and not SWMR
--------------------------------------------
HDF5 updates its metadata (B-trees, object headers, free space) in place, so
a writer killed in the middle of a write or a flush can leave a file that no
longer opens.  HDF5's SWMR mode keeps the file consistent for concurrent
*SWMR readers*, but it needs the v3 superblock, whose "open for write" flag
stays set when the writer dies: afterwards plain ``h5py.File(path)`` and
``xarray.open_dataset`` both refuse the file ("file is already open for write
(may use <h5clear file> to clear file consistency flags)"), checked with
h5py 3.16 / HDF5 2.0 on files made by h5netcdf and killed with SIGKILL.
Only ``h5py.File(path, swmr=True)`` or running ``h5clear`` recovers it, so SWMR
does not give the guarantee we need.

Instead the published file ``NAME.h5.partial`` is never written in place.
The store keeps a second copy, the *shadow* ``NAME.h5.partial.shadow``, one
record behind.  Each :meth:`RunStore.write_record`:

1. opens the shadow with h5py, replays the record it is missing and writes the
   new one, and closes it (the close flushes everything to the OS);
2. publishes it with an atomic rename: ``link(partial, swap)``,
   ``replace(shadow, partial)``, ``replace(swap, shadow)``.  The hard link
   keeps the previous file alive under the shadow name, where it becomes the
   next shadow (one record behind), so nothing is ever copied.

A reader, or a process resuming after a kill at any instant (SIGKILL
included), finds under ``NAME.h5.partial`` a file that was closed cleanly and
holds every record whose ``write_record`` returned (and maybe the one in
flight).  The price is writing each record twice and twice the disk space
while the run is live.  Where hard links are not supported the store falls
back to copying the published file to the shadow before each record
(correct, but O(file size) per record).  SIGKILL keeps the OS page cache, so
no ``fsync`` is needed for it; pass ``durable=True`` to also survive power
loss (fsync of the file and the directory on every record).

:meth:`RunStore.finish` writes the final attributes into the shadow and
renames it to ``NAME.h5``; :meth:`RunStore.reopen` (``--resume``) discards a
stale shadow, copies the published file once and continues.

One writer per file (the runner holds :class:`wgfsim.io.lock.RunLock`).
Readers: the shadow is written under an exclusive ``flock``, and
:func:`wgfsim.io.read_file` reads a published file under a shared one; when a
reader still holds the inode that would become the next shadow, the store
leaves it to the reader and copies the published file instead
(:meth:`RunStore._claim_shadow`), so a reader never sees its file rewritten.
A reader that opens the file some other way (``h5py.File`` kept open across
records) gets no such promise.

Full disks: each write first reserves room for its data and HDF5's metadata
(``posix_fallocate``; HDF5 trims the file to its used size on close), so a
full disk is an ``OSError`` before HDF5 writes anything, and an HDF5 write
error is turned into one too after the shadow is closed and discarded; the
published ``.partial`` keeps every record so far.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import math
import os
import pathlib
import shutil
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from .._version import __version__
from ..backend import to_numpy
from .schema import (AXIS_METRICS, DIMS, RECORD_KEYS, RESERVED_ATTRS, RUN_COORDS, RUN_TEXT_VARS, SCALAR_METRICS, SCHEMA_ATTR,
                     SCHEMA_VERSION, VARIABLES)

__all__ = ["RunStore", "SCALAR_METRICS", "DIMS", "RECORD_KEYS"]

REQUIRED_RUN_COORDS = RUN_COORDS
_VARIABLES = tuple(VARIABLES)

# records per chunk along time for the (run, time) variables: one chunk covers many records
_TIME_CHUNK = 256
# cap a position chunk (one record of one run) at ~4 MiB of float32
_CHUNK_VALUES = 1 << 20
# bytes reserved beyond a record's data for HDF5's metadata (chunk index, heaps, a new time chunk)
_RESERVE_SLACK = 64 << 10



def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _paths(path) -> tuple[pathlib.Path, pathlib.Path]:
    """(final ``NAME.h5``, published ``NAME.h5.partial``) from either name."""
    p = pathlib.Path(path)
    if p.name.endswith(".partial"):
        p = p.with_name(p.name[: -len(".partial")])
    if p.suffix != ".h5":
        raise ValueError(f"path: expected a file name ending in .h5 (or .h5.partial), got {str(path)!r}")
    return p, p.with_name(p.name + ".partial")


def _unlink(p: pathlib.Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


def _fsync_path(p: pathlib.Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


# ------------------------------------------------------------------ validation of create() inputs


def _run_coord(name: str, values, n_runs: int) -> np.ndarray:
    """One coordinate on ``run`` as a typed array (see :meth:`RunStore.create`)."""
    vals = list(values)
    if len(vals) != n_runs:
        raise ValueError(f"run_coords[{name!r}]: expected {n_runs} values (one per run, like 'flow'), got {len(vals)}")
    if name in ("flow", "method"):
        if not all(isinstance(v, str) and v for v in vals):
            raise ValueError(f"run_coords[{name!r}]: expected non-empty strings, got {vals!r}")
        return np.array(vals, dtype=str)
    if name == "seed":
        if not all(_is_int(v) for v in vals):
            raise ValueError(f"run_coords['seed']: expected integers, got {vals!r}")
        return np.array(vals, dtype=np.int64)
    # hyper-parameters: a run without the parameter passes None (or NaN)
    if all(isinstance(v, (bool, np.bool_)) for v in vals):
        return np.array(vals, dtype=bool)
    if all(v is None or _is_number(v) for v in vals):
        if all(_is_int(v) for v in vals):
            return np.array(vals, dtype=np.int64)
        return np.array([math.nan if v is None else float(v) for v in vals], dtype=np.float64)
    # mixed kinds (bandwidth "median" next to 0.5, tuples of several bandwidths): keep them readable as text
    return np.array(["" if v is None else str(v) for v in vals], dtype=str)


def _attr_value(key, value):
    """A netCDF-storable attribute value, or ValueError naming the key."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"attrs: expected non-empty string keys, got {key!r}")
    if isinstance(value, (bool, np.bool_)):
        return int(value)  # netCDF has no boolean attributes
    if isinstance(value, str) or _is_number(value):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.ndim == 1 and arr.dtype.kind in "iuf" and arr.size:
            return arr
        if arr.ndim == 1 and arr.dtype.kind == "U" and arr.size:
            return [str(v) for v in value]
    raise ValueError(
        f"attrs[{key!r}]: expected a string, a number or a non-empty 1-D list of numbers or of strings, "
        f"got {type(value).__name__} {value!r:.80}"
    )


def _caller_attrs(attrs) -> dict:
    if attrs is None:
        return {}
    if not isinstance(attrs, dict):
        raise ValueError(f"attrs: expected a dict, got {type(attrs).__name__}")
    clash = [k for k in attrs if k in RESERVED_ATTRS]
    if clash:
        raise ValueError(f"attrs: {clash} are set by the store itself; reserved keys are {RESERVED_ATTRS}")
    return {k: _attr_value(k, v) for k, v in attrs.items()}


def _positive_int(name: str, value) -> int:
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _samples(name: str, arr, dim: int) -> np.ndarray:
    arr = np.asarray(to_numpy(arr), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != dim or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (n, dim) = (n, {dim}) with n >= 1, got {arr.shape}")
    return arr


# ------------------------------------------------------------------ operations replayed on the shadow


class _Session:
    """Low-level handles on the open shadow file.

    h5py's high-level ``ds[...] = v`` and ``ds.resize`` cost several times more
    per call than the ``h5d`` calls below, and a record is a dozen small writes.
    """

    def __init__(self, h: h5py.File, time_vars):
        self.h = h
        self.time_vars = time_vars
        self._ids: dict[str, h5py.h5d.DatasetID] = {}

    def dataset(self, name: str) -> h5py.h5d.DatasetID:
        if name not in self._ids:
            self._ids[name] = h5py.h5d.open(self.h.id, name.encode())
        return self._ids[name]

    def grow_time(self, size: int) -> None:
        """Grow the ``time`` scale and every variable on ``time`` to ``size``, as h5netcdf does."""
        scale = self.dataset("time")
        if scale.shape[0] >= size:
            return
        scale.set_extent((size,))
        for name, axis in self.time_vars:
            did = self.dataset(name)
            shape = list(did.shape)
            shape[axis] = size
            did.set_extent(tuple(shape))

    def write(self, name: str, lead: tuple, value) -> None:
        """``name[lead + (...)] = value``: one hyperslab starting at the leading indices ``lead``."""
        value = np.asarray(value)
        if value.size == 0:
            return  # a target without modes: mode_mass has an empty last axis
        did = self.dataset(name)
        count = (1,) * len(lead) + value.shape
        arr = np.ascontiguousarray(value, dtype=did.dtype).reshape(count)
        fspace = did.get_space()
        fspace.select_hyperslab(tuple(lead) + (0,) * value.ndim, count)
        did.write(h5py.h5s.create_simple(count), fspace, arr)


@dataclass(frozen=True)
class _Record:
    """One record of one run, validated and on the host, ready to write."""

    run: int
    index: int
    step: int
    t: float
    values: dict = field(default_factory=dict)  # variable -> array or float at (run, index)

    def apply(self, session: _Session) -> None:
        session.grow_time(self.index + 1)
        session.write("step", (self.index,), np.int64(self.step))
        session.write("t", (self.run, self.index), self.t)
        for name, value in self.values.items():
            session.write(name, (self.run, self.index), value)


@dataclass(frozen=True)
class _Attrs:
    """Global attributes to set."""

    attrs: dict

    def apply(self, session: _Session) -> None:
        for key, value in self.attrs.items():
            session.h.attrs[key] = value


# ------------------------------------------------------------------ the store


class RunStore:
    """Incremental writer of one run group's dataset (see the module docstring for the schema).

    Make one with :meth:`create` (new group) or :meth:`reopen` (``--resume``),
    call :meth:`write_record` for each record of each run, then :meth:`finish`.
    Usable as a context manager: leaving the block without ``finish`` calls
    :meth:`close`, which keeps the ``.partial`` for a later resume.

    Attributes
    ----------
    n_runs, n_particles, dim, n_modes : int
    record_velocity : bool
    path : pathlib.Path
        The final ``NAME.h5`` (exists after :meth:`finish`).
    partial_path : pathlib.Path
        ``NAME.h5.partial``, always a complete, readable file while the run is live.
    """

    def __init__(self, final: pathlib.Path, partial: pathlib.Path, *, durable: bool = False):
        # private: use create() or reopen()
        self.path = final
        self.partial_path = partial
        self._shadow = partial.with_name(partial.name + ".shadow")
        self._swap = partial.with_name(partial.name + ".swap")
        self._durable = bool(durable)
        self._closed = False
        self._use_links = True  # falls back to copying where the filesystem has no hard links
        self._shadow_ok = False  # the shadow exists and lags the published file by exactly self._behind
        self._behind: list = []
        with h5py.File(partial, "r") as h:
            missing = [v for v in ("position", "t", "step", "mode_mass") if v not in h]
            if missing:
                raise ValueError(f"{partial}: not a wgfsim run store (no variables {missing})")
            self.n_runs = int(h["run"].shape[0])
            self.n_particles = int(h["particle"].shape[0])
            self.dim = int(h["dim"].shape[0])
            self.n_modes = int(h["mode"].shape[0])
            self.record_velocity = "velocity" in h
            self._time_vars = tuple(
                (h[ref].name.lstrip("/"), int(axis)) for ref, axis in h["time"].attrs["REFERENCE_LIST"]
            )
            # the (run, time) numbers: the scalar metrics and a method's extra variables (the generator's loss)
            self.metrics = tuple(name for name, _ in self._time_vars if name != "t" and h[name].ndim == 2)
            # the metrics with a dimension of their own (mmd2_at): name -> its length
            self.axis_metrics = {name: int(h[name].shape[2]) for name, _ in self._time_vars if name in AXIS_METRICS}
            t = h["t"][...]  # (run, time)
            self._steps = [int(s) for s in h["step"][...]]
        # every accepted record has a finite t, and records are contiguous from 0
        finite = np.isfinite(t)
        self._counts = [int(np.argmin(row)) if not row.all() else int(row.size) for row in finite]

    # -------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        path,
        *,
        run_coords: dict[str, list],
        n_particles: int,
        dim: int,
        mode_names: list[str] | int,
        target: np.ndarray,
        reference: np.ndarray,
        attrs: dict,
        record_velocity: bool = False,
        overwrite: bool = False,
        durable: bool = False,
        metrics=SCALAR_METRICS,
        extra_variables: dict | None = None,
        mode_centres=None,
        target_mode_mass=None,
        run_text: dict | None = None,
        metric_axes: dict | None = None,
    ) -> "RunStore":
        """Create ``path + ".partial"`` with the schema and no records.

        Parameters
        ----------
        path : str or Path
            The final file name, ending in ``.h5``.
        run_coords : dict of lists
            One list per coordinate on ``run``, each of length ``n_runs``; must
            hold ``flow`` (str), ``method`` (str) and ``seed`` (int).  Any other
            entry is a hyper-parameter: numbers (``None`` or NaN where a run
            does not have it) are stored as float64 (int64 if all are ints),
            booleans as bool, anything else as strings (``None`` -> ``""``).
        n_particles, dim : int
            ``position`` of each record has shape ``(n_particles, dim)``.
        mode_names : list of str or int
            Names of the target's modes (a ``mode`` coordinate), or just their
            number ``K`` (0 when the target has no modes).
        target : (n_samples, dim) array
        reference : (n_ref, dim) array
        attrs : dict
            Global attributes (``scenario``, ``backend``, ``dtype``, ...): strings,
            numbers, or 1-D lists of numbers or strings.
        record_velocity : bool
            Also store ``velocity`` (run, time, particle, dim).
        overwrite : bool
            Replace an existing ``NAME.h5`` / ``NAME.h5.partial``; otherwise they
            are an error (resume with :meth:`reopen`).
        durable : bool
            fsync every record (survives power loss, not only a killed process).
        metrics : sequence of str
            The scalar metrics to store (a subset of :data:`SCALAR_METRICS`), and
            any metric with a dimension of its own (``mmd2_at``, whose values
            ``metric_axes`` gives); a record may only carry these (and ``extra_variables``).
        extra_variables : dict, optional
            A method's own per-record numbers, ``{name: Variable}`` with dims
            ``("run", "time")`` (the generator's ``loss``; declared by its
            method record, :mod:`wgfsim.methods`).
        mode_centres : (K, dim) array, optional
            The target's mode centres (``mode_centre``).
        target_mode_mass : (K,) array, optional
            The target sample's own mode masses (``target_mode_mass``).
        metric_axes : dict, optional
            ``{dim: values}`` for each such metric's last dimension, e.g.
            ``{"mmd2_bandwidth": [0.05, 0.2]}``: distinct positive numbers, stored
            as that dimension's coordinate.
        run_text : dict, optional
            ``flow_params`` and ``method_params``: one JSON string per run.
        """
        import xarray as xr  # imported here: writers that only reopen stay light

        final, partial = _paths(path)
        if not isinstance(run_coords, dict):
            raise ValueError(f"run_coords: expected a dict of lists, got {type(run_coords).__name__}")
        missing = [k for k in REQUIRED_RUN_COORDS if k not in run_coords]
        if missing:
            raise ValueError(f"run_coords: missing {missing}; expected at least {list(REQUIRED_RUN_COORDS)}")
        reserved = [k for k in run_coords if k in DIMS or k in _VARIABLES]
        if reserved:
            raise ValueError(f"run_coords: {reserved} clash with the dataset's dimensions or variables; rename them")
        n_runs = len(list(run_coords["flow"]))
        if n_runs == 0:
            raise ValueError("run_coords['flow']: expected at least one run, got an empty list")
        coords = {name: ("run", _run_coord(name, vals, n_runs)) for name, vals in run_coords.items()}
        n = _positive_int("n_particles", n_particles)
        d = _positive_int("dim", dim)
        if isinstance(mode_names, (list, tuple)):
            if not all(isinstance(m, str) and m for m in mode_names) or len(set(mode_names)) != len(mode_names):
                raise ValueError(f"mode_names: expected distinct non-empty strings or a count, got {mode_names!r}")
            k = len(mode_names)
            if k:
                coords["mode"] = ("mode", np.array(mode_names, dtype=str))
        elif _is_int(mode_names) and mode_names >= 0:
            k = int(mode_names)
        else:
            raise ValueError(f"mode_names: expected a list of mode names or a non-negative integer, got {mode_names!r}")
        target = _samples("target", target, d)
        reference = _samples("reference", reference, d)
        user_attrs = _caller_attrs(attrs)
        metrics = tuple(metrics)
        unknown = [m for m in metrics if m not in SCALAR_METRICS and m not in AXIS_METRICS]
        if unknown:
            raise ValueError(f"metrics: unknown {unknown}; expected some of {list(SCALAR_METRICS + tuple(AXIS_METRICS))}")
        axis_metrics = {}  # name -> (dim, values) of the metrics with a dimension of their own
        for m in (m for m in metrics if m in AXIS_METRICS):
            dim_name = AXIS_METRICS[m].dim
            values = np.asarray((metric_axes or {}).get(dim_name, ()), dtype=np.float64).ravel()
            if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)) or np.unique(values).size != values.size:
                raise ValueError(f"metric_axes[{dim_name!r}]: expected distinct positive numbers for {m!r}, got "
                                 f"{(metric_axes or {}).get(dim_name)!r}")
            axis_metrics[m] = (dim_name, values)
            coords[dim_name] = (dim_name, values)
        metrics = tuple(m for m in metrics if m not in AXIS_METRICS)
        extra = dict(extra_variables or {})
        clash = [m for m in extra if m in _VARIABLES or m in DIMS or m in run_coords or extra[m].dims != ("run", "time")]
        if clash:
            raise ValueError(f"extra_variables: {clash} clash with the schema's names or are not (run, time) numbers")
        metrics = metrics + tuple(extra)
        static = {}
        if mode_centres is not None:
            centres = np.asarray(to_numpy(mode_centres), dtype=np.float64)
            if centres.shape != (k, d):
                raise ValueError(f"mode_centres: expected shape (n_modes, dim) = ({k}, {d}), got {centres.shape}")
            static["mode_centre"] = (("mode", "dim"), centres)
        if target_mode_mass is not None:
            tmm = np.asarray(to_numpy(target_mode_mass), dtype=np.float64)
            if tmm.shape != (k,):
                raise ValueError(f"target_mode_mass: expected shape (n_modes,) = ({k},), got {tmm.shape}")
            static["target_mode_mass"] = (("mode",), tmm)
        for name, texts in (run_text or {}).items():
            if name not in RUN_TEXT_VARS:
                raise ValueError(f"run_text: unknown {name!r}; expected some of {list(RUN_TEXT_VARS)}")
            texts = list(texts)
            if len(texts) != n_runs or not all(isinstance(v, str) for v in texts):
                raise ValueError(f"run_text[{name!r}]: expected {n_runs} strings (one per run)")
            static[name] = (("run",), np.array(texts, dtype=object))

        shadow = partial.with_name(partial.name + ".shadow")
        swap = partial.with_name(partial.name + ".swap")
        new = partial.with_name(partial.name + ".new")
        existing = [p for p in (final, partial) if p.exists()]
        if existing and not overwrite:
            hint = "resume it with RunStore.reopen (--resume)" if partial in existing else "choose another name"
            raise FileExistsError(f"{existing[0]}: already exists; {hint}, or pass overwrite=True")
        for p in (final, partial, shadow, swap, new):
            _unlink(p)
        final.parent.mkdir(parents=True, exist_ok=True)

        r = n_runs
        per_record = (r, 0, n, d)
        data_vars = {
            "position": (("run", "time", "particle", "dim"), np.empty(per_record, np.float32)),
            "target": (("sample", "dim"), target),
            "reference": (("ref", "dim"), reference),
            **{m: (("run", "time"), np.empty((r, 0))) for m in metrics},
            "mode_mass": (("run", "time", "mode"), np.empty((r, 0, k))),
            **{m: (("run", "time", dn), np.empty((r, 0, v.size))) for m, (dn, v) in axis_metrics.items()},
            **static,
        }
        if record_velocity:
            data_vars["velocity"] = (("run", "time", "particle", "dim"), np.empty(per_record, np.float32))
        coords["step"] = ("time", np.empty(0, np.int64))
        coords["t"] = (("run", "time"), np.empty((r, 0)))
        ds = xr.Dataset(data_vars, coords=coords)
        for name, var in {**VARIABLES, **extra}.items():
            if name in ds.variables:
                ds[name].attrs["long_name"] = var.long_name
                if var.units:
                    ds[name].attrs["units"] = var.units
        ds.attrs.update(user_attrs)
        ds.attrs.update({"wgfsim_version": __version__, SCHEMA_ATTR: SCHEMA_VERSION, "start_time": _now(),
                         "status": "partial"})

        chunk_particles = max(1, min(n, _CHUNK_VALUES // d))
        nan = {"_FillValue": np.nan}
        encoding = {
            "position": {"_FillValue": np.float32(np.nan), "chunksizes": (1, 1, chunk_particles, d)},
            "mode_mass": {**nan, "chunksizes": (1, _TIME_CHUNK, max(k, 1))},
            "t": {**nan, "chunksizes": (1, _TIME_CHUNK)},
            "step": {"_FillValue": None, "chunksizes": (_TIME_CHUNK,)},
            "seed": {"_FillValue": None},
            **{m: {**nan, "chunksizes": (1, _TIME_CHUNK)} for m in metrics},
            **{m: {**nan, "chunksizes": (1, _TIME_CHUNK, v.size)} for m, (_, v) in axis_metrics.items()},
        }
        if record_velocity:
            encoding["velocity"] = encoding["position"]
        # written under a temporary name and renamed: a kill during create leaves no half-made .partial
        need = 2 * (target.nbytes + reference.nbytes + sum(np.asarray(v[1]).nbytes for v in static.values())) \
            + _RESERVE_SLACK
        try:
            free = shutil.disk_usage(final.parent).free
        except OSError:
            free = None
        if free is not None and free < need:
            raise OSError(errno.ENOSPC, f"{final.parent}: no space left for {partial.name} (needs about {need} bytes, "
                          f"{free} free)")
        try:
            ds.to_netcdf(new, engine="h5netcdf", unlimited_dims=["time"], encoding=encoding)
        except (OSError, RuntimeError) as err:
            _unlink(new)
            reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())[:300]
            raise OSError(getattr(err, "errno", None) or errno.EIO, f"{new}: cannot write ({reason})") from None
        if durable:
            _fsync_path(new)
        os.replace(new, partial)
        if durable:
            _fsync_path(partial.parent)
        return cls(final, partial, durable=durable)

    @classmethod
    def reopen(cls, path, *, durable: bool = False) -> "RunStore":
        """Reopen ``NAME.h5.partial`` to continue writing (``--resume``).

        ``path`` may be ``NAME.h5`` or ``NAME.h5.partial``.  Raises
        ``FileNotFoundError`` when there is no partial file (or the run group
        already finished).  :meth:`n_records` tells where each run stopped.
        """
        final, partial = _paths(path)
        if not partial.exists():
            if final.exists():
                raise FileNotFoundError(f"{partial}: not found; {final} is complete, so there is nothing to resume")
            raise FileNotFoundError(f"{partial}: not found, so there is nothing to resume; start the run without --resume")
        store = cls(final, partial, durable=durable)
        # a shadow left by a killed writer may be torn mid-write: rebuild it from the published file
        _unlink(store._shadow)
        _unlink(store._swap)
        return store

    # -------------------------------------------------------------- writing

    def n_records(self, run: int) -> int:
        """Number of records written for ``run`` (indices ``0 .. n_records - 1``)."""
        return self._counts[self._run_index(run)]

    def write_record(self, run: int, index: int, record: dict) -> None:
        """Write record ``index`` of ``run`` and publish it (on disk when this returns).

        Parameters
        ----------
        run : int
            In ``0 .. n_runs - 1``.
        index : int
            In ``0 .. n_records(run)``: the next record, or a rewrite of an earlier one.
            ``time`` grows when ``index`` reaches its size.
        record : dict
            ``step`` (int, same for every run at a given index), ``t`` (float,
            ``step * step_size``), ``position`` (n_particles, dim), optionally
            ``velocity`` (n_particles, dim; dropped unless ``record_velocity``),
            ``mode_mass`` (K,) and any of :data:`SCALAR_METRICS` (floats; a
            missing key or ``None`` stays NaN).  NumPy or CuPy arrays.
        """
        self._check_open()
        op = self._validate(run, index, record)
        self._commit([op])
        self._counts[op.run] = max(self._counts[op.run], op.index + 1)
        if op.index == len(self._steps):
            self._steps.append(op.step)

    def finish(self, attrs: dict | None = None) -> pathlib.Path:
        """Set the final attributes (``end_time``, ``status="complete"``, plus ``attrs``), rename to ``NAME.h5``.

        Returns the final path.  The store is closed afterwards.
        """
        self._check_open()
        final_attrs = {**_caller_attrs(attrs), "end_time": _now(), "status": "complete"}
        self._write_shadow([_Attrs(final_attrs)])
        os.replace(self._shadow, self.path)  # atomic: NAME.h5 appears complete or not at all
        if self._durable:
            _fsync_path(self.path.parent)
        _unlink(self.partial_path)
        _unlink(self._swap)
        self._closed = True
        return self.path

    def close(self) -> None:
        """Stop writing without finishing: ``NAME.h5.partial`` stays for :meth:`reopen`."""
        if self._closed:
            return
        _unlink(self._shadow)
        _unlink(self._swap)
        self._closed = True

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"RunStore({str(self.partial_path)!r}, n_runs={self.n_runs}, n_particles={self.n_particles}, "
            f"dim={self.dim}, n_modes={self.n_modes}, records={self._counts}, {state})"
        )

    # -------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.partial_path}: the store is closed (finished or closed); reopen it to write")

    def _run_index(self, run) -> int:
        if not _is_int(run) or not 0 <= run < self.n_runs:
            raise ValueError(f"run: expected an integer in 0..{self.n_runs - 1}, got {run!r}")
        return int(run)

    def _points(self, name, value) -> np.ndarray:
        arr = to_numpy(value)
        expected = (self.n_particles, self.dim)
        if arr.shape != expected:
            raise ValueError(f"{name}: expected shape (n_particles, dim) = {expected}, got {arr.shape}")
        return arr.astype(np.float32, copy=False)

    def _validate(self, run, index, record) -> _Record:
        """Check and convert a record before touching any file."""
        run = self._run_index(run)
        count = self._counts[run]
        if not _is_int(index) or not 0 <= index <= count:
            raise ValueError(
                f"index: expected an integer in 0..{count} for run {run} (records are contiguous from 0), got {index!r}"
            )
        index = int(index)
        if not isinstance(record, dict):
            raise ValueError(f"record: expected a dict, got {type(record).__name__}")
        unknown = [k for k in record if k not in RECORD_KEYS and k not in self.metrics]
        if unknown:
            raise ValueError(f"record: unknown keys {unknown}; expected some of {list(RECORD_KEYS + self.metrics)}")
        for key in ("step", "t", "position"):
            if key not in record:
                raise ValueError(f"record: missing {key!r}; 'step', 't' and 'position' are required")
        step = record["step"]
        if not _is_int(step) or step < 0:
            raise ValueError(f"step: expected a non-negative integer, got {step!r}")
        step = int(step)
        if index < len(self._steps) and self._steps[index] != step:
            raise ValueError(
                f"step: record {index} of run {run} has step {step} but time index {index} already holds step "
                f"{self._steps[index]} (all runs of a group record on the same step grid)"
            )
        t = self._scalar("t", record["t"])
        if not math.isfinite(t):
            raise ValueError(f"t: expected a finite number (step * step_size), got {record['t']!r}")
        values: dict[str, Any] = {"position": self._points("position", record["position"])}
        if self.record_velocity and record.get("velocity") is not None:
            values["velocity"] = self._points("velocity", record["velocity"])
        if record.get("mode_mass") is not None:
            mm = np.asarray(to_numpy(record["mode_mass"]), dtype=np.float64)
            if mm.shape != (self.n_modes,):
                raise ValueError(f"mode_mass: expected shape (n_modes,) = ({self.n_modes},), got {mm.shape}")
            values["mode_mass"] = mm
        for name, size in self.axis_metrics.items():
            if record.get(name) is not None:
                arr = np.asarray(to_numpy(record[name]), dtype=np.float64)
                if arr.shape != (size,):
                    raise ValueError(f"{name}: expected shape ({size},) (one value per {AXIS_METRICS[name].dim}), "
                                     f"got {arr.shape}")
                values[name] = arr
        stray = [m for m in AXIS_METRICS if record.get(m) is not None and m not in self.axis_metrics]
        if stray:
            raise ValueError(f"record: {stray} not stored in this file (created without metric_axes for them)")
        for name in dict.fromkeys(SCALAR_METRICS + self.metrics):
            if record.get(name) is not None:
                if name not in self.metrics:
                    raise ValueError(f"record: {name!r} is not stored in this file; it stores {list(self.metrics)}")
                values[name] = self._scalar(name, record[name])
        return _Record(run=run, index=index, step=step, t=t, values=values)

    @staticmethod
    def _scalar(name, value) -> float:
        arr = np.asarray(to_numpy(value))
        if arr.ndim != 0 or arr.dtype.kind not in "iuf":
            raise ValueError(f"{name}: expected a real scalar, got {value!r:.80}")
        return float(arr)

    def _ensure_shadow(self) -> None:
        if self._shadow_ok:
            return
        _unlink(self._shadow)
        shutil.copyfile(self.partial_path, self._shadow)
        self._behind = []
        self._shadow_ok = True

    def _write_shadow(self, ops: list) -> None:
        """Bring the shadow up to date and apply ``ops`` to it; close it cleanly.

        Disk space for the ops is reserved first (``posix_fallocate``; HDF5
        truncates the file to its used size on close), so a full disk is
        an ``OSError`` raised before HDF5 writes anything, never an HDF5 error
        in the middle of a write (after which closing the file can crash the
        process).  Any error leaves the published ``.partial`` as it was.
        """
        h = session = None
        claim = None
        try:
            self._ensure_shadow()
            claim = self._claim_shadow()
            self._reserve(self._behind + ops)
            # locking=False: a reader still holding this inode (an older .partial) must not stop the run
            h = h5py.File(self._shadow, "r+", locking=False)
            session = _Session(h, self._time_vars)
            for op in self._behind + ops:
                op.apply(session)
            session = None
            h.close()
            h = None
            if self._durable:
                _fsync_path(self._shadow)
            if claim is not None:
                os.close(claim)  # the shadow is closed and complete; it will be published next
                claim = None
        except BaseException as err:
            # the shadow may be half-written: never publish it, rebuild it next time
            self._shadow_ok = False
            session = None
            if h is not None:
                try:
                    h.close()
                except Exception:  # noqa: BLE001 - already failing; the shadow is discarded below
                    pass
                h = None
            _unlink(self._shadow)
            if claim is not None:
                os.close(claim)
                claim = None
            if isinstance(err, (RuntimeError, OSError)):  # HDF5 reports write failures as either
                reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())[:300]
                raise OSError(getattr(err, "errno", None) or errno.EIO,
                              f"{self.partial_path}: cannot write the next record ({reason}); every record "
                              "so far is kept: fix the cause (free disk space), then continue with --resume") from None
            raise

    def _claim_shadow(self) -> int | None:
        """An exclusive ``flock`` on the shadow's inode for the time it is written; returns its descriptor.

        The shadow is the previously published file, which a reader
        (:func:`wgfsim.io.read_file`) may still be reading under a shared
        ``flock``.  Then the store leaves that inode to the reader and starts
        a fresh shadow from the published file (a copy: O(file size), only
        while someone reads), so a reader never sees its file rewritten and
        the writer never waits.  None where the file system has no ``flock``.
        """
        for _ in range(3):
            fd = os.open(self._shadow, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return None  # no flock here: the readers' own checks remain (read_file retries)
            _unlink(self._shadow)  # the reader keeps its inode; ours is a fresh copy nobody has opened
            self._shadow_ok = False
            self._ensure_shadow()
        return None

    def _reserve(self, ops: list) -> None:
        """Reserve room in the shadow for ``ops`` (their data twice, plus HDF5 metadata); ENOSPC as an OSError."""
        need = _RESERVE_SLACK
        for op in ops:
            if isinstance(op, _Record):
                need += 64 + sum(np.asarray(v).nbytes for v in op.values.values())
            else:
                need += 64 + sum(len(str(v)) for v in op.attrs.values())
        need *= 2
        fd = os.open(self._shadow, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            try:
                os.posix_fallocate(fd, size, need)
            except OSError as err:
                if err.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    return  # a filesystem without preallocation: HDF5 reports a full disk itself
                raise OSError(err.errno, f"{err.strerror} (reserving {need} bytes for the next record)") from None
        finally:
            os.close(fd)

    def _commit(self, ops: list) -> None:
        """Apply ``ops`` to the shadow and publish it atomically as the ``.partial``."""
        self._write_shadow(ops)
        try:
            if self._use_links:
                _unlink(self._swap)
                try:
                    os.link(self.partial_path, self._swap)  # the previous file keeps a name ...
                except OSError:
                    self._use_links = False
            os.replace(self._shadow, self.partial_path)  # ... while readers switch to the new one atomically
            if self._use_links:
                os.replace(self._swap, self._shadow)  # ... and becomes the shadow, one commit behind
                self._behind = list(ops)
            else:
                self._shadow_ok = False  # the next commit copies the published file
            if self._durable:
                _fsync_path(self.partial_path.parent)
        except BaseException:
            self._shadow_ok = False
            raise
