"""The amortized method against the particle method on one scenario (Gretton et al. Section 4.3).

A one-step generator trained by drifting regression on the Sinkhorn flow is a
parametric approximation of the particle flow's end point, so on the same
target, flow and seed its final MMD^2 (Gaussian kernel, median heuristic,
against the held-out reference sample) should be close to the particles'.
The truth is the particle method's own final MMD^2, measured in the same file
by the same metric; the claim tested is "within a factor 2", with the
untrained generator as a sanity floor (it must have learned something).

Measured (2026-11-22, this file as is, ~150 s on a loaded 2-core machine):
particles 9.4e-4, generator 2.5e-3: the test FAILS (2.6x).  Tried and worse:
inner_steps = 3 (7.5e-3); learning_rate = 0.005 with 150 steps (5.2e-3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from wgfsim import runner, scenario
from wgfsim.store import open_run

SCENARIO = """
name = "gen_vs_particles"

[target]
kind = "eight_gaussians"
n = 512

[init]
kind = "gaussian"
dim = 2
std = 1.0
n = 256

[[flow]]
name = "sinkhorn"
epsilon = 0.1
max_iter = 30

[run]
methods = ["particles", "generator"]
steps = 100
step_size = 0.5
record_every = 100
seeds = [0]
dtype = "float32"

[generator]
latent_dim = 8
width = 64
depth = 2
learning_rate = 0.002
batch_size = 256
drift_step = 1.0

[metrics]
names = ["mmd2"]
reference_n = 1024
"""


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-11-22: generator 2.5e-3 vs particles 9.4e-4 (2.6x, target 2x) after 100 steps; "
    "longer training not yet tried (issue 4 stays open)",
)
def test_sinkhorn_generator_reaches_the_particle_mmd(tmp_path):
    sc = scenario.loads(SCENARIO)
    ds = open_run(runner.run_scenario(sc, tmp_path, progress=False))
    methods = [str(m) for m in ds["method"].values]
    mmd = np.asarray(ds["mmd2"].values, dtype=float)  # (run, time)
    final = dict(zip(methods, mmd[:, -1]))
    untrained = mmd[methods.index("generator"), 0]
    assert math.isfinite(final["particles"]) and math.isfinite(final["generator"])
    assert final["generator"] < 0.25 * untrained, (final, untrained)
    assert final["generator"] <= 2.0 * final["particles"], final
