import pathlib
import sys

import numpy as np
import pytest

# the malformed-scenario cases are shared by several test modules
sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture
def rng():
    return np.random.default_rng(20260514)
