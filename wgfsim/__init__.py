"""wgfsim: particle simulation of Wasserstein gradient flows and drifting fields.

Public calls::

    wgfsim.velocity(name, x, y, *, a=None, b=None, rng=None, backend="auto", **params)
    wgfsim.energy(name, x, y, **params)
    wgfsim.flows.names()
    wgfsim.lse_bary(x, y, g=None, *, eps, cost="sqeuclidean", exclude_diagonal=False, backend="auto")
    wgfsim.open_run(path) -> xarray.Dataset;  wgfsim.open_sweep(folder) -> xarray.Dataset

The math contract is ``docs/math.md``; every field is documented in ``docs/flows/``.
"""

__version__ = "0.1.0"

from . import analytic, flows, primitives  # noqa: E402
from .flows import Field, energy, velocity  # noqa: E402
from .primitives import lse_bary  # noqa: E402

__all__ = ["velocity", "energy", "Field", "flows", "primitives", "analytic", "lse_bary", "open_run", "open_sweep", "__version__"]


def __getattr__(name):
    # the readers pull in h5py and xarray: imported on first use, not with the package
    if name == "open_run":
        from .io import open_run

        return open_run
    if name == "open_sweep":
        from .io import open_sweep

        return open_sweep
    raise AttributeError(f"module 'wgfsim' has no attribute {name!r}")
