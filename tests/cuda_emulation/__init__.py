"""CPU emulation of the CUDA kernels (``wgfsim/primitives/cuda/*.cu``) with g++.

The unmodified kernel source is compiled against ``cuda_shim.h`` (threads as
cooperative fibers with a real ``__syncthreads`` barrier, shared memory,
``__ldg`` and friends) and launched through ctypes, so the parity tests check
the very source CuPy hands to NVRTC, on any machine with a C++ compiler.
"""

from .loader import EMULATOR, Emulator, EmulationError, compiler_available

__all__ = ["EMULATOR", "Emulator", "EmulationError", "compiler_available"]
