"""Loading a scenario: TOML text -> validated :class:`~.spec.Scenario`; every mistake found before any work.

It is long because it is the one place that checks every key of every
section (with the file, the key path and a did-you-mean in each message);
splitting the checks by section would scatter the one message grammar.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import math
import os
import re
import tomllib
from typing import Any, NoReturn, Sequence

from .. import flows as _flows
from .. import targets as _targets
from ..backend import BACKENDS, cupy_status
from ..errors import OptionError
from ..methods.generator.mlp import MLPConfig
from ..methods.generator.train import TrainConfig


from .spec import DEFAULT_N, DTYPES, GENERATOR_STARTS, INIT_GENERATOR, METHODS, METRICS, ScenarioError, DistSpec, FlowSpec, GeneratorSpec, MetricsSpec, RunSpec, Scenario, _MLP_FIELDS

# the scenario name is the run file's name: OUTPUT/NAME.h5 must stay inside OUTPUT
NAME_MAX = 100
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}" % (NAME_MAX - 1))

# ---------------------------------------------------------------- messages


_show = _targets.show_value


def _hint(key, choices) -> str | None:
    found = difflib.get_close_matches(str(key), list(choices), n=1)
    return found[0] if found else None


class _Checker:
    """Builds the one-line errors: file, key path, what was wrong, what was expected."""

    def __init__(self, source: str, overridden: dict[str, str]):
        self.source = source
        self.overridden = overridden  # key path -> override text

    def fail(self, path: str, what: str, expected: str | None = None, hint: str | None = None) -> NoReturn:
        msg = f"{self.source}: {path}: {what}" if path else f"{self.source}: {what}"
        if expected:
            msg += f"; expected {expected}"
        if hint:
            msg += f"; did you mean {hint!r}?"
        origin = self._override_for(path)
        if origin:
            msg += f" (set by override {origin!r})"
        raise ScenarioError(msg, source=self.source, path=path or None)

    def _override_for(self, path: str) -> str | None:
        for opath, text in self.overridden.items():
            if path == opath or path.startswith(opath + ".") or path.startswith(opath + "["):
                return text
        return None

    # -- typed getters; each returns the normalised value or fails naming the key

    def table(self, value, path: str, example: str) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"got {_show(value)}", f"a table ({example})")
        return value

    def keys(self, table: dict, path: str, known: Sequence[str]) -> None:
        for key in table:
            if key not in known:
                self.fail(_join(path, key), "unknown key", f"one of {', '.join(known)}", _hint(key, known))

    def integer(self, value, path: str, minimum: int = 1, what: str = "") -> int:
        expected = ("a positive integer" if minimum == 1 else f"an integer >= {minimum}") + (f" ({what})" if what else "")
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"got {_show(value)}", expected)
        if value < minimum:
            self.fail(path, f"got {value}", expected)
        return value

    def positive(self, value, path: str, what: str = "") -> float:
        expected = "a positive number" + (f" ({what})" if what else "")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"got {_show(value)}", expected)
        if not math.isfinite(value) or value <= 0:
            self.fail(path, f"got {value!r}", expected)
        return float(value)

    def boolean(self, value, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"got {_show(value)}", "true or false")
        return value

    def string(self, value, path: str, expected: str = "a non-empty string") -> str:
        if not isinstance(value, str) or not value:
            self.fail(path, f"got {_show(value)}", expected)
        return value

    def choice(self, value, path: str, choices: Sequence[str], noun: str = "value") -> str:
        expected = f"one of {', '.join(choices)}"
        if not isinstance(value, str):
            self.fail(path, f"got {_show(value)}", expected)
        if value not in choices:
            self.fail(path, f'unknown {noun} "{value}"', expected, _hint(value, choices))
        return value

    def choices(self, value, path: str, choices: Sequence[str], example: str, noun: str = "value") -> tuple[str, ...]:
        """A non-empty list of distinct strings from ``choices``."""
        expected = f"a non-empty list drawn from {', '.join(choices)}, e.g. {example}"
        if not isinstance(value, list) or not value:
            self.fail(path, f"got {_show(value)}", expected)
        for i, item in enumerate(value):
            self.choice(item, f"{path}[{i}]", choices, noun)
            if item in value[:i]:
                self.fail(f"{path}[{i}]", f'"{item}" is listed twice', "each name once")
        return tuple(value)

    def require(self, table: dict, key: str, path: str, expected: str):
        if key not in table:
            self.fail(_join(path, key), "missing", expected)
        return table[key]


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


# ---------------------------------------------------------------- overrides


def _parse_value(raw: str):
    """An override's value: a TOML value (``100``, ``[0.5, 1.0]``, ``true``), else a bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_overrides(data: dict, overrides: Sequence[str], source: str) -> dict[str, str]:
    """Set each ``key.path=value`` in ``data`` (in place); returns canonical key path -> override.

    Intermediate tables missing from the file are created (``generator.width=64``
    adds a ``[generator]`` table); keys themselves are checked later, with the
    rest of the scenario, so a misspelt override key fails like a misspelt
    file key.
    """
    done: dict[str, str] = {}
    for text in overrides:
        bad = _Checker(source, {})
        if not isinstance(text, str) or "=" not in text:
            bad.fail("", f"override {text!r} has no '='", "KEY.PATH=VALUE, e.g. run.steps=100")
        key, raw = (part.strip() for part in text.split("=", 1))
        parts = key.split(".")
        if not key or any(not p for p in parts):
            bad.fail("", f"override {text!r} has an empty key", "KEY.PATH=VALUE, e.g. run.steps=100")
        value = _parse_value(raw)
        node: Any = data
        path = ""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit():
                    rest = ".".join(parts[i:])
                    bad.fail(path, f"override {text!r}: {path} is a list of tables", f"an index, e.g. {path}.0.{rest}")
                index = int(part)
                if index >= len(node):
                    bad.fail(
                        path,
                        f"override {text!r}: index {index} but the file has {len(node)} [[{path}]] tables",
                        f"an index in 0..{len(node) - 1}",
                    )
                path = _join(path, index)
                if last:
                    node[index] = copy.deepcopy(value)
                else:
                    node = node[index]
            elif isinstance(node, dict):
                path = _join(path, part)
                if last:
                    node[part] = copy.deepcopy(value)
                else:
                    node = node.setdefault(part, {})
            else:
                bad.fail(path, f"override {text!r}: {path} is a value, not a table", "a key path ending at a value")
        done[path] = text
    return done


