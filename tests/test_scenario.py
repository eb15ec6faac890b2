"""Scenario files: every malformed case's message, expansion counts, coords, sweeps, overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from malformed_scenarios import CASES, VALID, _edit
from wgfsim import flows, scenario
from wgfsim.scenario import GeneratorSpec, ScenarioError, expand, load, loads

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

ARCHITECTURE_EXAMPLE = """\
name = "two_modes_transfer"
[target]
kind = "two_modes"
separation = 4.0
weights = [0.5, 0.5]
n = 2048
[init]
kind = "two_modes"
separation = 4.0
weights = [0.2, 0.8]
n = 2048
[[flow]]
name = "kl_kde"
bandwidth = [0.25, 0.5, 1.0]
[[flow]]
name = "sinkhorn"
epsilon = 0.01
[run]
methods = ["particles", "generator"]
steps = 2000
step_size = 0.1
record_every = 10
seeds = [0, 1, 2]
backend = "auto"
"""


# ---------------------------------------------------------------- malformed scenarios


def test_there_are_enough_malformed_cases():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 24 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("case_id, text, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_scenario_message(case_id, text, expected, tmp_path):
    with pytest.raises(ScenarioError) as err:
        loads(text, source="case.toml", base_dir=str(tmp_path))
    message = str(err.value)
    assert expected in message
    assert message.startswith("case.toml: ")
    assert "\n" not in message  # one clear line, no traceback
    assert err.value.source == "case.toml"
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("case_id", ["steps_string", "option_misspelt", "from_file_unreadable", "toml_syntax"])
def test_malformed_file_names_the_file(case_id, tmp_path):
    text, expected = next((t, e) for i, t, e in CASES if i == case_id)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_unreadable_scenario_file(tmp_path):
    with pytest.raises(ScenarioError, match=r"missing\.toml: cannot read the scenario file \(No such file or directory\)"):
        load(tmp_path / "missing.toml")


def test_every_case_is_one_mistake_away_from_valid():
    sc = loads(VALID, source="case.toml")
    assert len(expand(sc)) == 2 * 1 * 2  # 2 flows x 1 method x 2 seeds


def test_error_path_attribute():
    with pytest.raises(ScenarioError) as err:
        loads(_edit("bandwidth = 0.5", "bandwidth = [0.5, -1.0]"))
    assert err.value.path == "flow[0].bandwidth[1]"
    assert str(err.value).startswith("<string>: flow[0].bandwidth[1]: ")


# ---------------------------------------------------------------- valid scenarios


def test_defaults():
    sc = loads(VALID)
    assert sc.name == "case" and sc.source == "<string>" and sc.text == VALID and sc.overrides == ()
    assert sc.run.dtype == "float64" and sc.run.minibatch == 0 and sc.run.record_velocity is False
    assert sc.run.backend == "auto" and sc.run.methods == ("particles",) and sc.run.seeds == (0, 1)
    # every metric but mmd2_at, which needs its bandwidths listed (metrics.mmd2_bandwidths)
    assert sc.metrics.names == tuple(m for m in scenario.METRICS if m != "mmd2_at") and sc.metrics.reference_n == 64
    assert sc.metrics.sinkhorn_epsilon is None and sc.metrics.w2_max_points == 2000
    assert sc.generator is None and sc.sweeps_data is False
    assert sc.target.seed == 0 and sc.target.n == 64 and sc.init.n == 64
    assert sc.flows[0] == scenario.FlowSpec("kl_kde", {"bandwidth": 0.5})


def test_record_every_defaults_to_about_100_records():
    assert loads(_edit("steps = 20\n", "steps = 2000\n").replace("record_every = 5\n", "")).run.record_every == 20
    assert loads(VALID.replace("record_every = 5\n", "")).run.record_every == 1


def test_n_defaults_and_cupy_is_valid_syntax():
    text = VALID.replace("n = 64\n", "").replace('backend = "auto"', 'backend = "cupy"')
    sc = loads(text)
    assert sc.target.n == scenario.DEFAULT_N == sc.init.n and sc.run.backend == "cupy"


def test_architecture_example_expands_to_the_cartesian_product():
    sc = loads(ARCHITECTURE_EXAMPLE)
    points = expand(sc)
    # (3 bandwidths + 1 sinkhorn) x 2 methods x 3 seeds
    assert len(points) == (3 + 1) * 2 * 3
    first = points[0]
    assert first.flow == "kl_kde" and first.params == {"bandwidth": 0.25}
    assert first.coords == {"flow": "kl_kde", "method": "particles", "seed": 0, "bandwidth": 0.25}
    assert [p.coords["seed"] for p in points[:3]] == [0, 1, 2]  # seeds vary fastest
    assert [p.method for p in points[:6]] == ["particles"] * 3 + ["generator"] * 3
    last = points[-1]
    assert last.coords == {"flow": "sinkhorn", "method": "generator", "seed": 2}  # epsilon is not swept
    assert last.params == {"epsilon": 0.01}
    assert sc.generator == GeneratorSpec(eval_n=2048)  # defaults, eval_n = init n
    for p in points:
        flows.make_params(p.flow, **p.params)
        assert p.init.seed == p.seed and p.target.seed == 0
        assert p.target.options == {"separation": 4.0, "weights": [0.5, 0.5]}
    assert len({tuple(sorted(p.coords.items())) for p in points}) == len(points)


def test_two_swept_options_give_their_product_first_key_slowest():
    text = _edit("bandwidth = 0.5", 'bandwidth = [0.25, 0.5]\nkernel = ["gaussian", "laplace"]')
    points = [p for p in expand(loads(text)) if p.flow == "kl_kde"]
    assert len(points) == 2 * 2 * 2  # bandwidths x kernels x seeds
    got = [(p.params["bandwidth"], p.params["kernel"], p.seed) for p in points]
    assert got == [
        (0.25, "gaussian", 0), (0.25, "gaussian", 1), (0.25, "laplace", 0), (0.25, "laplace", 1),
        (0.5, "gaussian", 0), (0.5, "gaussian", 1), (0.5, "laplace", 0), (0.5, "laplace", 1),
    ]
    assert points[2].coords == {"flow": "kl_kde", "method": "particles", "seed": 0, "bandwidth": 0.25, "kernel": "laplace"}


def test_list_of_lists_is_one_run_with_a_list_value():
    sc = loads(_edit("bandwidth = 0.5", "bandwidth = [[0.25, 0.5, 1.0]]"))
    points = [p for p in expand(sc) if p.flow == "kl_kde"]
    assert len(points) == 2  # one run per seed
    assert points[0].params == {"bandwidth": [0.25, 0.5, 1.0]}
    assert "bandwidth" not in points[0].coords
    assert flows.make_params("kl_kde", **points[0].params).bandwidth == (0.25, 0.5, 1.0)


def test_sweep_of_lists_stores_coords_as_text():
    points = [p for p in expand(loads(_edit("bandwidth = 0.5", "bandwidth = [[0.25, 0.5], 1.0]"))) if p.flow == "kl_kde"]
    assert [p.params["bandwidth"] for p in points] == [[0.25, 0.5], [0.25, 0.5], 1.0, 1.0]
    assert [p.coords["bandwidth"] for p in points] == ["[0.25, 0.5]", "[0.25, 0.5]", "1.0", "1.0"]


def test_same_flow_twice_is_told_apart_by_its_differing_options():
    text = VALID + '\n[[flow]]\nname = "kl_kde"\nbandwidth = 0.5\nkernel = "laplace"\n'
    points = [p for p in expand(loads(text)) if p.flow == "kl_kde"]
    assert [p.coords.get("kernel") for p in points] == ["gaussian", "gaussian", "laplace", "laplace"]
    assert [p.params for p in points][::2] == [{"bandwidth": 0.5}, {"bandwidth": 0.5, "kernel": "laplace"}]


def test_methods_and_generator_table():
    text = VALID.replace('methods = ["particles"]', 'methods = ["particles", "generator"]')
    text += '\n[generator]\nwidth = 64\nactivation = "gelu"\nlearning_rate = 3e-4\neval_n = 100\n'
    sc = loads(text)
    assert sc.generator == GeneratorSpec(width=64, activation="gelu", learning_rate=3e-4, eval_n=100)
    assert len(expand(sc)) == 2 * 2 * 2
    assert {p.method for p in expand(sc)} == {"particles", "generator"}


# ---------------------------------------------------------------- data sweeps


def test_data_sweep_needs_wgfsim_sweep():
    sc = loads(_edit("separation = 4.0\nweights = [0.5, 0.5]", "separation = [2.0, 6.0]\nweights = [0.5, 0.5]"))
    assert sc.sweeps_data and sc.data_sweeps == ("target.separation",)
    with pytest.raises(ScenarioError) as err:
        expand(sc)
    assert str(err.value) == (
        "<string>: target.separation: a list sweeps the data, which needs `wgfsim sweep` (one output file per data "
        "point); expected a single value for `wgfsim run`, or run `wgfsim sweep <string>`"
    )
    points = expand(sc, allow_data_sweeps=True)
    assert len(points) == 2 * 2 * 2  # separations x flows x seeds
    assert [p.target.options["separation"] for p in points] == [2.0] * 4 + [6.0] * 4
    assert points[0].coords == {"flow": "kl_kde", "method": "particles", "seed": 0, "target.separation": 2.0}
    assert sc.target.options["separation"] == [2.0, 6.0]  # the scenario keeps the sweep


def test_vector_options_sweep_one_level_deeper():
    plain = loads(VALID)
    assert not plain.sweeps_data  # weights = [0.5, 0.5] is one value
    swept = loads(_edit("weights = [0.2, 0.8]", "weights = [[0.2, 0.8], [0.4, 0.6]]"))
    assert swept.data_sweeps == ("init.weights",)
    points = expand(swept, allow_data_sweeps=True)
    assert [p.init.options["weights"] for p in points][::4] == [[0.2, 0.8], [0.4, 0.6]]
    assert points[0].coords["init.weights"] == "[0.2, 0.8]"


def test_one_value_lists_are_unwrapped_without_a_sweep():
    text = _edit("separation = 4.0\nweights = [0.5, 0.5]", "separation = [4.0]\nweights = [[0.5, 0.5]]")
    text = _edit("bandwidth = 0.5", "bandwidth = [0.5]", text)
    sc = loads(text)
    assert not sc.sweeps_data
    points = expand(sc)
    assert points[0].target.options == {"separation": 4.0, "weights": [0.5, 0.5], "std": 0.1}
    assert points[0].params == {"bandwidth": 0.5}
    assert points[0].coords == {"flow": "kl_kde", "method": "particles", "seed": 0}


def test_kind_sweep_over_the_toys():
    text = """
