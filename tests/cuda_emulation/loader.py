"""Compile kernel instances with the system C++ compiler and launch them through ctypes.

:class:`Emulator` is a kernel *runtime* for :mod:`wgfsim.primitives.gpu` (the
role CuPy plays on a GPU): ``kernel(name)`` returns a callable launched as
``fn(grid, block, args)``, arrays are NumPy arrays with guard zones.  Kernel
instances are compiled in batches (``prepare(names)``), once per source: the
shared objects are cached under the temporary directory, keyed by the SHA-256
of the kernel source, the shim, the driver, the instance names and the
compiler, so later test sessions only load them.

``WGFSIM_CUDA_SOURCE`` (environment) replaces the kernel source file: the
mutation check points it at a modified copy.

Guard zones: every array the runtime allocates has ``GUARD`` elements of a
canary NaN on each side.  A kernel that reads past an input reads NaN (and
its result shows it); one that writes past an output breaks the canary, and
the launch raises.  Fresh outputs are filled with NaN, so a row the kernel
never writes is visible too.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

from wgfsim.primitives import gpu

_HERE = Path(__file__).parent
_SHIM = _HERE / "cuda_shim.h"
_DRIVER = _HERE / "driver.h"
# -O1: a third less compile time than -O2 for kernels that run at CPU speed either way
_FLAGS = ("-std=c++17", "-O1", "-shared", "-fPIC", "-fno-fast-math", "-w")
# instances per shared object: batches compile in parallel, one compiler per core
_BATCH = 12
GUARD = 16
# a NaN whose payload no arithmetic produces: a changed guard means an out-of-bounds write
_CANARY = {np.dtype(np.float32): np.uint32(0x7FC0DEAD).view(np.float32), np.dtype(np.float64): np.uint64(0x7FF8DEADBEEFDEAD).view(np.float64)}


class EmulationError(RuntimeError):
    """A launch that the emulation refuses or finds faulty (signature, barrier, out-of-bounds write)."""


def compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def compiler_available() -> bool:
    return compiler() is not None


def source_path() -> Path:
    return Path(os.environ.get("WGFSIM_CUDA_SOURCE") or gpu.source_path())


def _cache_dir() -> Path:
    path = Path(os.environ.get("WGFSIM_EMULATION_CACHE") or Path(tempfile.gettempdir()) / "wgfsim-cuda-emulation")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _compiler_id(cxx: str) -> str:
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else cxx


class _Library:
    def __init__(self, path: Path, names: list[str]):
        self.lib = ctypes.CDLL(str(path))
        self.index = {name: i for i, name in enumerate(names)}

    def kernel(self, name: str) -> "EmulatedKernel":
        i = self.index[name]
        launch = getattr(self.lib, f"wgf_launch_{i}")
        launch.restype = ctypes.c_int
        launch.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_longlong, ctypes.c_longlong]
        sig = getattr(self.lib, f"wgf_signature_{i}")
        sig.restype = ctypes.c_char_p
        return EmulatedKernel(name, launch, sig().decode())


class EmulatedKernel:
    """One compiled instance: ``fn(grid, block, args, blocks=None)`` as a CuPy ``RawKernel`` is called.

    ``blocks=(begin, end)`` runs only those blocks of the grid (linear index,
    x fastest): a sparse launch, to reach rows near 2^31 without the memory
    for the rows before them.
    """

    def __init__(self, name, launch, signature):
        self.name, self._launch, self.signature = name, launch, signature

    def __call__(self, grid, block, args, shared_mem=0, blocks=None):
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        if grid[2] != 1 or block[1] != 1 or block[2] != 1:
            raise EmulationError(f"{self.name}: only grids (x, y) of 1-D blocks are emulated, got {grid} x {block}")
        if len(args) != len(self.signature):
            raise EmulationError(f"{self.name}: expected {len(self.signature)} arguments, got {len(args)}")
        holders, arrays = [], []
        for k, (code, a) in enumerate(zip(self.signature, args)):
            holders.append(_convert(self.name, k, code, a))
            if isinstance(a, np.ndarray):
                arrays.append(a)
        params = (ctypes.c_void_p * len(holders))(*[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders])
        total = grid[0] * grid[1]
        b0, b1 = (0, total) if blocks is None else blocks
        if not 0 <= b0 <= b1 <= total:
            raise EmulationError(f"blocks: expected 0 <= begin <= end <= {total}, got {blocks}")
        with _LAUNCH_LOCK:  # the fiber scheduler is one per process
            rc = self._launch(params, grid[0], grid[1], block[0], b0, b1)
        if rc != 0:
            raise EmulationError(f"{self.name}: the threads of a block reached different numbers of __syncthreads()")
        for a in arrays:
            _check_guards(self.name, a)


_LAUNCH_LOCK = threading.Lock()


def _convert(name, k, code, a):
    if code == "p":
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise EmulationError(f"{name}: argument {k} is not C-contiguous")
            return ctypes.c_void_p(a.ctypes.data)
        if isinstance(a, ctypes.c_void_p):
            return a
    elif code == "i" and isinstance(a, np.int32):
        return ctypes.c_int32(int(a))
    elif code == "f" and isinstance(a, np.float32):
        return ctypes.c_float(float(a))
    elif code == "d" and isinstance(a, np.float64):
        return ctypes.c_double(float(a))
    raise EmulationError(f"{name}: argument {k} has the wrong type for the kernel's '{code}' parameter: {type(a).__name__}")


# ------------------------------------------------------------------ guarded arrays
_GUARDED = weakref.WeakValueDictionary()  # id(base) -> base, for the bases guarded_empty made


def guarded_empty(shape, dtype) -> np.ndarray:
    """A NaN-filled array with canary guard zones on both sides (registered for the launch check)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    base = np.full(n + 2 * GUARD, _CANARY[dtype], dtype=dtype)
    view = base[GUARD:GUARD + n]
    view[:] = np.nan
    _GUARDED[id(base)] = base
    return view.reshape(shape)


