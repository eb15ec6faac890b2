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
# the 20/80 mass split never moves. The generator's samples are not independent particles:
# they share the network's parameters, so a step that moves some samples moves others.
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
# ## One scenario, both methods
#
# `methods = ["particles", "generator"]` runs every flow both ways into one file. The
# `[generator]` table sets a small MLP (2-D latents, width 32, depth 2); `eval_n` is the
# number of generator samples, drawn from a fixed set of latents, scored at each record.
# Two flows: the kernel flow `kl_kde` (bandwidth 0.5, the modes 8 bandwidths apart) and
# `sinkhorn` with a small $\varepsilon$, a transport flow.

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
name = "sinkhorn"
epsilon = 0.05
max_iter = 10

[run]
methods = ["particles", "generator"]
steps = {STEPS}
step_size = 0.1
record_every = 10
seeds = [0]

[generator]
architecture = "residual"   # spread out from the start (the default "mlp" with init "torch" starts
init = "he"                 # collapsed at the origin, between the two modes)
latent_dim = 2
width = 32
depth = 2
learning_rate = 0.003
batch_size = 128
eval_n = {N}

[metrics]
names = ["mmd2", "mode_mass"]
"""
path = run_scenario(loads(scenario), OUT, progress=False, overwrite=True)
ds = wgfsim.open_run(path)
ds.indexes["run"].to_frame(index=False)

# %% [markdown]
# Time means different things for the two methods: `t = step * step_size` for the
# particles and `t = step * drift_step` for the generator (each training step regresses
# on one drift of size `drift_step`, 1 by default). Compare them by step, or by `t`
# knowing this. Here, by training or Euler step:

# %%
left = ds.mode_mass.sel(mode="left")
table = left.isel(time=[0, len(ds.time) // 2, -1]).to_pandas()
table.columns = [f"step {int(s)}" for s in ds.step.isel(time=[0, len(ds.time) // 2, -1]).values]
table

# %% [markdown]
# The generator does not start from `[init]`: its first samples are those of a randomly
# initialised network, so its initial masses differ from the particles' 20/80.
#
# What the numbers say:
#
# - **kl_kde, particles**: the left mode keeps its 20 %: the simulated kernel flow stalls.
# - **kl_kde, generator**: the mass moves towards 50/50. Chasing the fixed point is not
#   simulating the flow: every sample moves with the shared parameters.
# - **sinkhorn**: both methods carry the mass across.

# %%
kl = left.sel(flow="kl_kde")  # `method` is an argument of .sel, so select it with a dict
assert np.allclose(kl.sel({"method": "particles"}).values, 0.2, atol=2 / N)  # never moves
kl_gen = kl.sel({"method": "generator"}).values.ravel()
assert abs(kl_gen[-1] - 0.5) < abs(kl_gen[0] - 0.5)                     # moves towards the target
assert float(left.sel({"flow": "sinkhorn", "method": "particles", "seed": 0}).isel(time=-1)) > 0.4

# %% [markdown]
# ## MMD² against step, and the final samples
#
# The stored `mmd2` (against a held-out reference sample) tells the same story, and the
# final positions show where each method left its samples.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
styles = {"particles": "-", "generator": "--"}
for i in range(ds.sizes["run"]):
    run = ds.isel(run=i)
    flow, method = str(run.flow.values), str(run.method.values)
    axes[0].plot(run.step, run.mmd2, ls=styles[method], color="C0" if flow == "kl_kde" else "C1",
                 label=f"{flow}, {method}")
axes[0].set(yscale="log", xlabel="step", ylabel="MMD$^2$", title="distance to the target")
axes[0].legend(fontsize=7)
for ax, flow in zip(axes[1:], ["kl_kde", "sinkhorn"]):
    ax.scatter(*ds.target.values.T, s=4, color="0.8", label="target")
    for method, colour in [("particles", "C2"), ("generator", "C3")]:
        xy = ds.position.sel({"flow": flow, "method": method}).isel(time=-1).values.reshape(-1, 2)
        ax.scatter(*xy.T, s=5, color=colour, label=method)
    ax.set(title=f"{flow}, step {int(ds.step[-1])}", xlim=(-3, 3), ylim=(-1, 1))
    ax.legend(fontsize=7, loc="upper center")
fig.tight_layout()

# %% [markdown]
# ## From the command line
#
# The same scenario in a file runs with `wgfsim run FILE`, and
# `wgfsim plot outputs/simulate_vs_fixed_point.h5` draws the standard figures, with the
# particles solid and the generator dashed in the metrics plot. The generator's settings
# are in the [user guide](../user_guide.md#generator-only-with-generator-in-runmethods).
