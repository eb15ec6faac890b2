"""wgfsim: particle simulation of Wasserstein gradient flows and drifting fields.

Public calls::

    wgfsim.velocity(name, x, y, *, a=None, b=None, rng=None, backend="auto", **params)
    wgfsim.energy(name, x, y, **params)
    wgfsim.flows.names()
    wgfsim.lse_bary(x, y, g=None, *, eps, cost="sqeuclidean", exclude_diagonal=False, backend="auto")
    wgfsim.open_run(path) -> xarray.Dataset;  wgfsim.open_sweep(folder) -> xarray.Dataset

The math contract is ``docs/math.md``; every field is documented in ``docs/flows/``.

The package is lazy: ``import wgfsim`` (or ``import wgfsim.io``) loads no
kernel compiler; the flows, primitives and readers load on first use.
"""

from importlib import import_module as _import_module

from . import _deprecated
from ._version import __version__

__all__ = ["velocity", "energy", "Field", "flows", "primitives", "analytic", "lse_bary", "open_run", "open_sweep",
           "__version__"]

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "velocity": (".flows", "velocity"),
    "energy": (".flows", "energy"),
    "Field": (".flows", "Field"),
    "flows": (".flows", None),
    "primitives": (".primitives", None),
    "analytic": (".analytic", None),
    "lse_bary": (".primitives", "lse_bary"),
    "open_run": (".io", "open_run"),
    "open_sweep": (".io", "open_sweep"),
}

_deprecated.install(__name__)


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = _import_module(module, __name__)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'wgfsim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