def _check_guards(name, a):
    base = a.base
    if base is None or _GUARDED.get(id(base)) is not base or a.dtype not in _CANARY:
        return
    if a.ctypes.data != base.ctypes.data + GUARD * a.itemsize or base.size != a.size + 2 * GUARD:
        return  # a view of part of a guarded array: its neighbours are data, not guards
    canary = _CANARY[a.dtype].view(np.uint32 if a.dtype == np.float32 else np.uint64)
    bits = base.view(np.uint32 if a.dtype == np.float32 else np.uint64)
    n = a.size
    if not (np.all(bits[:GUARD] == canary) and np.all(bits[GUARD + n:] == canary)):
        raise EmulationError(f"{name}: a kernel wrote outside an array of shape {a.shape}")


# ------------------------------------------------------------------ the runtime
class Emulator:
    """Kernel runtime of :mod:`wgfsim.primitives.gpu` on the CPU (``gpu.lse_shift(..., runtime=EMULATOR)``)."""

    name = "cuda-emulated"
    xp = np
    # an H100 SXM's SM count: the column split follows the same rule as on that device
    multiprocessors = 132

    def __init__(self):
        self._kernels: dict[str, EmulatedKernel] = {}
        self._libraries: list[_Library] = []
        self._lock = threading.Lock()

    # --- arrays
    def ascontiguousarray(self, a, dtype):
        out = guarded_empty(np.shape(a), dtype)
        out[...] = np.asarray(a, dtype=dtype)
        return out

    def empty(self, shape, dtype):
        return guarded_empty(shape if isinstance(shape, tuple) else (shape,), dtype)

    def zeros(self, shape, dtype):
        out = self.empty(shape, dtype)
        out[...] = 0
        return out

    def sm_count(self) -> int:
        return self.multiprocessors

    # --- kernels
    def prewarm(self, dtypes=("float32", "float64"), dims=(1, 2, 3, 17)) -> None:
        """Compile every instance a call with these dtypes and dimensions can launch, in parallel batches.

        Done once per session before the tests, it replaces many one-instance
        compilations (each paying the parse of the source) by a few batches
        spread over the CPUs.
        """
        self.prepare([name for dt in dtypes for d in dims for name in gpu.instance_names(dt, d)])

    def kernel(self, name: str) -> EmulatedKernel:
        fn = self._kernels.get(name)
        if fn is None:
            self.prepare([name])
            fn = self._kernels[name]
        return fn

    def prepare(self, names) -> None:
        """Compile (or load from the cache) every instance of ``names`` not yet loaded.

        Batches of ``_BATCH`` instances, one shared object each, compiled in
        parallel (one compiler per CPU).
        """
        with self._lock:
            todo = sorted(set(names) - set(self._kernels))
            if not todo:
                return
            batches = [todo[i:i + _BATCH] for i in range(0, len(todo), _BATCH)]
            workers = max(1, min(len(batches), os.cpu_count() or 1))
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                paths = list(pool.map(self._build, batches))
            for path, batch in zip(paths, batches):
                lib = _Library(path, batch)
                self._libraries.append(lib)
                for name in batch:
                    self._kernels[name] = lib.kernel(name)

    def _build(self, names: list[str]) -> Path:
        cxx = compiler()
        if cxx is None:
            raise EmulationError("no C++ compiler found (set CXX or install g++) to emulate the CUDA kernels")
        src = source_path()
        text = "\n".join(
            ['#include "cuda_shim.h"', '#include "driver.h"', f'#include "{src}"']
            + [f"WGF_EXPORT({i}, {name})" for i, name in enumerate(names)]
        ) + "\n"
        key = hashlib.sha256()
        for part in (src.read_bytes(), _SHIM.read_bytes(), _DRIVER.read_bytes(), text.encode(), " ".join(_FLAGS).encode(), _compiler_id(cxx).encode()):
            key.update(hashlib.sha256(part).digest())
        digest = key.hexdigest()[:32]
        out = _cache_dir() / f"kernels-{digest}.so"
        if out.exists():
            return out
        with tempfile.TemporaryDirectory(dir=_cache_dir()) as tmp:
            cpp = Path(tmp) / "instances.cpp"
            cpp.write_text(text)
            so = Path(tmp) / "instances.so"
            res = subprocess.run([cxx, *_FLAGS, f"-I{_HERE}", str(cpp), "-o", str(so)], capture_output=True, text=True)
            if res.returncode != 0:
                raise EmulationError(f"compiling {len(names)} kernel instance(s) of {src} failed:\n{res.stderr[-4000:]}")
            os.replace(so, out)  # atomic: a concurrent session sees the whole file or none
        return out


EMULATOR = Emulator()