# ---------------------------------------------------------------- sweeps


def _depth(value) -> int:
    """Nesting depth of lists: 0 for a scalar, 1 for [1, 2], 2 for [[1, 2]]."""
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _axis_values(chk: _Checker, path: str, value) -> list:
    """The values of a sweep axis (a non-empty list)."""
    if not value:
        chk.fail(path, "an empty list sweeps nothing", "a value or a non-empty list of values to sweep")
    return list(value)


def _coord_text(value) -> str:
    # xarray coordinates need scalars of one type: where a swept value is a list,
    # every value of that coordinate is stored as its text ("[0.25, 0.5]", "1.0")
    return value if isinstance(value, str) else repr(list(value) if isinstance(value, tuple) else value)


# ---------------------------------------------------------------- sections

_TOP = ("name", "description", "target", "init", "flow", "run", "metrics", "generator")
_RUN = ("methods", "steps", "step_size", "record_every", "seeds", "backend", "dtype", "minibatch", "record_velocity")
_METRICS = ("names", "reference_n", "sinkhorn_epsilon", "w2_max_points")
_GENERATOR = tuple(f.name for f in dataclasses.fields(GeneratorSpec))


def _dist(chk: _Checker, data: dict, section: str, base_dir: str, *, target: bool):
    """Check ``[target]`` / ``[init]``; returns the spec and its sweep axes [(key, values)]."""
    example = 'kind = "gaussian", n = 512' if section == "init" else 'kind = "two_modes", separation = 4.0, n = 512'
    if section not in data:
        chk.fail(section, "missing", f"{'an' if section == 'init' else 'a'} [{section}] table ({example})")
    table = chk.table(data[section], section, example)
    kinds = _targets.names()
    if not target and table.get("kind") == INIT_GENERATOR:  # the untrained generator's measure: only n is its own
        for key in table:
            if key not in ("kind", "n"):
                chk.fail(f"init.{key}", 'unknown option of kind "generator" (its settings are the [generator] table)',
                         "one of kind, n")
        n = chk.integer(table["n"], "init.n", what="the number of particles") if "n" in table else DEFAULT_N
        return DistSpec(kind=INIT_GENERATOR, n=n, options={}, base_dir=base_dir), []
    if not target:
        kinds = kinds + [INIT_GENERATOR]
    raw_kind = chk.require(table, "kind", section, f"a distribution kind, one of {', '.join(kinds)}")
    if isinstance(raw_kind, list):  # a sweep over kinds
        kind_values = _axis_values(chk, f"{section}.kind", raw_kind)
        for i, k in enumerate(kind_values):
            chk.choice(k, f"{section}.kind[{i}]", kinds, "kind")
    else:
        kind_values = [chk.choice(raw_kind, f"{section}.kind", kinds, "kind")]
    n = DEFAULT_N
    if "n" in table:
        what = "the number of target samples the flow sees" if target else "the number of particles"
        n = chk.integer(table["n"], f"{section}.n", what=what)
    seed = 0
    if "seed" in table:
        if not target:
            chk.fail(f"{section}.seed", "the particles are drawn from each run's seed", "run.seeds = [...] instead")
        seed = chk.integer(table["seed"], f"{section}.seed", minimum=0, what="the seed of the target sample")
    # an option of any swept kind is accepted here; the data point of a kind that lacks it fails to build
    known = sorted({key for k in kind_values for key in _targets.options(k)})
    own = {"kind", "n"} | ({"seed"} if target else set())
    options = {}
    for key, value in table.items():
        if key in own:
            continue
        if key not in known:
            shown = kind_values[0] if len(kind_values) == 1 else kind_values
            choices = sorted(set(known) | own)
            chk.fail(f"{section}.{key}", f"unknown option of kind {shown!r}", f"one of {', '.join(choices)}", _hint(key, choices))
        options[key] = copy.deepcopy(value)
    spec = DistSpec(kind=copy.deepcopy(raw_kind), n=n, options=options, seed=seed, base_dir=base_dir)
    axes = _data_axes(spec)
    for key, values in axes:
        _axis_values(chk, f"{section}.{key}", values)  # no empty sweeps
    return spec, axes


