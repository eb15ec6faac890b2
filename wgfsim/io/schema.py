"""The stored dataset's schema: every variable, dimension and attribute, in one place.

One HDF5 file (netCDF4 flavour, written with h5netcdf) holds one run group:
every run of a scenario file (its flows, methods, seeds and hyper-parameters)
or one point of a sweep.  The writer (:mod:`wgfsim.io.writer`), the reader
(:mod:`wgfsim.io.reader`), the CLI's ``info`` and the docs
(``docs/file_format.md``) all take the lists below from here.

The file is the contract: a reader never re-parses the scenario.  Everything a
figure, a diagnostic or a study needs is stored:

- per run: ``flow``, ``method``, ``seed`` and the swept hyper-parameters as
  coordinates on ``run``; the flow's full options (defaults included) as JSON
  in ``flow_params``; the method's settings (step size, minibatch, generator
  training settings) as JSON in ``method_params``; ``t`` for every record of
  every method (``step * step_size`` for particles, ``step * drift_step`` for
  generators);
- per file: the target and reference samples, the target's ``mode_centre``
  and ``target_mode_mass``, and the scenario text only as provenance.

Files written before schema 2 carry no ``wgfsim_schema`` attribute; the
reader refuses them with a message naming both versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import metrics as _metrics

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_ATTR",
    "DIMS",
    "SCALAR_METRICS",
    "RUN_COORDS",
    "RUN_TEXT_VARS",
    "RECORD_KEYS",
    "RESERVED_ATTRS",
    "VARIABLES",
    "AXIS_METRICS",
    "Variable",
    "check_version",
]

SCHEMA_VERSION = 2
SCHEMA_ATTR = "wgfsim_schema"

# metrics with a last dimension of their own (mmd2_at over mmd2_bandwidth), from the metric records
AXIS_METRICS = {name: r.axis for name, r in _metrics.axis_records().items()}
DIMS = ("run", "time", "particle", "dim", "sample", "ref", "mode") + tuple(a.dim for a in AXIS_METRICS.values())

# scalar (run, time) metrics, from the metric records (wgfsim.metrics.RECORDS); only those a scenario asks
# for are stored.  A method's own per-record scalars (the generator's ``loss``) are declared by its record
# (wgfsim.methods), a flow's solver diagnostics (Sinkhorn's ``sinkhorn_iterations``, ``sinkhorn_error``) by
# its Flow record, and handed to the writer with the run (RunStore.create(extra_variables=...)).
SCALAR_METRICS = _metrics.scalar_names()
# coordinates every run has; swept hyper-parameters and data keys join them
RUN_COORDS = ("flow", "method", "seed")
# per-run JSON text written at creation
RUN_TEXT_VARS = ("flow_params", "method_params")
RECORD_KEYS = ("step", "t", "position", "velocity", "mode_mass") + SCALAR_METRICS + tuple(AXIS_METRICS)  # plus a method's extra variables
# attributes the store owns: a caller setting them would make the provenance lie
RESERVED_ATTRS = ("wgfsim_version", SCHEMA_ATTR, "start_time", "end_time", "status")


@dataclass(frozen=True)
class Variable:
    """One stored variable: its dimensions, on-disk dtype, ``long_name`` and ``units``."""

    dims: tuple[str, ...]
    dtype: str
    long_name: str
    units: str


VARIABLES: dict[str, Variable] = {
    "position": Variable(("run", "time", "particle", "dim"), "float32",
                         "particle positions (generator runs: samples on fixed latents)", "data"),
    "velocity": Variable(("run", "time", "particle", "dim"), "float32", "velocity field at the particles",
                         "data / time"),
    "target": Variable(("sample", "dim"), "float64", "target samples the flow saw", "data"),
    "reference": Variable(("ref", "dim"), "float64", "held-out target samples for the metrics", "data"),
    "mode_centre": Variable(("mode", "dim"), "float64", "centres of the target's modes", "data"),
    "target_mode_mass": Variable(("mode",), "float64", "fraction of the target sample nearest each mode", "1"),
    "step": Variable(("time",), "int64", "Euler (or generator training) step of each record", "1"),
    "t": Variable(("run", "time"), "float64",
                  "time: step * step_size (particles), step * drift_step (generator)", "time"),
    "flow_params": Variable(("run",), "str", "the flow's full options, defaults included (JSON)", ""),
    "method_params": Variable(("run",), "str", "the method's settings (JSON)", ""),
    # the metrics, as their records declare them
    **{r.name: Variable(r.dims, "float64", r.long_name, r.units) for r in _metrics.RECORDS.values()},
    # their coordinates (the values the scenario listed, e.g. mmd2_bandwidth)
    **{a.dim: Variable((a.dim,), "float64", a.long_name, a.units) for a in AXIS_METRICS.values()},
}


class SchemaError(ValueError):
    """A file that is not a wgfsim run file, or one of another schema version."""


def check_version(attrs, path) -> int:
    """The schema version of a file's global ``attrs``; refuse files this wgfsim cannot read."""
    version = attrs.get(SCHEMA_ATTR)
    written_by = attrs.get("wgfsim_version")
    if version is None:
        if written_by is None:
            raise SchemaError(f"{path}: not a wgfsim run file (no '{SCHEMA_ATTR}' or 'wgfsim_version' attribute)")
        raise SchemaError(
            f"{path}: written by wgfsim {written_by} in schema 1; this wgfsim reads schema {SCHEMA_VERSION} "
            "(per-run flow options, t for every method, mode centres as variables); re-run its scenario "
            "(the file's 'scenario' attribute) to rewrite it, or read it with wgfsim 0.1"
        )
    version = _integer_version(version, written_by, path)
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema {version} (written by wgfsim {written_by}); this wgfsim reads schema {SCHEMA_VERSION}"
        )
    return version


def _integer_version(version, written_by, path) -> int:
    """The schema attribute as an integer; ``2.7``, ``"2.7"`` or ``"two"`` is refused, never truncated to 2."""
    if hasattr(version, "item"):  # a NumPy scalar
        version = version.item()
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    if isinstance(version, str) and version.strip().isdigit():
        return int(version)
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if isinstance(version, float) and version.is_integer():
        return int(version)
    raise SchemaError(f"{path}: schema {version!r} (written by wgfsim {written_by}) is not a schema this wgfsim "
                      f"knows; this wgfsim reads schema {SCHEMA_VERSION}")
