"""Malformed scenarios and the message each must produce (shared by the scenario and CLI tests).

``CASES`` is a list of ``(id, toml_text, expected_message_substring)``.  Each
text is a valid scenario (``VALID``) with one mistake; the substring pins the
key path and what was expected, and never contains the file name, so a test
may load the text under any name (``wgfsim.scenario.loads(text, source=...)``
or a file for ``wgfsim validate``, which must exit with code 2).
"""

from __future__ import annotations

import wgfsim

VALID = """\
name = "case"

[target]
kind = "two_modes"
separation = 4.0
weights = [0.5, 0.5]
std = 0.1
n = 64

[init]
kind = "two_modes"
separation = 4.0
weights = [0.2, 0.8]
std = 0.1
n = 64

[[flow]]
name = "kl_kde"
bandwidth = 0.5

[[flow]]
name = "sinkhorn"
epsilon = 0.05

[run]
methods = ["particles"]
steps = 20
step_size = 0.1
record_every = 5
seeds = [0, 1]
backend = "auto"
"""


def _edit(old: str, new: str, text: str = VALID) -> str:
    """``text`` with the one occurrence of ``old`` replaced by ``new``."""
    if text.count(old) != 1:
        raise AssertionError(f"malformed_scenarios: {old!r} occurs {text.count(old)} times in the base scenario")
    return text.replace(old, new)


def _append(extra: str) -> str:
    return VALID + "\n" + extra


FLOWS = ", ".join(wgfsim.flows.names())  # the registry, so a new flow changes no test
RUN_KEYS = "methods, steps, step_size, record_every, seeds, backend, dtype, minibatch, record_velocity, prune_tol"

