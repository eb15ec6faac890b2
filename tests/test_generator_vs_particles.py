"""The amortized method against the particle method on one scenario (Gretton et al. Section 4.3).

A one-step generator trained by drifting regression on the Sinkhorn flow is a
parametric approximation of the particle flow's end point, so on the same
target, flow and seed its final MMD^2 (Gaussian kernel, median heuristic,
against the held-out reference sample) should be close to the particles'.
The truth is the particle method's own final MMD^2, measured in the same file
by the same metric; the claim tested is "within a factor 2", with the
untrained generator as a sanity floor (it must have learned something).

Two settings matter, both measured (2026-11-22, 2 cores):

- ``eval_n = 4096``: the MMD^2 of n i.i.d. draws of the *exact* target
  against the 1024-point reference is 1.5e-3 +- 1.2e-3 at n = 256 (20
  draws), already above the particles' 9.4e-4 (the particles are not i.i.d.:
  they sit on the 512 target points).  Scoring the generator on 256 samples
  would test the estimator's bias, not the generator.
- a cosine learning-rate schedule and a moving average of the parameters:
  with a constant rate the generator's final MMD^2 jitters between 0.9e-3
  and 3.3e-3 from one record to the next (fresh latents, noisy drift); 300
  steps with the schedule gave 1.15e-3, with the average (0.98) 1.12e-3.
  (``drift_step`` cannot damp it: with Adam and one inner step, eta only
  rescales a gradient Adam normalises; 0.5 and 1.0 gave identical runs.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from wgfsim import runner, scenario
from wgfsim.io import open_run

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
steps = 300
step_size = 0.5
record_every = 300
seeds = [0, 1]
dtype = "float32"

[generator]
latent_dim = 8
width = 64
depth = 2
learning_rate = 0.002
batch_size = 256
drift_step = 1.0
eval_n = 4096
lr_schedule = "cosine"
ema_decay = 0.98

[metrics]
names = ["mmd2"]
reference_n = 1024
"""


@pytest.mark.slow
def test_sinkhorn_generator_reaches_the_particle_mmd(tmp_path):
    sc = scenario.loads(SCENARIO)
    ds = open_run(runner.run_scenario(sc, tmp_path, progress=False))
    for seed in (0, 1):
        runs = ds.where(ds["seed"] == seed, drop=True) if "seed" in ds.coords else ds
        final = {str(m): float(v) for m, v in zip(runs["method"].values, runs["mmd2"].isel(time=-1).values)}
        untrained = float(runs["mmd2"].isel(time=0).values[list(runs["method"].values).index("generator")])
        assert math.isfinite(final["particles"]) and math.isfinite(final["generator"]), (seed, final)
        assert final["generator"] < 0.05 * untrained, (seed, final, untrained)
        assert final["generator"] <= 2.0 * final["particles"], (seed, final)
