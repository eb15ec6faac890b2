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
# # Simulate vs fixed point on two distant modes
#
# wgfsim asks one question of each flow two ways, side by side in one file
# ([home](../index.md)):
#
# - **particles**: *simulate* the flow. The particles follow
#   $\dot x = v[q_t, p](x)$ with Euler steps $x \leftarrow x + \eta\, v(x)$.
# - **generator**: chase the flow's *fixed point* with an amortised one-step generator
#   (Deng et al.'s drifting regression): an MLP $G_\theta(z)$ regresses onto the frozen
#   target $G_\theta(z) + \eta\, v(G_\theta(z))$, one Adam step per drift target.
#
# Both see the same field, and the field vanishes when the samples match the target
# ($v[p, p] = 0$), but they need not behave alike. On two modes far apart compared with
# a kernel's bandwidth, the particle simulation of a kernel flow stalls: its field across
# the gap scales like $\exp(-s^2/(2\sigma^2))$ ([two atoms](../math.md#two-atoms)), so
# the 20/80 mass split never moves. Does the fixed-point chase stall too, **from the same
# start**? The generator's samples are not independent particles: they share the
# network's parameters, so a step that moves some samples moves others.
#
# `WGFSIM_TUTORIAL_N`, `WGFSIM_TUTORIAL_STEPS` and `WGFSIM_TUTORIAL_OUT` run it bigger or
# keep the file.

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
from wgfsim.runner import run_scenario
from wgfsim.scenario import loads

