"""Array namespace, backend choice and dtype policy; backends as records.

A backend is a :class:`Backend` record in a registry: its name, the array
module that holds its data, an availability check whose message says how to
install what is missing, its default dtype, and where its implementations of
the pairwise reductions live.  Three are built in:

``numpy``
    the chunked float64 dense reference (``primitives/dense.py``), the oracle;
``numba``
    the fused CPU kernels (``primitives/cpu.py``, block-sparse in ``primitives/prune.py``), the CPU default;
``cupy``
    the fused CUDA kernels (``primitives/gpu.py``), the GPU default.

Another (the test suite's CPU emulation of the CUDA kernels) registers
itself with :func:`register`.  Arithmetic outside the primitives uses the
array namespace of the inputs (``array_api_compat.array_namespace``), so the
same flow code runs on NumPy and CuPy arrays.  Asking for a backend that is
not available is an error, never a silent fallback.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from array_api_compat import array_namespace, is_cupy_array

__all__ = [
    "BACKENDS",
    "Backend",
    "array_namespace",
    "array_module",
    "cupy_status",
    "default_dtype",
    "get",
    "register",
    "registered",
    "resolve_backend",
    "to_numpy",
    "asarray_on",
]

GPU_INSTALL_HINT = 'install CuPy for your CUDA with `pip install "wgfsim[gpu]"` (cupy-cuda12x >= 14)'


def _always() -> tuple[bool, str]:
    return True, "ok"


@dataclass(frozen=True)
class Backend:
    """One backend of the pairwise reductions.

    ``module``: the array module holding its data (``numpy`` or ``cupy``),
    imported on first use; ``available()``: ``(ok, why)``, ``why`` naming the
    fix when not ok; ``default_dtype`` of a run's arrays; ``kernels``: the
    module path (or a zero-argument callable returning an object) with
    ``lse_shift(x, y, g, eps, cost, exclude_diagonal, unit, with_shift)`` and
    ``distance_sums(x, y)``, imported on first use; ``device_arrays``: whether
    its inputs are CuPy arrays (True) or NumPy arrays (False).
    """

    name: str
    module: str
    kernels: str | Callable[[], object]
    available: Callable[[], tuple[bool, str]] = _always
    default_dtype: type = np.float64
    device_arrays: bool = False

    def array_module(self):
        return importlib.import_module(self.module)

    def implementation(self):
        """The object holding ``lse_shift`` and ``distance_sums`` (imported lazily: CuPy is optional)."""
        return importlib.import_module(self.kernels) if isinstance(self.kernels, str) else self.kernels()


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add (or replace) a backend record; returns it."""
    if not backend.name or backend.name == "auto":
        raise ValueError(f"backend name: expected a non-empty name other than 'auto', got {backend.name!r}")
    _REGISTRY[backend.name] = backend
    return backend


def registered() -> tuple[str, ...]:
    """Names of the registered backends, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Backend:
    """The record of a registered backend (``auto`` is resolved by :func:`resolve_backend` first)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"backend: expected one of {('auto', *_REGISTRY)}, got {name!r}") from None


@functools.cache
def cupy_status() -> tuple[bool, str]:
    """Whether CuPy imports and sees a GPU, and if not, why (for error messages)."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False, f"CuPy is not installed: {GPU_INSTALL_HINT}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        return False, f"CuPy is installed but no CUDA device is usable ({err})"
    if n == 0:
        return False, "CuPy is installed but no NVIDIA GPU is visible"
    return True, "ok"


def _numba_status() -> tuple[bool, str]:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False, "Numba is not installed: `pip install numba`"
    return True, "ok"


register(Backend("numpy", module="numpy", kernels="wgfsim.primitives.dense"))
register(Backend("numba", module="numpy", kernels="wgfsim.primitives.prune", available=_numba_status))
register(Backend("cupy", module="cupy", kernels="wgfsim.primitives.gpu", available=cupy_status,
                 default_dtype=np.float32, device_arrays=True))


def __getattr__(name):
    # BACKENDS: the names a run may choose, read from the registry when asked (a backend registered
    # after import is a valid choice), not frozen at import
    if name == "BACKENDS":
        return ("auto", *registered())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_backend(backend: str, *arrays) -> str:
    """Return the concrete backend name for ``arrays``.

    ``auto`` picks ``cupy`` for CuPy arrays and ``numba`` for NumPy arrays.  An
    explicit choice must be registered and available, and its arrays must be
    on its device.
    """
    on_gpu = any(is_cupy_array(a) for a in arrays if a is not None)
    if backend == "auto":
        return "cupy" if on_gpu else "numba"
    record = get(backend)
    ok, why = record.available()
    if not ok:
        raise RuntimeError(f"backend={backend!r} was requested but {why}")
    if record.device_arrays and not on_gpu:
        raise ValueError(f"backend={backend!r} needs CuPy arrays; move them with wgfsim.backend.asarray_on")
    if on_gpu and not record.device_arrays:
        raise ValueError(f"backend={backend!r} runs on the CPU but got CuPy arrays; use backend='cupy' or 'auto'")
    return backend


def array_module(backend: str):
    """The array module that holds a run's data for ``backend`` (``numpy`` or ``cupy``)."""
    if backend == "auto":
        return get("cupy").array_module() if cupy_status()[0] else np
    record = get(backend)
    ok, why = record.available()
    if not ok:
        raise RuntimeError(f"backend={backend!r} was requested but {why}")
    return record.array_module()


def asarray_on(x, backend: str, dtype=None):
    """Copy or view ``x`` on the device of ``backend`` with ``dtype``."""
    xp = array_module(backend)
    return xp.asarray(x, dtype=dtype)


def to_numpy(x) -> np.ndarray:
    """Host copy of a NumPy or CuPy array (no copy for NumPy)."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def default_dtype(backend: str):
    """The backend's default dtype: float32 on the GPU (bandwidth-bound kernels), float64 on the CPU (and for ``auto``)."""
    return _REGISTRY[backend].default_dtype if backend in _REGISTRY else np.float64
