"""Loading a scenario: TOML text -> validated :class:`~.spec.Scenario`; every mistake found before any work.

Sections are read here (with :class:`~.check.Checker`'s typed getters, so
every message names the file and the key path); flow and target options are
judged by their owners; expansion (:mod:`.expand`) validates every run point.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import tomllib
from typing import Any, Sequence

from .. import flows as _flows
from .. import targets as _targets
from ..backend import registered as _backends
from ..errors import OptionError
from .. import metrics as _metric_records
from .. import methods as _methods
from ..primitives import DEFAULT_PRUNE_TOL
from .check import Checker, axis_values, build_dist, hint, join, show
from .expand import data_axes, dist_points, expand_points
from .spec import DEFAULT_N, DTYPES, REFERENCE_N_MAX, INIT_GENERATOR, METHODS, METRICS, DistSpec, FlowSpec, MetricsSpec, RunSpec, Scenario, ScenarioError

# the scenario name is the run file's name: OUTPUT/NAME.h5 must stay inside OUTPUT
NAME_MAX = 100
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}" % (NAME_MAX - 1))

# ---------------------------------------------------------------- overrides


# Arrays and tables nest at most this deep (a scenario needs about 5: [[flow]] tables holding swept lists of
# matrices).  tomllib recurses once per level and hits Python's recursion limit near 500 levels, and the
# checks that follow walk the values recursively: deeper input is refused up front, in one line.
MAX_NESTING = 32


def _nesting(value) -> int:
    """How deep lists and tables nest in ``value`` (0 for a scalar), walked without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, dict):
            todo.extend((w, depth + 1) for w in v.values())
        elif isinstance(v, list):
            todo.extend((w, depth + 1) for w in v)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING:
            break
    return deepest


