import pathlib
import sys

import numpy as np
import pytest

# the malformed-scenario cases are shared by several test modules
sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A stored run group made once per session: kl_kde and sinkhorn particles plus a kl_kde generator (1-D)."""
    from scenarios import build

    from wgfsim import runner, scenario

    text = build(name="tiny_run", flow=[{"name": "kl_kde", "bandwidth": 0.5}, {"name": "sinkhorn", "epsilon": 0.1}],
                 run={"methods": ["particles", "generator"]})
    return runner.run_scenario(scenario.loads(text, source="<tiny_run>"), tmp_path_factory.mktemp("tiny_run"),
                               progress=False)


@pytest.fixture
def rng():
    return np.random.default_rng(20260514)


class BackendCase:
    """A backend under test: its name and how to move arrays to and from its device."""

    def __init__(self, name):
        self.name = name
        self.on_gpu = name == "cupy"

    def put(self, *arrays, dtype=np.float64):
        """The arrays on this backend's device with ``dtype`` (None stays None)."""
        if self.on_gpu:
            import cupy

            return [None if a is None else cupy.asarray(a, dtype=dtype) for a in arrays]
        return [None if a is None else np.asarray(a, dtype=dtype) for a in arrays]

    def get(self, a):
        """A float64 NumPy copy of a result."""
        if self.on_gpu:
            a = a.get()
        return np.asarray(a, dtype=np.float64)

    def __repr__(self):
        return self.name


def _gpu_present():
    from wgfsim.backend import cupy_status

    return cupy_status()[0]


@pytest.fixture(
    params=[
        "numpy",
        "numba",
        "cuda-emulated",
        pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(not _gpu_present(), reason="needs CuPy and a visible NVIDIA GPU")]),
    ]
)
def backend(request):
    """Every backend of the primitives: the dense reference, Numba, the CUDA kernels emulated on the CPU (g++), CuPy on a GPU."""
    if request.param == "cuda-emulated":
        from cuda_emulation import backend as emulated, compiler_available

        if not compiler_available():
            pytest.skip("no C++ compiler to emulate the CUDA kernels")
        emulated.register()
        request.getfixturevalue("emulated_kernels")
    return BackendCase(request.param)


@pytest.fixture(scope="session")
def emulated_kernels():
    """The CPU emulation of the CUDA kernels, with the common instances compiled once (in parallel)."""
    from cuda_emulation import EMULATOR

    EMULATOR.prewarm()
    return EMULATOR
