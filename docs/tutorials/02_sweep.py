# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A sweep and its analysis
#
# How long does a flow take to move mass between two modes, as the gap between them
# grows? A kernel flow feels the far mode only through
# $\kappa = \exp(-s^2 / (2\sigma^2))$ for a separation $s$ and bandwidth $\sigma$
# ([two atoms](../math.md#two-atoms)), so its time to move the mass should grow like
# $1/\kappa$: a slope of $1/2$ for $\log(\text{half-time})$ against $x = s^2/\sigma^2$.
# A transport flow (sliced W2; in 1-D, one direction is exact W2) should not slow down.
#
# A list in `[target]` or `[init]` sweeps the data, so each separation needs its own
# target sample and its own file: that is `wgfsim sweep` (or `wgfsim.sweep.run_sweep`),
# which runs each point of the scenario's lists as one task, on local worker processes or
# on a Dask cluster, and `wgfsim.open_sweep`, which reads the folder back as one dataset.
#
# Sizes are small so that the notebook runs in seconds in the test suite;
# `WGFSIM_TUTORIAL_N`, `WGFSIM_TUTORIAL_SEEDS` and `WGFSIM_TUTORIAL_OUT` run it bigger or
# keep the files.

# %%
import math
import os
import pathlib
import tempfile
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

xr.set_options(display_style="text")  # plain-text reprs (the site shows no xarray stylesheet)

import wgfsim
from wgfsim.diagnostics import half_time
from wgfsim.scenario import loads
from wgfsim.sweep import run_sweep

N = int(os.environ.get("WGFSIM_TUTORIAL_N", 64))
SEEDS = list(range(int(os.environ.get("WGFSIM_TUTORIAL_SEEDS", 1))))
OUT = pathlib.Path(os.environ.get("WGFSIM_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="wgfsim_tutorial_"))

# %% [markdown]
# ## The scenario
#
# Three separations with $x = s^2/\sigma^2 \in \{4, 8, 12\}$ at $\sigma = 1$, in one
# dimension; particles start with 20/80 mass, the target holds 50/50. `separation` is
# listed in both `[target]` and `[init]` with the same values, so the sweep ties them
# (the particles start on the target's modes) instead of crossing them. Two flows times
# three separations are six points.

# %%
separations = [round(math.sqrt(x), 6) for x in (4, 8, 12)]
scenario = f"""
name = "gap"

[target]
kind = "two_modes"
separation = {separations}
weights = [0.5, 0.5]
std = 0.05
dim = 1
n = {N}

[init]
kind = "two_modes"
separation = {separations}
weights = [0.2, 0.8]
std = 0.05
dim = 1
n = {N}

[[flow]]
name = "kl_kde"
bandwidth = 1.0

[[flow]]
name = "sliced"
n_projections = 1

[run]
methods = ["particles"]
steps = 300
step_size = 1.0
record_every = 10
seeds = {SEEDS}

[metrics]
names = ["mode_mass"]
"""
sc = loads(scenario)

# %% [markdown]
# ## Run it on local workers
#
# `workers=2` runs the points on two spawned processes, each with one numba thread. The
# same from the command line, with the scenario in a file:
#
# ```bash
# wgfsim sweep gap.toml -o outputs --workers 2
# ```

# %%
sweep_dir = OUT / "gap"
result = run_sweep(sc, sweep_dir, workers=2, progress=False)
print(result)
sorted(p.name for p in sweep_dir.iterdir())

# %% [markdown]
# Every point has its own file, named by its swept values and a hash of everything that
# determines the run, and `sweep.json` lists them. Running the sweep again skips the
# finished points (and continues any that a killed sweep left), so an interrupted sweep
# is finished by running the same command:

# %%
again = run_sweep(sc, sweep_dir, workers=2, progress=False)
print(again)
assert len(again.skipped) == len(result.finished) and not again.finished

# %% [markdown]
# ## The same on a Dask cluster
#
# With `wgfsim[dist]` installed, the executor is one argument. A `LocalCluster` started
# for the sweep, or an existing `dask.distributed` scheduler whose workers have wgfsim
# installed and see the output folder (a shared file system):
#
# ```bash
# wgfsim sweep gap.toml -o outputs --dask-local 2
#
# dask scheduler --port 8786 &                            # on the scheduler's machine
# dask worker tcp://HOST:8786 --nworkers 4 --nthreads 1 & # on each worker machine
# wgfsim sweep gap.toml -o outputs --scheduler tcp://HOST:8786
# ```
#
# In Python: `run_sweep(sc, sweep_dir, dask_local=2)` or
# `run_sweep(sc, sweep_dir, scheduler="tcp://HOST:8786")`. The files are the same
# whichever executor wrote them.

# %% [markdown]
# ## Read it back
#
# `open_sweep` gives one dimension per swept key (the grid layout), with `status` per
# point (`complete`, `failed`, `missing` for points not run yet):

# %%
grid = wgfsim.open_sweep(sweep_dir)
grid[["mode_mass", "status"]]

# %% [markdown]
# `layout="runs"` gives the same data as one `run` dimension with a MultiIndex, exactly
# what `open_run` gives for one file:

# %%
runs = wgfsim.open_sweep(sweep_dir, layout="runs")
runs.indexes["run"].to_frame(index=False)

# %% [markdown]
# ## Half-times against the gap
#
# `half_time` works on any layout; on the grid it returns one value per flow and
# separation (the mean over seeds, if several, is taken below).

# %%
h = half_time(grid)
if "seed" in h.dims:
    h = h.mean("seed")
x = (grid["target.separation"] ** 2) / 1.0**2   # s^2 / sigma^2
h.assign_coords(x=x).to_pandas()

# %% [markdown]
# The slope of $\log(\text{half-time})$ against $x$: about $1/2$ for the kernel flow
# (the $1/\kappa$ law; the first point is not yet in the asymptotic regime), and zero for
# the transport flow, whose half-time is the same at every gap (it moves the mass within
# the first record, so its half-time is the record spacing's resolution).

# %%
slope_kernel = np.polyfit(x.values, np.log(h.sel(flow="kl_kde").values), 1)[0]
slope_transport = np.polyfit(x.values, np.log(h.sel(flow="sliced").values), 1)[0]
print(f"kl_kde slope {slope_kernel:.2f}, sliced slope {slope_transport:.2f}")
assert 0.25 < slope_kernel < 0.75
assert abs(slope_transport) < 0.1

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for flow in h.flow.values:
    ax.plot(x, h.sel(flow=flow), marker="o", label=str(flow))
x0, h0 = float(x[0]), float(h.sel(flow="kl_kde")[0])
ax.plot(x, h0 * np.exp(0.5 * (x - x0)), ls="--", color="0.5", label="slope 1/2 (1/kappa)")
ax.set(yscale="log", xlabel=r"$s^2/\sigma^2$", ylabel="half-time of the mode-mass error",
       title="mass transfer across a growing gap")
ax.legend()
fig.tight_layout()

# %% [markdown]
# The study `wgfsim study mass_transfer` does this at scale: more separations, every
# kernel flow at one $\sigma$, and the slope table; its results are in
# [Results](../results.md).
