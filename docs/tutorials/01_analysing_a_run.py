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
# # Analysing a run in xarray
#
# A run group is one HDF5 file that opens as an `xarray.Dataset`
# ([file format](../file_format.md)). This tutorial runs a small group, then
# reads it the way a study does:
#
# 1. select runs by their labels (the `run` dimension carries a `pandas.MultiIndex`);
# 2. open the file lazily with Dask and reduce the trajectory without loading it;
# 3. read the mode masses and check them against the positions;
# 4. compute half-times of the mass transfer;
# 5. draw a figure of our own.
#
# The experiment is the quickstart's, smaller, with the exact W2 flow in place of Sinkhorn:
# particles start on two modes 4 apart with 20/80 mass, the target holds 50/50. A kernel flow (`kl_kde`, bandwidth 0.5)
# cannot carry mass across the gap, because its field there scales like
# $\exp(-s^2 / (2\sigma^2))$ for a separation $s$ ([two atoms](../math.md#two-atoms));
# the exact W2 flow and sliced W2 can.
#
# The sizes are small so that the notebook runs in seconds (it is executed by the test
# suite). Set `WGFSIM_TUTORIAL_N` (particles) and `WGFSIM_TUTORIAL_STEPS` to run it
# bigger, and `WGFSIM_TUTORIAL_OUT` to keep the file.

# %%
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
from wgfsim.runner import run_scenario
from wgfsim.scenario import loads