CASES: list[tuple[str, str, str]] = [
    # -- TOML itself
    ("toml_syntax", _edit("[init]", "[init"), "line 10: invalid TOML: Expected ']' at the end of a table declaration"),
    ("toml_duplicate_key", _edit('name = "case"', 'name = "case"\nname = "again"'), "line 2: invalid TOML: Cannot overwrite a value"),
    # -- top level
    ("missing_name", _edit('name = "case"\n', ""), 'name: missing; expected a scenario name, e.g. name = "quickstart"'),
    ("name_not_string", _edit('name = "case"', "name = 3"), 'name: got 3; expected a non-empty string, e.g. name = "quickstart"'),
    ("unknown_top_key", _edit('name = "case"', 'name = "case"\nseeds = [0]'), "seeds: unknown key; expected one of name, description, target, init, flow, run, metrics, generator"),
    ("misspelt_flow_tables", VALID.replace("[[flow]]", "[[flows]]"), "flows: unknown key; expected one of name, description, target, init, flow, run, metrics, generator; did you mean 'flow'?"),
    ("missing_target", _edit('[target]\nkind = "two_modes"\nseparation = 4.0\nweights = [0.5, 0.5]\nstd = 0.1\nn = 64\n', ""), "target: missing; expected a [target] table"),
    ("missing_init", _edit('[init]\nkind = "two_modes"\nseparation = 4.0\nweights = [0.2, 0.8]\nstd = 0.1\nn = 64\n', ""), "init: missing; expected an [init] table"),
    ("no_flow", _edit('[[flow]]\nname = "kl_kde"\nbandwidth = 0.5\n\n[[flow]]\nname = "sinkhorn"\nepsilon = 0.05\n', ""), "flow: missing; expected at least one [[flow]] table"),
    ("flow_single_table", _edit('[[flow]]\nname = "kl_kde"\nbandwidth = 0.5\n\n[[flow]]\nname = "sinkhorn"\nepsilon = 0.05\n', '[flow]\nname = "kl_kde"\n'), "flow: a single [flow] table; expected an array of tables: write [[flow]] (double brackets)"),
    ("missing_run", _edit(VALID[VALID.index("[run]"):], ""), "run: missing; expected a [run] table"),
    # -- [run]
    ("missing_steps", _edit("steps = 20\n", ""), "run.steps: missing; expected a positive integer (the number of Euler steps)"),
    ("missing_step_size", _edit("step_size = 0.1\n", ""), "run.step_size: missing; expected a positive number (eta, the Euler step)"),
    ("steps_string", _edit("steps = 20", 'steps = "100"'), 'run.steps: got "100" (a string); expected a positive integer (the number of Euler steps)'),
    ("steps_float", _edit("steps = 20", "steps = 20.0"), "run.steps: got 20.0 (a float); expected a positive integer"),
    ("steps_zero", _edit("steps = 20", "steps = 0"), "run.steps: got 0; expected a positive integer"),
    ("step_size_negative", _edit("step_size = 0.1", "step_size = -0.1"), "run.step_size: got -0.1; expected a positive number (eta, the Euler step)"),
    ("step_size_bool", _edit("step_size = 0.1", "step_size = true"), "run.step_size: got true (a boolean); expected a positive number"),
    ("record_every_zero", _edit("record_every = 5", "record_every = 0"), "run.record_every: got 0; expected a positive integer (steps between records)"),
    ("record_every_over_steps", _edit("record_every = 5", "record_every = 50"), "run.record_every: 50 is more than run.steps = 20; expected at most 20 so that something is recorded"),
    ("misspelt_run_key", _edit("steps = 20", "steps = 20\nstepz = 3"), f"run.stepz: unknown key; expected one of {RUN_KEYS}; did you mean 'steps'?"),
    ("unknown_method", _edit('methods = ["particles"]', 'methods = ["particle"]'), "run.methods[0]: unknown method \"particle\"; expected one of particles, generator; did you mean 'particles'?"),
    ("methods_empty", _edit('methods = ["particles"]', "methods = []"), 'run.methods: got [] (a list); expected a non-empty list drawn from particles, generator, e.g. ["particles", "generator"]'),
    ("methods_string", _edit('methods = ["particles"]', 'methods = "particles"'), 'run.methods: got "particles" (a string); expected a non-empty list drawn from particles, generator'),
    ("unknown_backend", _edit('backend = "auto"', 'backend = "gpu"'), 'run.backend: unknown backend "gpu"; expected one of auto, numpy, numba, cupy'),
    ("unknown_dtype", _edit('backend = "auto"', 'backend = "auto"\ndtype = "float16"'), 'run.dtype: unknown dtype "float16"; expected one of float64, float32'),
    ("seeds_not_list", _edit("seeds = [0, 1]", "seeds = 0"), "run.seeds: got 0; expected a non-empty list of integers >= 0, e.g. seeds = [0, 1, 2]"),
    ("seed_negative", _edit("seeds = [0, 1]", "seeds = [0, -1]"), "run.seeds[1]: got -1; expected an integer >= 0"),
    ("seed_repeated", _edit("seeds = [0, 1]", "seeds = [1, 1]"), "run.seeds[1]: seed 1 is listed twice; expected distinct seeds"),
    ("minibatch_negative", _edit("seeds = [0, 1]", "seeds = [0, 1]\nminibatch = -8"), "run.minibatch: got -8; expected an integer >= 0 (0 for the full target sample)"),
    ("record_velocity_string", _edit("seeds = [0, 1]", 'seeds = [0, 1]\nrecord_velocity = "yes"'), 'run.record_velocity: got "yes" (a string); expected true or false'),
    # -- [[flow]]
    ("unknown_flow", _edit('name = "kl_kde"', 'name = "kl_kd"'), f"flow[0].name: unknown flow \"kl_kd\"; expected one of {FLOWS}; did you mean 'kl_kde'?"),
    ("flow_without_name", _edit('name = "sinkhorn"\n', ""), f"flow[1].name: missing; expected a flow name, one of {FLOWS}"),
    ("flow_name_list", _edit('name = "sinkhorn"', 'name = ["sinkhorn", "mmd"]'), "flow[1].name: got ['sinkhorn', 'mmd'] (a list); expected one flow name per [[flow]] table"),
    ("option_not_taken", _edit("epsilon = 0.05", "epsilon = 0.05\nbandwidth = 0.5"), "flow[1].bandwidth: unknown option of flow 'sinkhorn'; expected one of epsilon, cost, tol, max_iter, scaling, warm_start"),
    ("option_misspelt", _edit("bandwidth = 0.5", "bandwith = 0.5"), "flow[0].bandwith: unknown option of flow 'kl_kde'; expected one of bandwidth, kernel, exclude_self; did you mean 'bandwidth'?"),
    ("bandwidth_negative", _edit("bandwidth = 0.5", "bandwidth = -0.5"), "flow[0].bandwidth: got -0.5 (a float); expected a positive number, a list of them, or \"median\" (flow 'kl_kde')"),
    ("bandwidth_string", _edit("bandwidth = 0.5", 'bandwidth = "wide"'), "flow[0].bandwidth: got \"wide\" (a string); expected a positive number, a list of them, or \"median\" (flow 'kl_kde')"),
    ("sweep_bad_element", _edit("bandwidth = 0.5", "bandwidth = [0.25, 0.5, -1.0]"), "flow[0].bandwidth[2]: got -1.0 (a float); expected a positive number, a list of them, or \"median\" (flow 'kl_kde')"),
    ("sweep_empty", _edit("bandwidth = 0.5", "bandwidth = []"), "flow[0].bandwidth: an empty list sweeps nothing; expected a value or a non-empty list of values to sweep"),
    ("bad_kernel", _edit("bandwidth = 0.5", 'bandwidth = 0.5\nkernel = "cauchy"'), "flow[0].kernel: got \"cauchy\" (a string); expected one of ('gaussian', 'laplace') (flow 'kl_kde')"),
    ("duplicate_flow", _append('[[flow]]\nname = "kl_kde"\nbandwidth = 0.5\n'), "flow[2]: repeats the runs of flow[0]; expected each [[flow]] table to differ in some option"),
    # -- [target] / [init]
    ("missing_kind", _edit('kind = "two_modes"\nseparation = 4.0\nweights = [0.5, 0.5]', 'separation = 4.0\nweights = [0.5, 0.5]'), "target.kind: missing; expected a distribution kind, one of gaussian, two_modes, mixture"),
    ("unknown_kind", _edit('kind = "two_modes"\nseparation = 4.0\nweights = [0.5, 0.5]', 'kind = "two_mode"\nseparation = 4.0\nweights = [0.5, 0.5]'), "target.kind: unknown kind \"two_mode\"; expected one of gaussian, two_modes, mixture, moons, eight_gaussians, checkerboard, spiral, rings, swiss_roll, from_file; did you mean 'two_modes'?"),
    ("weights_not_summing", _edit("weights = [0.5, 0.5]", "weights = [0.5, 0.4]"), "target.weights: weights sum to 0.9; expected 2 non-negative numbers summing to 1"),
    ("weights_three", _edit("weights = [0.2, 0.8]", "weights = [0.2, 0.3, 0.5]"), "init.weights: got 3 weights for 2 modes; expected 2 non-negative numbers summing to 1"),
    ("target_n_zero", _edit("std = 0.1\nn = 64\n\n[init]", "std = 0.1\nn = 0\n\n[init]"), "target.n: got 0; expected a positive integer (the number of target samples the flow sees)"),
    ("init_n_negative", _edit("std = 0.1\nn = 64\n\n[[flow]]", "std = 0.1\nn = -5\n\n[[flow]]"), "init.n: got -5; expected a positive integer (the number of particles)"),
    ("init_n_string", _edit("std = 0.1\nn = 64\n\n[[flow]]", 'std = 0.1\nn = "64"\n\n[[flow]]'), 'init.n: got "64" (a string); expected a positive integer (the number of particles)'),
    ("separation_negative", _edit("separation = 4.0\nweights = [0.5, 0.5]", "separation = -4.0\nweights = [0.5, 0.5]"), "target.separation: got -4.0; expected a finite number > 0"),
    ("target_option_misspelt", _edit("separation = 4.0\nweights = [0.5, 0.5]", "seperation = 4.0\nweights = [0.5, 0.5]"), "target.seperation: unknown option of kind 'two_modes'; expected one of dim, kind, n, seed, separation, std, stratify, weights; did you mean 'separation'?"),
    ("init_seed", _edit("weights = [0.2, 0.8]", "weights = [0.2, 0.8]\nseed = 3"), "init.seed: the particles are drawn from each run's seed; expected run.seeds = [...] instead"),
    ("target_seed_negative", _edit("weights = [0.5, 0.5]", "weights = [0.5, 0.5]\nseed = -1"), "target.seed: got -1; expected an integer >= 0 (the seed of the target sample)"),
    ("data_sweep_bad_element", _edit("separation = 4.0\nweights = [0.5, 0.5]", "separation = [2.0, 0.0]\nweights = [0.5, 0.5]"), "target.separation[1]: got 0.0; expected a finite number > 0"),
    ("dimension_mismatch", _edit("weights = [0.2, 0.8]", "weights = [0.2, 0.8]\ndim = 3"), "init: dimension 3 differs from the target's 2; expected init and target of the same dimension"),
    ("cov_not_psd", _edit('kind = "two_modes"\nseparation = 4.0\nweights = [0.2, 0.8]\nstd = 0.1', 'kind = "gaussian"\ncov = [[1.0, 2.0], [2.0, 1.0]]'), "init.cov: has a negative eigenvalue -1; expected a symmetric positive semi-definite matrix"),
    ("mixture_no_centres", _edit('kind = "two_modes"\nseparation = 4.0\nweights = [0.2, 0.8]\nstd = 0.1', 'kind = "mixture"\nstd = 0.1'), "init.centres: missing; expected K lists of d numbers"),
    ("from_file_unreadable", _edit('kind = "two_modes"\nseparation = 4.0\nweights = [0.5, 0.5]\nstd = 0.1', 'kind = "from_file"\npath = "no_such_points.npy"'), "target.path: cannot read 'no_such_points.npy': no such file"),
    # -- [metrics]
    ("unknown_metric", _append('[metrics]\nnames = ["mmd", "w2"]\n'), "metrics.names[0]: unknown metric \"mmd\"; expected one of mmd2, mmd2_at, energy_distance, sinkhorn, w2, mode_mass, energy, velocity_rms; did you mean 'mmd2'?"),
    ("metrics_unknown_key", _append("[metrics]\nreference = 100\n"), "metrics.reference: unknown key; expected one of names, reference_n, final_window, mmd2_bandwidth, mmd2_bandwidths, sinkhorn_epsilon, w2_max_points; did you mean 'reference_n'?"),
    ("reference_n_zero", _append("[metrics]\nreference_n = 0\n"), "metrics.reference_n: got 0; expected a positive integer (held-out reference samples)"),
    ("sinkhorn_epsilon_negative", _append("[metrics]\nsinkhorn_epsilon = -0.1\n"), "metrics.sinkhorn_epsilon: got -0.1; expected a positive number (entropic regularisation)"),
    # -- [generator]
    ("generator_without_method", _append("[generator]\nwidth = 64\n"), 'generator: a [generator] table but run.methods has no "generator"; expected run.methods to include "generator", or no [generator] table'),
    ("generator_bad_activation", _append('[generator]\nactivation = "swish"\n').replace('methods = ["particles"]', 'methods = ["particles", "generator"]'), 'generator.activation: got "swish" (a string); expected one of (\'silu\', \'relu\', \'tanh\', \'gelu\', \'identity\')'),
    ("generator_batch_size_zero", _append("[generator]\nbatch_size = 0\n").replace('methods = ["particles"]', 'methods = ["generator"]'), "generator.batch_size: got 0; expected a positive integer"),
    ("generator_learning_rate_string", _append('[generator]\nlearning_rate = "1e-3"\n').replace('methods = ["particles"]', 'methods = ["generator"]'), 'generator.learning_rate: got "1e-3" (a string); expected a positive number'),
    ("generator_misspelt_key", _append("[generator]\nwidht = 64\n").replace('methods = ["particles"]', 'methods = ["generator"]'), "generator.widht: unknown key; expected one of latent_dim, width, depth, activation, architecture, init, learning_rate, inner_steps, batch_size, drift_step, lr_schedule, ema_decay, fresh_target, eval_n, start, start_steps; did you mean 'width'?"),
    ("generator_ema_decay_one", _append("[generator]\nema_decay = 1.0\n").replace('methods = ["particles"]', 'methods = ["generator"]'), "generator.ema_decay: got 1.0 (a float); expected a number in [0, 1) (0: no moving average)"),
    ("generator_bad_schedule", _append('[generator]\nlr_schedule = "linear"\n').replace('methods = ["particles"]', 'methods = ["generator"]'), 'generator.lr_schedule: got "linear" (a string); expected one of constant, cosine'),
]