N = int(os.environ.get("WGFSIM_TUTORIAL_N", 128))
STEPS = int(os.environ.get("WGFSIM_TUTORIAL_STEPS", 200))
OUT = pathlib.Path(os.environ.get("WGFSIM_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="wgfsim_tutorial_"))

# %% [markdown]
# ## One scenario, both methods, one start
#
# `methods = ["particles", "generator"]` runs every flow both ways into one file. The
# `[generator]` table sets a small residual MLP (2-D latents, width 32, depth 2, He
# initialisation); `eval_n` is the number of generator samples, drawn from a fixed set of
# latents, scored at each record.
#
# `start = "init"` makes the comparison fair: before $t = 0$ the network is fitted to the
# `[init]` measure (`start_steps` Adam steps of regression onto an optimal matching with
# init samples), so the generator's first record holds the particles' 20/80 split. Without
# it, $t = 0$ is the untrained network, one blob between the modes.
#
# Two flows: the kernel flow `kl_kde` (bandwidth 0.5, the modes 8 bandwidths apart) and
# `w2_exact`, the exact Wasserstein-2 flow, which has no length scale.

# %%
scenario = f"""
name = "simulate_vs_fixed_point"

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

[run]
methods = ["particles", "generator"]
steps = {STEPS}
step_size = 0.1
record_every = 10
seeds = [0]

[generator]
architecture = "residual"   # fits [init] better than the default "mlp" with init "torch"
init = "he"                 # (start_mmd2 0.020 against 0.126 for the default, at these sizes)
latent_dim = 2
width = 32
depth = 2
learning_rate = 0.003
batch_size = 128
eval_n = {N}
start = "init"
start_steps = 300

[metrics]
names = ["mmd2", "mode_mass"]
"""
path = run_scenario(loads(scenario), OUT, progress=False, overwrite=True)
ds = wgfsim.open_run(path)
ds.indexes["run"].to_frame(index=False)

# %% [markdown]
# ## The start
#
# The fit's quality is stored: `start_mmd2` is the MMD² of the fitted generator's first
# samples to a fresh `[init]` sample (first record only), and the first record's
# `mode_mass` is the split it reached. A smooth network leaves a little mass in the gap.

# %%
gen = {"method": "generator"}  # `method` is an argument of .sel, so select it with a dict
print("start_mmd2:", ds.start_mmd2.sel(gen).isel(time=0).values.round(4))
left = ds.mode_mass.sel(mode="left")
left.isel(time=0).to_series()

# %%
assert np.all(np.abs(left.isel(time=0).values - 0.2) < 0.05)  # both methods start near 20/80

# %% [markdown]
# ## What each method does from there
#
# Time means different things for the two methods: `t = step * step_size` for the
# particles and `t = step * drift_step` for the generator (each training step regresses
# on one drift of size `drift_step`, 1 by default). Compare them by step, or by `t`
# knowing this. Here, by training or Euler step:

# %%
steps_shown = [0, len(ds.time) // 2, -1]
table = left.isel(time=steps_shown).to_pandas()
table.columns = [f"step {int(s)}" for s in ds.step.isel(time=steps_shown).values]
table

# %% [markdown]
# - **kl_kde, particles**: the left mode keeps its 20 %: the simulated kernel flow stalls.
# - **kl_kde, generator**: from the same 20/80, the split moves (here towards 50/50).
#   Chasing the fixed point is not simulating the flow: the samples share the network's
#   parameters, so a step that moves the samples of one mode moves the others. The
#   direction is not guaranteed: with the default network (`architecture = "mlp"`,
#   `init = "torch"`) and a 300-step fit we saw the small mode empty instead, the
#   generator collapsing onto the large one.
# - **w2_exact**: both methods carry the mass across.

# %%
kl = left.sel(flow="kl_kde")
assert np.allclose(kl.sel({"method": "particles"}).values, 0.2, atol=2 / N)  # never moves
kl_gen = kl.sel(gen).values.ravel()
assert abs(kl_gen[-1] - kl_gen[0]) > 0.05                                      # does not stall
assert abs(float(left.sel({"flow": "w2_exact", "method": "particles", "seed": 0}).isel(time=-1)) - 0.5) < 2 / N

# %% [markdown]
# ## How much of each step the network absorbs
#
# `fit_residual` (generator runs) is, for the training step after each record,
# $\mathrm{RMS}\,|G_\text{new}(z) - (G_\text{old}(z) + \eta v)| \,/\, \mathrm{RMS}\,|\eta v|$
# over the evaluation latents: 0 when the network moved every sample by the particle
# flow's Euler step, 1 when it moved nowhere, above 1 when it moved samples off the
# step's direction. Around 1 here: one Adam step of a small network absorbs little of
# each drift, which is why the generator needs many steps.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
styles = {"particles": "-", "generator": "--"}
for i in range(ds.sizes["run"]):
    run = ds.isel(run=i)
    flow, method = str(run.flow.values), str(run.method.values)
    colour = "C0" if flow == "kl_kde" else "C1"
    axes[0].plot(run.step, run.mode_mass.sel(mode="left"), ls=styles[method], color=colour, label=f"{flow}, {method}")
    if method == "generator":
        axes[1].plot(run.step, run.fit_residual, color=colour, label=flow)
axes[0].axhline(0.5, color="grey", lw=0.8)
axes[0].set(xlabel="step", ylabel="mass on the left mode", title="mass transfer from one start")
axes[0].legend(fontsize=7)
axes[1].set(xlabel="step", ylabel="fit residual", title="generator: share of the step not absorbed")
axes[1].legend(fontsize=7)
ax = axes[2]
ax.scatter(*ds.target.values.T, s=4, color="0.8", label="target")
for method, colour in [("particles", "C2"), ("generator", "C3")]:
    xy = ds.position.sel({"flow": "kl_kde", "method": method}).isel(time=-1).values.reshape(-1, 2)
    ax.scatter(*xy.T, s=5, color=colour, label=method)
ax.set(title=f"kl_kde, step {int(ds.step[-1])}", xlim=(-3, 3), ylim=(-1, 1))
ax.legend(fontsize=7, loc="upper center")
fig.tight_layout()

# %%
residual = ds.fit_residual.sel(gen).values
assert np.all(np.isnan(ds.fit_residual.sel({"method": "particles"}).values))  # particles have none
assert np.nanmin(residual) > 0 and np.nanmedian(residual) < 2

# %% [markdown]
# ## The other way round, and the study
#
# `[init] kind = "generator"` (with `n` only) starts the particles at the untrained
# generator's samples, so the particle flow runs from the measure that training starts
# from. `wgfsim study fixed_point` asks these questions at scale, in four parts (across
# the gap, where the fixed point lands, expressivity, batch stability); its results are in
# [Results](../results.md#simulate-vs-fixed-point-on-the-same-start-wgfsim-study-fixed_point):
#
# ```bash
# wgfsim study fixed_point -o outputs/fixed_point --part a
# ```
#
# The same scenario in a file runs with `wgfsim run FILE`, and
# `wgfsim plot outputs/simulate_vs_fixed_point.h5` draws the standard figures, with the
# particles solid and the generator dashed in the metrics plot. The generator's settings
# are in the [user guide](../user_guide.md#generator-only-with-generator-in-runmethods).
