"""The package's layering: a lazy root, and the deprecated names kept as aliases of the new homes.

Truths: ``sys.modules`` of a fresh interpreter (what an import really loaded),
and object identity between an old name and the module it now aliases.
"""

import subprocess
import sys
import warnings

import pytest


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("statement", ["import wgfsim", "import wgfsim.io", "from wgfsim.io import open_run"])
def test_the_root_and_the_readers_load_no_kernel_compiler(statement):
    loaded = _loaded_after(statement)
    assert "numba" not in loaded
    assert "wgfsim.flows" not in loaded


def test_the_root_loads_the_flows_on_first_use():
    assert {"numba", "wgfsim.flows"} <= _loaded_after("import wgfsim; wgfsim.velocity")


@pytest.mark.parametrize(
    "old, new, name",
    [
        ("wgfsim.generator", "wgfsim.methods.generator", "MLPConfig"),
        ("wgfsim.generator.mlp", "wgfsim.methods.generator.mlp", "forward"),
        ("wgfsim.particles", "wgfsim.methods.particles", "SimulationError"),
        ("wgfsim.snapshot", "wgfsim.io.snapshot", "save_field"),
        ("wgfsim.store", "wgfsim.io.writer", "RunStore"),
    ],
)
def test_deprecated_names_warn_and_alias_the_new_module(old, new, name):
    import importlib

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    assert getattr(mod, name) is getattr(importlib.import_module(new), name)
