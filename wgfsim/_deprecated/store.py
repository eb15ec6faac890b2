"""Deprecated: the store moved to :mod:`wgfsim.io` (``RunStore``, ``open_run``); this alias goes in wgfsim 0.3."""


from ..io.reader import open_run  # noqa: F401
from ..io.schema import DIMS, RECORD_KEYS, SCALAR_METRICS  # noqa: F401
from ..io.writer import RunStore  # noqa: F401
