"""Stored files: the schema (:mod:`.schema`), the crash-safe writer (:mod:`.writer`),
the reader (:mod:`.reader`) and run checkpoints (:mod:`.checkpoint`).

Public: :func:`open_run`, :func:`open_sweep`, :func:`flow_params` (typed flow options), :class:`RunStore`, :data:`SCHEMA_VERSION`.
"""

from .reader import flow_params, open_run, open_sweep, read_file, resolve_path, run_index
from .schema import SCALAR_METRICS, SCHEMA_VERSION, SchemaError
from .writer import RunStore

__all__ = ["open_run", "open_sweep", "flow_params", "read_file", "resolve_path", "run_index", "RunStore", "SCALAR_METRICS",
           "SCHEMA_VERSION", "SchemaError"]
