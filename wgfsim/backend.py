"""Array namespace, backend choice and dtype policy.

Three backends compute the pairwise reductions of :mod:`wgfsim.primitives`:

``numpy``
    the chunked float64 dense reference (``primitives/dense.py``), the oracle;
``numba``
    the fused CPU kernels (``primitives/cpu.py``), the CPU default;
``cupy``
    the fused CUDA kernels (``primitives/gpu.py``), the GPU default.

Arithmetic outside the primitives uses the array namespace of the inputs
(``array_api_compat.array_namespace``), so the same flow code runs on NumPy and
CuPy arrays.  Asking for ``cupy`` where CuPy or a GPU is missing is an error,
never a silent fallback.
"""

from __future__ import annotations

import functools

import numpy as np
from array_api_compat import array_namespace, is_cupy_array

__all__ = [
    "BACKENDS",
    "array_namespace",
    "cupy_status",
    "default_dtype",
    "resolve_backend",
    "to_numpy",
    "asarray_on",
]

BACKENDS = ("auto", "numpy", "numba", "cupy")

GPU_INSTALL_HINT = 'install CuPy for your CUDA with `pip install "wgfsim[gpu]"` (cupy-cuda12x)'


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


def resolve_backend(backend: str, *arrays) -> str:
    """Return the concrete backend (``numpy`` | ``numba`` | ``cupy``) for ``arrays``.

    ``auto`` picks ``cupy`` for CuPy arrays and ``numba`` for NumPy arrays.  An
    explicit choice that does not match the arrays' device is an error.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    on_gpu = any(is_cupy_array(a) for a in arrays if a is not None)
    if backend == "auto":
        return "cupy" if on_gpu else "numba"
    if backend == "cupy":
        ok, why = cupy_status()
        if not ok:
            raise RuntimeError(f"backend='cupy' was requested but {why}")
        if not on_gpu:
            raise ValueError("backend='cupy' needs CuPy arrays; move them with wgfsim.backend.asarray_on")
        return "cupy"
    if on_gpu:
        raise ValueError(f"backend={backend!r} runs on the CPU but got CuPy arrays; use backend='cupy' or 'auto'")
    return backend


def array_module(backend: str):
    """The array module that holds a run's data for ``backend`` (``numpy`` or ``cupy``)."""
    if backend == "cupy":
        ok, why = cupy_status()
        if not ok:
            raise RuntimeError(f"backend='cupy' was requested but {why}")
        import cupy

        return cupy
    if backend == "auto":
        ok, _ = cupy_status()
        if ok:
            import cupy

            return cupy
    return np


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
    """float32 on the GPU (bandwidth-bound kernels), float64 on the CPU."""
    return np.float32 if backend == "cupy" else np.float64
