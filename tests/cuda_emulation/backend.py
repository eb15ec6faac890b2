"""The ``cuda-emulated`` backend record: ``primitives/gpu.py``'s host code on the emulated kernels.

Registered in :mod:`wgfsim.backend`'s registry by the test suite, so that
``primitives.lse_shift(..., backend="cuda-emulated")`` runs the CUDA source
through the same launches as on a GPU (tunings, column splits, the combine
step), with NumPy arrays.
"""

from __future__ import annotations

import functools

import numpy as np

from wgfsim import backend as backends
from wgfsim.primitives import gpu

from .loader import EMULATOR, compiler_available

NAME = "cuda-emulated"


class _Kernels:
    lse_shift = staticmethod(functools.partial(gpu.lse_shift, runtime=EMULATOR))
    distance_sums = staticmethod(functools.partial(gpu.distance_sums, runtime=EMULATOR))


def _status():
    if compiler_available():
        return True, "ok"
    return False, "no C++ compiler was found to emulate the CUDA kernels (install g++ or set CXX)"


def register() -> str:
    """Register the record (idempotent); returns its name."""
    if NAME not in backends.registered():
        backends.register(backends.Backend(NAME, module="numpy", kernels=lambda: _Kernels, available=_status, default_dtype=np.float32))
    return NAME