name = "toys"
[target]
kind = ["moons", "rings"]
noise = 0.05
n = 32
[init]
kind = "gaussian"
n = 32
[[flow]]
name = "sliced"
[run]
steps = 10
step_size = 0.1
"""
    sc = loads(text)
    points = expand(sc, allow_data_sweeps=True)
    assert [p.target.kind for p in points] == ["moons", "rings"]
    assert [p.coords["target.kind"] for p in points] == ["moons", "rings"]
    with pytest.raises(ScenarioError, match=r"target\.kind\[1\]: unknown kind \"ring\".*did you mean 'rings'\?"):
        loads(text.replace('"rings"]', '"ring"]'))
    # an option of one kind but not another is caught on the data point that lacks it
    with pytest.raises(ScenarioError, match=r"target\.noise: unknown option \(kind 'gaussian'\); expected one of mean"):
        loads(text.replace('"rings"]', '"gaussian"]'))


def test_explicit_mode_mass_needs_mode_centres():
    text = VALID.replace('kind = "two_modes"\nseparation = 4.0\nweights = [0.5, 0.5]\nstd = 0.1', 'kind = "moons"')
    text = text.replace("dim = 2", "") + '\n[metrics]\nnames = ["mmd2", "mode_mass"]\n'
    with pytest.raises(ScenarioError, match=r"metrics\.names: mode_mass needs mode centres but target kind 'moons' has none"):
        loads(text)
    loads(text.replace('names = ["mmd2", "mode_mass"]', 'names = ["mmd2"]'))
    default = loads(text[: text.index("[metrics]")])
    assert default.metrics.names == tuple(m for m in scenario.METRICS if m not in ("mode_mass", "mmd2_at"))


# ---------------------------------------------------------------- overrides


def test_overrides_set_values():
    sc = loads(
        VALID,
        overrides=[
            "run.steps=100",
            "flow.0.bandwidth=0.25",
            "target.separation=6.0",
            "init.separation = 6.0",
            "run.backend=numpy",  # not TOML: read as a bare string
            'run.methods=["particles", "generator"]',
            "generator.width=64",  # creates the [generator] table
            "run.seeds=[3]",
        ],
    )
    assert sc.run.steps == 100 and sc.run.backend == "numpy" and sc.run.seeds == (3,)
    assert sc.flows[0].options == {"bandwidth": 0.25}
    assert sc.target.options["separation"] == 6.0 and sc.init.options["separation"] == 6.0
    assert sc.generator.width == 64 and sc.generator.eval_n == 64
    assert sc.text == VALID and len(sc.overrides) == 8
    # the stored text and overrides rebuild the same scenario
    assert loads(sc.text, overrides=sc.overrides) == sc


def test_override_can_turn_a_sweep_into_one_run():
    sc = loads(VALID, overrides=["flow.0.bandwidth=[0.25, 0.5]"])
    assert len(expand(sc)) == (2 + 1) * 2
    sc = loads(VALID, overrides=["target.separation=[2.0, 4.0]", "init.separation=[2.0, 4.0]"])
    assert sc.data_sweeps == ("target.separation", "init.separation")
    assert len(expand(sc, allow_data_sweeps=True)) == 4 * 2 * 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("run.stepz=3", "run.stepz: unknown key; expected one of methods, steps, step_size, record_every, seeds, backend, dtype, minibatch, record_velocity, prune_tol; did you mean 'steps'? (set by override 'run.stepz=3')"),
        ("flow.0.bandwith=0.5", "flow[0].bandwith: unknown option of flow 'kl_kde'; expected one of bandwidth, kernel, exclude_self; did you mean 'bandwidth'? (set by override 'flow.0.bandwith=0.5')"),
        ("flow.1.bandwidth=0.5", "flow[1].bandwidth: unknown option of flow 'sinkhorn'"),
        ("flow.2.bandwidth=0.5", "flow: override 'flow.2.bandwidth=0.5': index 2 but the file has 2 [[flow]] tables; expected an index in 0..1"),
        ("flow.bandwidth=0.5", "flow: override 'flow.bandwidth=0.5': flow is a list of tables; expected an index, e.g. flow.0.bandwidth"),
        ("run.steps", "override 'run.steps' has no '='; expected KEY.PATH=VALUE, e.g. run.steps=100"),
        ("run..steps=3", "override 'run..steps=3' has an empty key"),
        ("run.steps.x=3", "run.steps: override 'run.steps.x=3': run.steps is a value, not a table"),
        ('run.steps="100"', 'run.steps: got "100" (a string); expected a positive integer (the number of Euler steps) (set by override \'run.steps="100"\')'),
        ("target.weights=[0.5, 0.6]", "target.weights: weights sum to 1.1; expected 2 non-negative numbers summing to 1 (set by override 'target.weights=[0.5, 0.6]')"),
        ("flows.0.bandwidth=1", "flows: unknown key; expected one of name, description, target, init, flow, run, metrics, generator; did you mean 'flow'?"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ScenarioError) as err:
        loads(VALID, source="case.toml", overrides=[override])
    assert message in str(err.value)
    assert str(err.value).startswith("case.toml: ")


# ---------------------------------------------------------------- files


def test_from_file_paths_start_at_the_scenario_folder(tmp_path, monkeypatch):
    data = np.random.default_rng(0).normal(size=(40, 2))
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "points.npy", data)
    text = _edit('kind = "two_modes"\nseparation = 4.0\nweights = [0.5, 0.5]\nstd = 0.1\nn = 64', 'kind = "from_file"\npath = "data/points.npy"\nreplace = false\nn = 40')
    text = text.replace("[metrics]", "") + "\n[metrics]\nreference_n = 40\n"
    (tmp_path / "sc.toml").write_text(text)
    monkeypatch.chdir(tmp_path.parent)  # a different working directory must not matter
    sc = load(tmp_path / "sc.toml")
    assert sc.target.base_dir == str(tmp_path)
    point = expand(sc)[0]
    np.testing.assert_array_equal(point.target.build().sample(40, np.random.default_rng(0)), data)
    with pytest.raises(ScenarioError, match=r"target\.n: 64 samples but the file has 40 rows and replace = false; expected at most 40, or replace = true"):
        load(tmp_path / "sc.toml", overrides=["target.n=64"])


# ---------------------------------------------------------------- shipped scenarios


def test_quickstart():
    sc = load(SCENARIOS / "quickstart.toml")
    assert not sc.sweeps_data
    t, i = sc.target.build(), sc.init.build()
    sep = sc.target.options["separation"]
    assert t.dim == 2 and 3.0 <= sep <= 5.0 and sc.target.options["std"] <= 0.05 * sep
    assert sc.init.options["weights"] == [0.2, 0.8] and sc.target.options["weights"] == [0.5, 0.5]
    assert [f.name for f in sc.flows] == ["kl_kde", "sinkhorn", "sliced"]
    assert sc.flows[0].options["bandwidth"] == 0.5 and sc.flows[1].options["epsilon"] == 0.05
    assert 256 <= sc.target.n <= 1024 and 256 <= sc.init.n <= 1024
    assert 100 <= sc.run.steps <= 300 and sc.run.record_every == 10
    assert len(expand(sc)) == 3
    assert i.dim == 2


def test_two_modes_transfer():
    sc = load(SCENARIOS / "two_modes_transfer.toml")
    names = {f.name for f in sc.flows}
    assert names == {"kl_kde", "sinkhorn_proxy", "sinkhorn", "sliced", "w2_exact"}
    sep = sc.target.options["separation"]
    for f in sc.flows:
        if f.name == "kl_kde":
            assert all(sep / s >= 6 for s in f.options["bandwidth"])
        if f.name == "sinkhorn":
            assert f.options["epsilon"] <= 0.01 * sep**2
    assert sc.target.n == sc.init.n == 512 and sc.run.steps == 1000
    assert not sc.sweeps_data and len(expand(sc)) == (2 + 2 + 1 + 1 + 1) * 3


def test_gaussian_closure():
    sc = load(SCENARIOS / "gaussian_closure.toml")
    assert sc.init.options["cov"] == [[4.0, 0.0], [0.0, 0.25]]
    target = sc.target.build()
    x = target.sample(20_000, np.random.default_rng(0))
    assert np.allclose(np.cov(x.T), np.eye(2), atol=0.05)
    assert [f.name for f in sc.flows] == ["kl_kde", "sliced", "w2_exact"]


def test_toys():
    sc = load(SCENARIOS / "toys.toml")
    assert sc.data_sweeps == ("target.kind",)
    assert sc.target.kind == ["moons", "eight_gaussians", "checkerboard", "spiral", "rings"]
    points = expand(sc, allow_data_sweeps=True)
    assert {p.flow for p in points} <= set(flows.names())
    assert len(points) == 5 * len(sc.flows) * len(sc.run.seeds)
    with pytest.raises(ScenarioError, match="target.kind: a list sweeps the data"):
        expand(sc)
    one = load(SCENARIOS / "toys.toml", overrides=["target.kind=moons"])
    assert len(expand(one)) == len(sc.flows) * len(sc.run.seeds)


@pytest.mark.parametrize("name", flows.names())
def test_every_registered_flow_runs_on_the_toys(name):
    # the check iterates the registry: the toys' data and run settings with each flow's own example options
    # (a new flow needs no line in scenarios/toys.toml)
    import json

    text = (SCENARIOS / "toys.toml").read_text(encoding="utf-8")
    head, run = text[: text.index("[[flow]]")], text[text.index("[run]"):]
    options = "".join(f"{k} = {json.dumps([v] if isinstance(v, (list, tuple)) else v)}\n"  # [[...]]: one list value
                      for k, v in flows.get(name).examples[0].items())
    sc = loads(f'{head}[[flow]]\nname = "{name}"\n{options}\n{run}', source="toys.toml")
    points = expand(sc, allow_data_sweeps=True)
    assert len(points) == 5 * len(sc.run.seeds) and {p.flow for p in points} == {name}
    assert all(p.flow_params == flows.make_params(name, **flows.get(name).examples[0]) for p in points)


def test_every_shipped_scenario_validates():
    files = sorted(SCENARIOS.glob("*.toml"))
    assert {f.name for f in files} >= {"quickstart.toml", "two_modes_transfer.toml", "gaussian_closure.toml", "toys.toml"}
    for f in files:
        sc = load(f)
        assert sc.name == f.stem
        assert expand(sc, allow_data_sweeps=True)


def test_a_backend_registered_after_import_is_a_valid_choice():
    # backends are resolved when a scenario is validated, not frozen when wgfsim is imported
    from wgfsim import backend as backends
    from wgfsim.scenario.resources import check_environment

    text = VALID.replace('backend = "auto"', 'backend = "later"')
    with pytest.raises(ScenarioError, match='run.backend: unknown backend "later"'):
        loads(text)
    backends.register(backends.Backend("later", module="numpy", kernels="wgfsim.primitives.dense"))
    try:
        assert "later" in backends.BACKENDS
        sc = loads(text)
        assert sc.run.backend == "later"
        check_environment(sc)  # available here: nothing refused
    finally:
        backends._REGISTRY.pop("later")
    assert "later" not in backends.BACKENDS