def _data_axes(spec: DistSpec) -> list[tuple[str, list]]:
    """The sweep axes of a checked [target] / [init]: a list ``kind`` and lists deeper than their option."""
    kinds = spec.kind if isinstance(spec.kind, list) else [spec.kind]
    ranks: dict[str, int] = {}
    for k in kinds:
        if k != INIT_GENERATOR:  # no options of its own
            ranks.update(_targets.option_ranks(k))
    axes = [("kind", list(kinds))] if isinstance(spec.kind, list) else []
    return axes + [(k, list(v)) for k, v in spec.options.items() if _depth(v) > ranks.get(k, 0)]


def _dist_points(spec: DistSpec, axes: list[tuple[str, list]]):
    """The sweep points of a distribution: [(spec without sweeps, {swept key: value}, {key: index})].

    An axis of one value is unwrapped but is no coordinate (nothing varies along it).
    """
    keys = [k for k, _ in axes]
    varying = {k for k, v in axes if len(v) > 1}
    out = []
    for combo in itertools.product(*(list(enumerate(v)) for _, v in axes)):
        chosen = {k: copy.deepcopy(v) for k, (_, v) in zip(keys, combo)}
        index = {k: i for k, (i, _) in zip(keys, combo)}
        values = {k: copy.deepcopy(v) for k, v in chosen.items() if k in varying}
        kind = chosen.pop("kind", spec.kind)
        point = dataclasses.replace(spec, kind=kind, options={**copy.deepcopy(spec.options), **chosen})
        out.append((point, values, index))
    return out


