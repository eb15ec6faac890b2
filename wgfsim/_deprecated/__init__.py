"""Module names kept as deprecated aliases until wgfsim 0.3, out of the package's own namespace.

``import wgfsim.store`` (or ``from wgfsim import generator``) still works: a
meta-path finder maps each old name to its new home and warns with a
``DeprecationWarning``. Nothing inside the package imports an old name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old name (under wgfsim) -> (new module, what to say)
ALIASES = {
    "store": ("wgfsim._deprecated.store", "use wgfsim.io (open_run, RunStore)"),
    "analysis": ("wgfsim._deprecated.analysis", "use wgfsim.diagnostics and wgfsim.studies"),
    "experiments": ("wgfsim._deprecated.experiments", "use wgfsim.studies.paper_fig2 (wgfsim study paper_fig2)"),
    "generator": ("wgfsim.methods.generator", "use wgfsim.methods.generator"),
    "particles": ("wgfsim.methods.particles", "use wgfsim.methods.particles"),
    "snapshot": ("wgfsim.io.snapshot", "use wgfsim.io.snapshot"),
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str, advice: str):
        self.target, self.advice = target, advice

    def create_module(self, spec):
        return None  # a plain module object, filled below

    def exec_module(self, module):
        old = module.__name__
        warnings.warn(f"{old} is deprecated and goes in wgfsim 0.3; {self.advice}", DeprecationWarning, stacklevel=2)
        new = importlib.import_module(self.target)
        module.__dict__.update({k: v for k, v in vars(new).items() if not k.startswith("__")})
        module.__doc__ = f"Deprecated alias of :mod:`{self.target}`."
        # submodules of the old package name (wgfsim.generator.mlp) resolve to the new ones
        if hasattr(new, "__path__"):
            module.__path__ = []
        module.__getattr__ = lambda name: getattr(new, name)


class _AliasFinder(importlib.abc.MetaPathFinder):
    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        head, _, tail = fullname.partition(".")
        if head != self.package:
            return None
        first, _, rest = tail.partition(".")
        if first not in ALIASES:
            return None
        new = ALIASES[first][0]
        if rest:  # wgfsim.generator.mlp -> wgfsim.methods.generator.mlp, itself under its old name
            new_name = f"{new}.{rest}"
            return importlib.util.spec_from_loader(fullname, _AliasLoader(new_name, ALIASES[first][1]))
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new, ALIASES[first][1]))


def install(package: str) -> None:
    """Put the alias finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _AliasFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder(package))