def _too_deep(where: str, source: str, path: str | None = None) -> ScenarioError:
    return ScenarioError(f"{source}: {where}arrays or inline tables nested more than {MAX_NESTING} deep; expected a "
                         "scenario value (lists of numbers, a list of values to sweep, tables of options)",
                         source=source, path=path)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _parse_value(raw: str, source: str = "<string>", text: str = ""):
    """An override's value: a TOML value (``100``, ``[0.5, 1.0]``, ``true``), else a bare string."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    except RecursionError:
        raise _too_deep(f"override {_short(text)!r}: ", source) from None
    if _nesting(value) > MAX_NESTING:
        raise _too_deep(f"override {_short(text)!r}: ", source)
    return value


def _apply_overrides(data: dict, overrides: Sequence[str], source: str) -> dict[str, str]:
    """Set each ``key.path=value`` in ``data`` (in place); returns canonical key path -> override.

    Intermediate tables missing from the file are created (``generator.width=64``
    adds a ``[generator]`` table); keys themselves are checked later, with the
    rest of the scenario, so a misspelt override key fails like a misspelt
    file key.
    """
    done: dict[str, str] = {}
    for text in overrides:
        bad = Checker(source, {})
        if not isinstance(text, str) or "=" not in text:
            bad.fail("", f"override {text!r} has no '='", "KEY.PATH=VALUE, e.g. run.steps=100")
        key, raw = (part.strip() for part in text.split("=", 1))
        parts = key.split(".")
        if not key or any(not p for p in parts):
            bad.fail("", f"override {text!r} has an empty key", "KEY.PATH=VALUE, e.g. run.steps=100")
        value = _parse_value(raw, source, text)
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
                path = join(path, index)
                if last:
                    node[index] = copy.deepcopy(value)
                else:
                    node = node[index]
            elif isinstance(node, dict):
                path = join(path, part)
                if last:
                    node[part] = copy.deepcopy(value)
                else:
                    node = node.setdefault(part, {})
            else:
                bad.fail(path, f"override {text!r}: {path} is a value, not a table", "a key path ending at a value")
        done[path] = text
    return done


# ---------------------------------------------------------------- sections

# the method tables ([generator]) and the [metrics] options come from the method and metric records
_TABLES = tuple(r.table for r in _methods.RECORDS.values() if r.table)
_TOP = ("name", "description", "target", "init", "flow", "run", "metrics", *_TABLES)
_RUN = ("methods", "steps", "step_size", "record_every", "seeds", "backend", "dtype", "minibatch", "record_velocity",
        "prune_tol")
_METRIC_OPTIONS = tuple(o for r in _metric_records.RECORDS.values() for o in r.options)
_METRICS = ("names", "reference_n", "final_window", *(o.key for o in _METRIC_OPTIONS))


def _dist(chk: Checker, data: dict, section: str, base_dir: str, *, target: bool):
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
        kind_values = axis_values(chk, f"{section}.kind", raw_kind)
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
            chk.fail(f"{section}.{key}", f"unknown option of kind {shown!r}", f"one of {', '.join(choices)}", hint(key, choices))
        options[key] = copy.deepcopy(value)
    spec = DistSpec(kind=copy.deepcopy(raw_kind), n=n, options=options, seed=seed, base_dir=base_dir)
    axes = data_axes(spec)
    for key, values in axes:
        axis_values(chk, f"{section}.{key}", values)  # no empty sweeps
    return spec, axes


def _flow_table(chk: Checker, entry, i: int) -> FlowSpec:
    path = f"flow[{i}]"
    table = chk.table(entry, path, 'name = "kl_kde", bandwidth = 0.5')
    names = _flows.names()
    if "name" not in table:
        chk.fail(f"{path}.name", "missing", f"a flow name, one of {', '.join(names)}")
    if isinstance(table["name"], list):
        chk.fail(f"{path}.name", f"got {show(table['name'])}", "one flow name per [[flow]] table (repeat [[flow]] for more)")
    name = chk.choice(table["name"], f"{path}.name", names, "flow")
    known = list(_flows.options(name))
    options = {}
    for key, value in table.items():
        if key == "name":
            continue
        if key not in known:
            chk.fail(f"{path}.{key}", f"unknown option of flow {name!r}", f"one of {', '.join(known)}", hint(key, known))
        if isinstance(value, list):
            axis_values(chk, f"{path}.{key}", value)
        options[key] = copy.deepcopy(value)
    return FlowSpec(name=name, options=options)


def _run(chk: Checker, data: dict) -> RunSpec:
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
    if any(_methods.record(m).needs_step_size for m in methods) or "step_size" in table:
        step_size = chk.positive(
            chk.require(table, "step_size", "run", f"a positive number ({eta_what})"), "run.step_size", what=eta_what
        )
    else:
        step_size = math.nan  # runs of methods with their own time step only (the generator's drift_step)
    raw_seeds = table.get("seeds", [0])
    if not isinstance(raw_seeds, list) or not raw_seeds:
        chk.fail("run.seeds", f"got {show(raw_seeds)}", "a non-empty list of integers >= 0, e.g. seeds = [0, 1, 2]")
    seeds = tuple(chk.integer(s, f"run.seeds[{j}]", minimum=0) for j, s in enumerate(raw_seeds))
    for j, s in enumerate(seeds):
        if s in seeds[:j]:
            chk.fail(f"run.seeds[{j}]", f"seed {s} is listed twice", "distinct seeds")
    prune_tol = table.get("prune_tol", DEFAULT_PRUNE_TOL)
    if isinstance(prune_tol, bool) or not isinstance(prune_tol, (int, float)) or not 0 <= prune_tol < 1:
        chk.fail("run.prune_tol", f"got {show(prune_tol)}",
                 "a number in [0, 1): the share of each row's kernel sum the block-sparse kernel may skip (0: every pair)")
    backend = chk.choice(table.get("backend", "auto"), "run.backend", ("auto", *_backends()), "backend")
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
        prune_tol=float(prune_tol),
    )


def _metrics(chk: Checker, data: dict, target_n: int) -> tuple[MetricsSpec, bool]:
    """The [metrics] table and whether ``names`` was given explicitly; the options are the metric records'."""
    table = chk.table(data.get("metrics", {}), "metrics", 'names = ["mmd2", "w2"]')
    chk.keys(table, "metrics", _METRICS)
    explicit = "names" in table
    names = chk.choices(table["names"], "metrics.names", METRICS, '["mmd2", "w2"]', "metric") if explicit else METRICS
    reference_n = chk.integer(table.get("reference_n", min(target_n, REFERENCE_N_MAX)), "metrics.reference_n",
                              what="held-out reference samples")
    options = {}
    for o in _METRIC_OPTIONS:
        value = table.get(o.key, o.default)
        if value is not None:
            path = f"metrics.{o.key}"
            if o.kind == "positive_list":
                value = _positive_list(chk, value, path, o.what)
            else:
                value = chk.integer(value, path, what=o.what) if o.kind == "integer" else chk.positive(value, path, what=o.what)
        options[o.key] = value
    # a metric with a dimension of its own (mmd2_at) is recorded exactly when its option lists the values
    for name, record in _metric_records.axis_records().items():
        if options.get(record.axis.option) is None:
            if explicit and name in names:
                chk.fail("metrics.names", f'"{name}" needs metrics.{record.axis.option}',
                         f"metrics.{record.axis.option} = [0.05, 0.2] (its values), or no \"{name}\"")
            names = tuple(n for n in names if n != name)
        elif name not in names:
            names = tuple(names) + (name,)
    window = chk.integer(table.get("final_window", 5), "metrics.final_window", what="records averaged into the final score")
    return MetricsSpec(names=names, reference_n=reference_n, final_window=window, **options), explicit


def _positive_list(chk: Checker, value, path: str, what: str) -> tuple[float, ...]:
    """A non-empty list of distinct positive numbers (a single number is a list of one), in the order given."""
    expected = "a non-empty list of distinct positive numbers" + (f" ({what})" if what else "")
    values = value if isinstance(value, list) else [value]
    if not values:
        chk.fail(path, "got an empty list", expected)
    out = tuple(chk.positive(v, path, what=expected) for v in values)
    if len(set(out)) != len(out):
        chk.fail(path, f"got {show(value)} (a bandwidth listed twice)", expected)
    return out