def _build(chk: _Checker, section: str, point: DistSpec, index: dict[str, int], axes_keys: set[str]) -> _targets.Target:
    """Build one data point's Target, restating a TargetError with the file and key path."""
    try:
        return point.build()
    except _targets.TargetError as err:
        if err.option is None:
            chk.fail(section, err.what, err.expected, err.hint)
        path = f"{section}.{err.option}"
        if err.option in index and err.option in axes_keys:
            path += f"[{index[err.option]}]"  # the swept value that failed
        chk.fail(path, err.what + (f" (kind {point.kind!r})" if "kind" in index else ""), err.expected, err.hint)


def _flow_table(chk: _Checker, entry, i: int) -> FlowSpec:
    path = f"flow[{i}]"
    table = chk.table(entry, path, 'name = "kl_kde", bandwidth = 0.5')
    names = _flows.names()
    if "name" not in table:
        chk.fail(f"{path}.name", "missing", f"a flow name, one of {', '.join(names)}")
    if isinstance(table["name"], list):
        chk.fail(f"{path}.name", f"got {_show(table['name'])}", "one flow name per [[flow]] table (repeat [[flow]] for more)")
    name = chk.choice(table["name"], f"{path}.name", names, "flow")
    known = list(_flows.options(name))
    options = {}
    for key, value in table.items():
        if key == "name":
            continue
        if key not in known:
            chk.fail(f"{path}.{key}", f"unknown option of flow {name!r}", f"one of {', '.join(known)}", _hint(key, known))
        if isinstance(value, list):
            _axis_values(chk, f"{path}.{key}", value)
        options[key] = copy.deepcopy(value)
    return FlowSpec(name=name, options=options)


def _check_flow_params(chk: _Checker, i: int, spec: FlowSpec, params: dict, index: dict[str, int]) -> None:
    """Validate one expanded point with the flow's own Params; blame the option that fails."""
    try:
        _flows.make_params(spec.name, **params)
        return
    except (ValueError, TypeError) as err:
        whole = err
    culprit = None
    for key, value in params.items():  # find the option that fails on its own
        try:
            _flows.make_params(spec.name, **{key: value})
        except (ValueError, TypeError) as err:
            culprit, whole = key, err
            break
    path = f"flow[{i}]"
    if culprit is not None:
        path += f".{culprit}"
        if culprit in index:
            path += f"[{index[culprit]}]"
    if isinstance(whole, OptionError):
        chk.fail(path, f"got {_show(whole.value)}", f"{whole.expected} (flow {spec.name!r})")
    chk.fail(path, str(whole).removeprefix(f"{spec.name}: "))


