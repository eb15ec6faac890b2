"""Studies: the top layer, each a module with ``main(argv)``, reachable as ``wgfsim study NAME``.

- ``mass_transfer``: half-times of the mode-mass error against separation (:mod:`.mass_transfer`);
- ``paper_fig2``: Gretton et al. Figure 2, drifting generators on five toys (:mod:`.paper_fig2`);
- ``curl``: curl maps of the non-gradient fields and the toy example (:mod:`.curl`);
- ``fixed_point``: simulate vs fixed point on the same start, four parts (:mod:`.fixed_point`).

Studies read stored files (:func:`wgfsim.open_run`, :func:`wgfsim.open_sweep`) and the flow registry;
they never re-parse a scenario.
"""

from __future__ import annotations

import importlib

__all__ = ["STUDIES", "run"]

STUDIES = {
    "mass_transfer": "half-times of the mode-mass error against separation^2/sigma^2 (two sweeps)",
    "paper_fig2": "Gretton et al. Fig. 2: final MMD^2 against each flow's hyper-parameter (a sweep folder)",
    "curl": "curl maps of the MMD, proxy and DA2 fields, and the toy example",
    "fixed_point": "particles vs the drifting generator from one start: gap, fixed point, expressivity, batches",
}


def run(name: str, argv=()) -> int:
    """Run study ``name`` with command-line arguments ``argv``."""
    if name not in STUDIES:
        raise ValueError(f"study: unknown study {name!r}; expected one of {list(STUDIES)}")
    return importlib.import_module(f".{name}", __name__).main(list(argv))