def _tables(chk: Checker, data: dict, methods: tuple[str, ...], init_n: int, init_kind=None) -> dict:
    """The method tables ([generator]): each judged option by option by its method record.

    ``[init] kind = "generator"`` reads the generator's table even when ``run.methods`` has no generator:
    the particles start at that untrained generator's samples.
    """
    out = {}
    for rec in _methods.RECORDS.values():
        if rec.table is None:
            continue
        if rec.name not in methods and rec.table != init_kind:
            if rec.table in data:
                chk.fail(rec.table, f'a [{rec.table}] table but run.methods has no "{rec.name}"',
                         f'run.methods to include "{rec.name}", or no [{rec.table}] table')
            continue
        table = chk.table(data.get(rec.table, {}), rec.table, "width = 256, depth = 3")
        chk.keys(table, rec.table, tuple(f.name for f in dataclasses.fields(rec.table_spec)))
        values: dict[str, Any] = {}
        for key, value in table.items():
            try:  # the method's own configs judge their options
                values[key] = rec.check_option(key, value)
            except OptionError as err:
                chk.fail(f"{rec.table}.{key}", f"got {show(value)}", err.expected)
        if "eval_n" in {f.name for f in dataclasses.fields(rec.table_spec)}:
            values.setdefault("eval_n", init_n)
        out[rec.table] = rec.table_spec(**values)
    if init_kind == INIT_GENERATOR and getattr(out.get(INIT_GENERATOR), "start", None) == "init":
        chk.fail("generator.start", '"init" fits the [init] measure, but init.kind is "generator" (the untrained '
                 'generator itself)', 'start = "random" there, or an [init] distribution')
    return out


# ---------------------------------------------------------------- loading


def _check_data(chk: Checker, target, target_axes, init, init_axes, metrics: MetricsSpec, explicit_metrics: bool) -> bool:
    """Every data point must build, agree in dimension and have the rows its sample sizes need.

    Returns whether some target data point has mode centres.
    """
    target_dims: set[int] = set()
    any_centres = False
    for point, _, index in dist_points(target, target_axes):
        t = build_dist(chk, "target", point, index, {k for k, _ in target_axes})
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
    for point, _, index in dist_points(init, init_axes):
        if point.kind == INIT_GENERATOR:
            continue  # drawn by the run from the untrained generator, in the target's dimension
        t = build_dist(chk, "init", point, index, {k for k, _ in init_axes})
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
        data = tomllib.loads(text)
    except RecursionError:
        raise _too_deep("", source) from None
    except tomllib.TOMLDecodeError as err:
        msg = str(err)
        line = re.search(r"line (\d+)", msg)
        where = f"line {line.group(1)}: " if line else ""
        raise ScenarioError(f"{source}: {where}invalid TOML: {msg}", source=source) from None
    if _nesting(data) > MAX_NESTING:
        raise _too_deep("", source)
    return data


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
    chk = Checker(source, _apply_overrides(data, overrides, source))
    chk.keys(data, "", _TOP)

    if "name" not in data:
        chk.fail("name", "missing", 'a scenario name, e.g. name = "quickstart"')
    name = chk.string(data["name"], "name", 'a non-empty string, e.g. name = "quickstart"')
    if not _NAME.fullmatch(name):
        shown = show(name if len(name) <= 60 else name[:40]) + (f" ... ({len(name)} characters)" if len(name) > 60 else "")
        chk.fail("name", f"got {shown}", f"a file name: 1 to {NAME_MAX} letters, digits, '.', '_' or '-', not "
                 "starting with '.' (the run is written to OUTPUT/NAME.h5, so no folders or absolute paths)")
    description = data.get("description", "")
    if not isinstance(description, str):
        chk.fail("description", f"got {show(description)}", "a string")

    target, target_axes = _dist(chk, data, "target", base_dir, target=True)
    init, init_axes = _dist(chk, data, "init", base_dir, target=False)

    if "flow" not in data:
        chk.fail("flow", "missing", 'at least one [[flow]] table with name = "..."')
    raw_flows = data["flow"]
    if isinstance(raw_flows, dict):
        chk.fail("flow", "a single [flow] table", "an array of tables: write [[flow]] (double brackets)")
    if not isinstance(raw_flows, list) or not raw_flows:
        chk.fail("flow", f"got {show(raw_flows)}", 'at least one [[flow]] table with name = "..."')
    flow_specs = tuple(_flow_table(chk, entry, i) for i, entry in enumerate(raw_flows))

    run = _run(chk, data)
    metrics, explicit_metrics = _metrics(chk, data, target.n)
    tables = _tables(chk, data, run.methods, init.n, init.kind)

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
        tables=tables,
        overrides=overrides,
        description=description,
        data_sweeps=tuple(f"target.{k}" for k, v in target_axes if len(v) > 1)
        + tuple(f"init.{k}" for k, v in init_axes if len(v) > 1),
    )
    expand_points(sc, chk)  # validates every flow point with its own Params and the runs' uniqueness
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