def _run(chk: _Checker, data: dict) -> RunSpec:
    if "run" not in data:
        chk.fail("run", "missing", "a [run] table (steps = 200, step_size = 0.1)")
    table = chk.table(data["run"], "run", "steps = 200, step_size = 0.1")
    chk.keys(table, "run", _RUN)
    steps_what, eta_what = "the number of Euler steps", "eta, the Euler step"
    steps = chk.integer(chk.require(table, "steps", "run", f"a positive integer ({steps_what})"), "run.steps", what=steps_what)
    if "record_every" in table:
        record_every = chk.integer(table["record_every"], "run.record_every", what="steps between records")
        if record_every > steps:
            chk.fail(
                "run.record_every",
                f"{record_every} is more than run.steps = {steps}",
                f"at most {steps} so that something is recorded",
            )
    else:
        record_every = max(1, steps // 100)  # about 100 records
    methods = chk.choices(
        table.get("methods", ["particles"]), "run.methods", METHODS, '["particles", "generator"]', "method"
    )
    if "particles" in methods or "step_size" in table:
        step_size = chk.positive(
            chk.require(table, "step_size", "run", f"a positive number ({eta_what})"), "run.step_size", what=eta_what
        )
    else:
        step_size = math.nan  # generator-only runs: their time is step * generator.drift_step
    raw_seeds = table.get("seeds", [0])
    if not isinstance(raw_seeds, list) or not raw_seeds:
        chk.fail("run.seeds", f"got {_show(raw_seeds)}", "a non-empty list of integers >= 0, e.g. seeds = [0, 1, 2]")
    seeds = tuple(chk.integer(s, f"run.seeds[{j}]", minimum=0) for j, s in enumerate(raw_seeds))
    for j, s in enumerate(seeds):
        if s in seeds[:j]:
            chk.fail(f"run.seeds[{j}]", f"seed {s} is listed twice", "distinct seeds")
    backend = chk.choice(table.get("backend", "auto"), "run.backend", BACKENDS, "backend")
    dtype = chk.choice(table.get("dtype", "float64"), "run.dtype", DTYPES, "dtype")
    minibatch = chk.integer(table.get("minibatch", 0), "run.minibatch", minimum=0, what="0 for the full target sample")
    record_velocity = chk.boolean(table.get("record_velocity", False), "run.record_velocity")
    return RunSpec(
        steps=steps,
        step_size=step_size,
        record_every=record_every,
        methods=methods,
        seeds=seeds,
        backend=backend,
        dtype=dtype,
        minibatch=minibatch,
        record_velocity=record_velocity,
    )


def _metrics(chk: _Checker, data: dict, target_n: int) -> tuple[MetricsSpec, bool]:
    """The [metrics] table and whether ``names`` was given explicitly."""
    table = chk.table(data.get("metrics", {}), "metrics", 'names = ["mmd2", "w2"]')
    chk.keys(table, "metrics", _METRICS)
    explicit = "names" in table
    names = chk.choices(table["names"], "metrics.names", METRICS, '["mmd2", "w2"]', "metric") if explicit else METRICS
    reference_n = chk.integer(table.get("reference_n", target_n), "metrics.reference_n", what="held-out reference samples")
    eps = table.get("sinkhorn_epsilon")
    eps = None if eps is None else chk.positive(eps, "metrics.sinkhorn_epsilon", what="entropic regularisation")
    w2_max = chk.integer(table.get("w2_max_points", 2000), "metrics.w2_max_points", what="subsample size for exact W2")
    return MetricsSpec(names=names, reference_n=reference_n, sinkhorn_epsilon=eps, w2_max_points=w2_max), explicit


def _generator(chk: _Checker, data: dict, methods: tuple[str, ...], init_n: int,
               init_kind=None) -> GeneratorSpec | None:
    if init_kind == INIT_GENERATOR and "generator" not in methods:  # the particles start at its untrained samples
        methods = tuple(methods) + ("generator",)
    if "generator" not in methods:
        if "generator" in data:
            chk.fail(
                "generator",
                'a [generator] table but run.methods has no "generator"',
                'run.methods to include "generator", or no [generator] table',
            )
        return None
    table = chk.table(data.get("generator", {}), "generator", "width = 256, depth = 4")
    chk.keys(table, "generator", _GENERATOR)
    values: dict[str, Any] = {}
    mlp_keys = {f.name for f in _MLP_FIELDS}
    for key, value in table.items():
        path = f"generator.{key}"
        if key == "eval_n":
            values[key] = chk.integer(value, path)
            continue
        if key == "start":
            values[key] = chk.choice(value, path, GENERATOR_STARTS, "start")
            continue
        if key == "start_steps":
            values[key] = chk.integer(value, path, what="Adam steps of the fit to the [init] measure")
            continue
        try:  # the generator's own configs judge their options
            if key in mlp_keys:
                MLPConfig(out_dim=1, **{key: value})
            else:
                TrainConfig(mlp=MLPConfig(out_dim=1), total_steps=1, **{key: value})
        except OptionError as err:
            chk.fail(path, f"got {_show(value)}", err.expected)
        default = getattr(GeneratorSpec(), key)
        values[key] = float(value) if isinstance(default, float) else value
    values.setdefault("eval_n", init_n)
    if values.get("start") == "init" and init_kind == INIT_GENERATOR:
        chk.fail("generator.start", '"init" fits the [init] measure, but init.kind is "generator" (the untrained '
                 'generator itself)', 'start = "random" there, or an [init] distribution')
    return GeneratorSpec(**values)


# ---------------------------------------------------------------- loading


def _check_data(chk: _Checker, target, target_axes, init, init_axes, metrics: MetricsSpec, explicit_metrics: bool) -> bool:
    """Every data point must build, agree in dimension and have the rows its sample sizes need.

    Returns whether some target data point has mode centres.
    """
    target_dims: set[int] = set()
    any_centres = False
    for point, _, index in _dist_points(target, target_axes):
        t = _build(chk, "target", point, index, {k for k, _ in target_axes})
        target_dims.add(t.dim)
        any_centres = any_centres or t.centres is not None
        wanted = max(target.n, metrics.reference_n)
        if t.max_n is not None and wanted > t.max_n:
            key = "target.n" if target.n > t.max_n else "metrics.reference_n"
            chk.fail(
                key,
                f"{wanted} samples but the file has {t.max_n} rows and replace = false",
                f"at most {t.max_n}, or replace = true",
            )
        if explicit_metrics and "mode_mass" in metrics.names and t.centres is None:
            chk.fail(
                "metrics.names",
                f"mode_mass needs mode centres but target kind {point.kind!r} has none",
                "a target with modes (gaussian, two_modes, mixture, eight_gaussians, checkerboard), or no mode_mass",
            )
    for point, _, index in _dist_points(init, init_axes):
        if point.kind == INIT_GENERATOR:
            continue  # drawn by the run from the untrained generator, in the target's dimension
        t = _build(chk, "init", point, index, {k for k, _ in init_axes})
        if t.max_n is not None and init.n > t.max_n:
            chk.fail(
                "init.n",
                f"{init.n} particles but the file has {t.max_n} rows and replace = false",
                f"at most {t.max_n}, or replace = true",
            )
        if target_dims != {t.dim}:
            dims = sorted(target_dims)
            chk.fail(
                "init",
                f"dimension {t.dim} differs from the target's {dims[0] if len(dims) == 1 else dims}",
                "init and target of the same dimension",
            )
    return any_centres


def _parse(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = str(err)
        line = re.search(r"line (\d+)", msg)
        where = f"line {line.group(1)}: " if line else ""
        raise ScenarioError(f"{source}: {where}invalid TOML: {msg}", source=source) from None


def loads(text: str, *, source: str = "<string>", base_dir: str = ".", overrides: Sequence[str] = ()) -> Scenario:
    """Parse and validate a scenario from TOML text.

    Parameters
    ----------
    text : str
        The TOML text.
    source : str
        Name used in error messages (the file path).
    base_dir : str
        Folder that relative ``from_file`` paths start from.
    overrides : sequence of str
        ``"key.path=value"`` strings applied after parsing (``run.steps=100``,
        ``flow.0.bandwidth=0.5``); the value is read as a TOML value, or as a
        bare string when it is not one.

    Raises
    ------
    ScenarioError
        For every mistake, with the file, the key path and what was expected.
    """
    if isinstance(overrides, str):
        overrides = (overrides,)  # a lone string is one override, not its characters
    overrides = tuple(overrides)
    data = _parse(text, source)
    chk = _Checker(source, _apply_overrides(data, overrides, source))
    chk.keys(data, "", _TOP)

    if "name" not in data:
        chk.fail("name", "missing", 'a scenario name, e.g. name = "quickstart"')
    name = chk.string(data["name"], "name", 'a non-empty string, e.g. name = "quickstart"')
    if not _NAME.fullmatch(name):
        shown = _show(name if len(name) <= 60 else name[:40]) + (f" ... ({len(name)} characters)" if len(name) > 60 else "")
        chk.fail("name", f"got {shown}", f"a file name: 1 to {NAME_MAX} letters, digits, '.', '_' or '-', not "
                 "starting with '.' (the run is written to OUTPUT/NAME.h5, so no folders or absolute paths)")
    description = data.get("description", "")
    if not isinstance(description, str):
        chk.fail("description", f"got {_show(description)}", "a string")

    target, target_axes = _dist(chk, data, "target", base_dir, target=True)
    init, init_axes = _dist(chk, data, "init", base_dir, target=False)

    if "flow" not in data:
        chk.fail("flow", "missing", 'at least one [[flow]] table with name = "..."')
    raw_flows = data["flow"]
    if isinstance(raw_flows, dict):
        chk.fail("flow", "a single [flow] table", "an array of tables: write [[flow]] (double brackets)")
    if not isinstance(raw_flows, list) or not raw_flows:
        chk.fail("flow", f"got {_show(raw_flows)}", 'at least one [[flow]] table with name = "..."')
    flow_specs = tuple(_flow_table(chk, entry, i) for i, entry in enumerate(raw_flows))

    run = _run(chk, data)
    metrics, explicit_metrics = _metrics(chk, data, target.n)
    generator = _generator(chk, data, run.methods, init.n, init.kind)

    if not _check_data(chk, target, target_axes, init, init_axes, metrics, explicit_metrics) and not explicit_metrics:
        # the default "all metrics" leaves out mode_mass where no target has modes (moons, spiral, rings, files)
        metrics = dataclasses.replace(metrics, names=tuple(m for m in metrics.names if m != "mode_mass"))

    sc = Scenario(
        name=name,
        source=source,
        text=text,
        target=target,
        init=init,
        flows=flow_specs,
        run=run,
        metrics=metrics,
        generator=generator,
        overrides=overrides,
        description=description,
        data_sweeps=tuple(f"target.{k}" for k, v in target_axes if len(v) > 1)
        + tuple(f"init.{k}" for k, v in init_axes if len(v) > 1),
    )
    from .expand import _expand  # expansion builds on this module's checks

    _expand(sc, chk)  # validates every flow point with its own Params and the runs' uniqueness
    return sc


def load(path, overrides: Sequence[str] = ()) -> Scenario:
    """Read, parse and validate a scenario file (see :func:`loads`).

    Relative ``from_file`` paths start at the file's folder.
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        message = f"{source}: cannot read the scenario file ({reason}); expected a readable UTF-8 TOML file"
        raise ScenarioError(message, source=source) from None
    base_dir = os.path.dirname(os.path.abspath(source))
    return loads(text, source=source, base_dir=base_dir, overrides=overrides)



# ---------------------------------------------------------------- size check


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 2**10:.3g} KiB"


def memory_estimate(sc: Scenario) -> tuple[int, dict[str, float]]:
    """Bytes one run of ``sc`` needs at its peak, and the parts of the largest.

    Runs of a file are run one after another, so the peak is the largest run
    plus what every run shares: the target sample (``target.n x dim``, with
    the sampler's copy) and the reference sample (``metrics.reference_n x
    dim``, likewise), in float64.  A run holds its particles ``x`` (N x d in
    the run's dtype: ``x``, the field ``v``, ``x + eta v`` and the kernels'
    temporaries, about 4 copies), a record on the host (float32 positions
    and velocities), and where its flow or metrics need them: ``sliced``'s
    projections (``n_projections x (N + M)`` plus the directions),
    ``w2_exact``'s dense plan and cost (``N x M``, twice), ``kale``/``drmmd``'s
    dense Gram matrices (``(N + M)^2``, three, below their ``max_dense``), the
    exact-W2 metric's plan (when ``N, M <= w2_max_points``), and the
    generator's network with its Adam moments.  An estimate to refuse what
    cannot fit, not a measurement.
    """
    from .expand import expand

    points = expand(sc, allow_data_sweeps=True)
    item = 4 if sc.run.dtype == "float32" else 8
    d = 1
    try:
        d = points[0].target.build().dim
    except Exception:  # noqa: BLE001 - the checks above already built it; an estimate never fails loading
        pass
    m_target, m_ref = sc.target.n, sc.metrics.reference_n
    shared = {"target sample": 2.0 * m_target * d * 8, "reference sample": 2.0 * m_ref * d * 8}
    worst, worst_parts = 0.0, {}
    for p in points:
        n = p.init.n
        parts = {"particles": 4.0 * n * d * item + 2.0 * n * d * 4}
        params = dataclasses.asdict(_flows.make_params(p.flow, **p.params))
        if p.flow == "sliced":
            parts["sliced projections"] = 8.0 * params["n_projections"] * (n + m_target + d)
        if p.flow == "w2_exact":
            parts["w2_exact plan"] = 2.0 * 8 * n * m_target
        if p.flow in ("kale", "drmmd") and params.get("solver") in ("auto", "dense") and n + m_target <= params.get("max_dense", 0):
            parts[f"{p.flow} Gram matrices"] = 3.0 * 8 * (n + m_target) ** 2
        if "w2" in sc.metrics.names and max(n, m_ref) <= sc.metrics.w2_max_points:
            parts["w2 metric plan"] = 2.0 * 8 * n * m_ref
        if p.method == "generator" and sc.generator is not None:
            g = sc.generator
            weights = (g.latent_dim + 1) * g.width + (g.depth - 1) * (g.width + 1) * g.width + (g.width + 1) * d
            parts["generator"] = 4.0 * 8 * weights + 4.0 * 8 * g.batch_size * g.width
        total = sum(parts.values())
        if total > worst:
            worst, worst_parts = total, parts
    parts = {**shared, **worst_parts}
    return int(sum(parts.values())), parts


def check_size(sc: Scenario, available: int | None = None) -> None:
    """Refuse (ScenarioError) a scenario whose :func:`memory_estimate` exceeds the available memory.

    ``available`` defaults to the memory a new allocation can take now
    (``MemAvailable``, capped by a cgroup limit); where that is unknown,
    nothing is refused.
    """
    need, parts = memory_estimate(sc)
    if available is None:
        available = _targets._available_memory()
    if available is None or need <= available:
        return
    biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
    detail = ", ".join(f"{k} {_bytes(v)}" for k, v in biggest)
    raise ScenarioError(
        f"{sc.source}: the run needs about {_bytes(need)} of memory ({detail}) but {_bytes(available)} is "
        "available; make init.n, target.n, metrics.reference_n or the flow's sizes smaller, or pass "
        "--no-size-check to try anyway", source=sc.source)


def check_environment(sc: Scenario) -> None:
    """Refuse (ScenarioError) what this machine cannot run: ``backend = "cupy"`` without a usable CuPy.

    Kept out of :func:`loads`: a scenario written for a GPU machine stays a
    valid file everywhere (planning a sweep, reading its results); ``wgfsim
    validate``, ``run`` and ``sweep`` call this before any work.
    """
    if sc.run.backend == "cupy":
        available, why = cupy_status()
        if not available:
            raise ScenarioError(f'{sc.source}: run.backend: "cupy" is not usable on this machine ({why}); expected '
                                '"auto", "numba" or "numpy" here', source=sc.source, path="run.backend")
