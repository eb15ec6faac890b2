"""Deprecated: the store moved to :mod:`wgfsim.io` (``RunStore``, ``open_run``); this alias goes in wgfsim 0.3."""

import warnings

from .io.reader import open_run  # noqa: F401
from .io.schema import DIMS, RECORD_KEYS, SCALAR_METRICS  # noqa: F401
from .io.writer import RunStore  # noqa: F401

warnings.warn("wgfsim.store is deprecated; use wgfsim.io (open_run, RunStore)", DeprecationWarning, stacklevel=2)