N = int(os.environ.get("WGFSIM_TUTORIAL_N", 96))
STEPS = int(os.environ.get("WGFSIM_TUTORIAL_STEPS", 60))
OUT = pathlib.Path(os.environ.get("WGFSIM_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="wgfsim_tutorial_"))

# %% [markdown]
# ## Run a group
#
# A scenario is TOML text ([scenario files](../user_guide.md#scenario-files)); the same
# text in a file runs with `wgfsim run FILE`. Three flows times two seeds give six runs
# in one file.

# %%
scenario = f"""
name = "two_modes"

[target]
kind = "two_modes"
separation = 4.0
weights = [0.5, 0.5]
std = 0.1
n = {N}

[init]
kind = "two_modes"
separation = 4.0
weights = [0.2, 0.8]
std = 0.1
n = {N}

[[flow]]
name = "kl_kde"
bandwidth = 0.5

[[flow]]
name = "w2_exact"

[[flow]]
name = "sliced"
n_projections = 20

[run]
methods = ["particles"]
steps = {STEPS}
step_size = 0.15
record_every = 4
seeds = [0, 1]

[metrics]
names = ["mmd2", "mode_mass"]
"""
path = run_scenario(loads(scenario), OUT, progress=False, overwrite=True)
path

# %% [markdown]
# ## Open it and select runs by label
#
# `wgfsim.open_run` loads the file into memory and closes it. The `run` dimension is a
# MultiIndex over `flow`, `method` and `seed` (and any swept option), so `.sel` takes
# labels. Time is the `time` dimension; `t` (run, time) is each record's time
# `step * step_size`: plot against `t`, not against the index.

# %%
ds = wgfsim.open_run(path)
ds

# %%
ds.indexes["run"].to_frame(index=False)

# %%
w2 = ds.sel(flow="w2_exact")                        # the w2_exact runs: `run` is now the seed
sliced_seed1 = ds.sel({"flow": "sliced", "seed": 1})  # one run (a dict: `method` is also an argument of .sel)
final_mmd2 = ds.mmd2.isel(time=-1).groupby("flow").mean()
final_mmd2.to_series()

# %% [markdown]
# `reset_index("run")` gives the flat form (what `xr.open_dataset(path, engine="h5netcdf")`
# gives too), for example to write a subset with `to_netcdf`. Every run's full options are
# stored with it as JSON, so nothing needs the scenario to interpret the file.

# %%
import json

flat = ds.reset_index("run")
print(flat.flow.values)
print(json.loads(ds.flow_params.sel(flow="w2_exact", seed=0).values.item()))

# %% [markdown]
# ## Open it lazily with Dask
#
# With `chunks={}` the file stays on disk and each variable is a Dask array in the
# stored chunks (one record of one run for `position`). Reductions are built lazily and
# read snapshot by snapshot when computed, so a trajectory larger than memory can be
# reduced. Here: the mean first coordinate of the particles, per run and record.

# %%
lazy = wgfsim.open_run(path, chunks={})
print(type(lazy.position.data).__name__, lazy.position.data.chunksize)
mean_x = lazy.position.isel(dim=0).mean("particle")  # nothing read yet
mean_x = mean_x.compute()
lazy.close()
mean_x.isel(time=[0, -1]).to_pandas()

# %% [markdown]
# The mean first coordinate moves from $0.2 \cdot (-2) + 0.8 \cdot 2 = 1.2$ towards the
# target's $0$ as mass crosses the gap. It agrees with the positions read eagerly:

# %%
eager_mean = ds.position.isel(dim=0).mean("particle")
assert np.allclose(mean_x.values, eager_mean.values)
assert abs(float(eager_mean.isel(time=0).mean()) - 1.2) < 0.05

# %% [markdown]
# ## Mode masses
#
# `mode_mass` (run, time, mode) is the fraction of particles whose nearest mode centre is
# each mode; the centres and the target's masses are stored beside it
# (`mode_centre`, `target_mode_mass`). We recompute the final masses from the stored
# positions with plain NumPy, as a check of what the file says.

# %%
x_final = ds.position.isel(time=-1).values                          # (run, particle, dim)
centres = ds.mode_centre.values                                      # (mode, dim)
d2 = ((x_final[:, :, None, :] - centres[None, None, :, :]) ** 2).sum(-1)
by_hand = np.stack([(d2.argmin(-1) == k).mean(-1) for k in range(len(centres))], axis=-1)
assert np.allclose(by_hand, ds.mode_mass.isel(time=-1).values)

ds.mode_mass.isel(time=-1).sel(mode="left").to_series()

# %% [markdown]
# The kernel flow keeps its initial 20 % on the left; the transport flows move it to
# the target's 50 %.

# %%
left = ds.mode_mass.isel(time=-1).sel(mode="left")
assert np.allclose(left.sel(flow="kl_kde").values, 0.2, atol=2 / N)
assert np.all(left.sel(flow="w2_exact").values > 0.4)

# %% [markdown]
# ## Half-times
#
# `wgfsim.diagnostics.half_time` gives, per run, the time at which the mode-mass error
# $\sum_k |m_k(t) - w_k|$ first falls to half its initial value (interpolated between
# records; `inf` if it never does).

# %%
h = half_time(ds)
h.to_series()

# %%
assert np.all(np.isinf(h.sel(flow="kl_kde").values))
assert np.all(np.isfinite(h.sel(flow="w2_exact").values))

# %% [markdown]
# ## A custom plot
#
# The mass on the left mode against time, one line per run (the two seeds of a flow
# share a colour), and the particles' final first coordinates per flow.

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.6))
colours = dict(zip(np.unique(ds.flow.values), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
for i in range(ds.sizes["run"]):
    run = ds.isel(run=i)
    flow, seed = str(run.flow.values), int(run.seed.values)
    ax0.plot(run.t, run.mode_mass.sel(mode="left"), color=colours[flow],
             ls="-" if seed == 0 else "--", label=f"{flow}, seed {seed}")
ax0.axhline(float(ds.target_mode_mass.sel(mode="left")), color="grey", lw=0.8)
ax0.set(xlabel="t", ylabel="mass on the left mode", title="mass transfer")
ax0.legend(fontsize=7)
for flow, colour in colours.items():
    xs = ds.position.sel(flow=flow, seed=0).isel(time=-1, dim=0).values.ravel()
    ax1.hist(xs, bins=40, range=(-3, 3), histtype="step", color=colour, label=flow)
ax1.set(xlabel="first coordinate", ylabel="particles", title="final positions, seed 0")
ax1.legend(fontsize=7)
fig.tight_layout()
