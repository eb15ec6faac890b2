"""Deprecated: :mod:`wgfsim.studies.paper_fig2` (``wgfsim study paper_fig2`` replaces
``python -m wgfsim.experiments``).  This alias goes in wgfsim 0.3."""


from .. import flows as _flows
from ..studies.paper_fig2 import TOYS, best, collect, figure, markdown_table, summarise  # noqa: F401

# the swept hyper-parameter of each flow, now the registry's ``hyper``
HYPER = {n: _flows.get(n).hyper for n in _flows.names() if _flows.get(n).hyper}
FLOWS = tuple(HYPER)
