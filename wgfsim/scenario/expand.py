"""Expanding a scenario into its runs: data points x flows x flow sweeps x methods x seeds."""

from __future__ import annotations

import copy
import dataclasses
import itertools

from .. import flows as _flows
from .. import targets as _targets
from .check import Checker, check_flow_params
from .spec import INIT_GENERATOR, DistSpec, FlowSpec, RunPoint, Scenario

__all__ = ["expand", "expand_points", "data_axes", "dist_points", "coord_text", "depth"]


def depth(value) -> int:
    """Nesting depth of lists: 0 for a scalar, 1 for [1, 2], 2 for [[1, 2]]."""
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def coord_text(value) -> str:
    # xarray coordinates need scalars of one type: where a swept value is a list,
    # every value of that coordinate is stored as its text ("[0.25, 0.5]", "1.0")
    return value if isinstance(value, str) else repr(list(value) if isinstance(value, tuple) else value)


def data_axes(spec: DistSpec) -> list[tuple[str, list]]:
    """The sweep axes of a checked [target] / [init]: a list ``kind`` and lists deeper than their option."""
    kinds = spec.kind if isinstance(spec.kind, list) else [spec.kind]
    ranks: dict[str, int] = {}
    for k in kinds:
        if k != INIT_GENERATOR:  # no options of its own
            ranks.update(_targets.option_ranks(k))
    axes = [("kind", list(kinds))] if isinstance(spec.kind, list) else []
    return axes + [(k, list(v)) for k, v in spec.options.items() if depth(v) > ranks.get(k, 0)]


def dist_points(spec: DistSpec, axes: list[tuple[str, list]]):
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


# ---------------------------------------------------------------- expansion


def _flow_points(chk: Checker, i: int, spec: FlowSpec):
    """[(params, swept values, sweep indices)] for one [[flow]] table, validated."""
    axes = [(k, v) for k, v in spec.options.items() if isinstance(v, list)]
    out = []
    for combo in itertools.product(*(list(enumerate(v)) for _, v in axes)):
        params = copy.deepcopy(spec.options)
        swept, index = {}, {}
        for (key, values), (j, value) in zip(axes, combo):
            params[key] = copy.deepcopy(value)
            index[key] = j
            if len(values) > 1:  # a one-value list ([[0.25, 0.5]]) sets a list value: no coordinate
                swept[key] = value
        resolved = check_flow_params(chk, i, spec, params, index)
        out.append((params, swept, resolved))
    return out


def expand_points(sc: Scenario, chk: Checker) -> list[RunPoint]:
    flow_points = [_flow_points(chk, i, spec) for i, spec in enumerate(sc.flows)]

    # options that distinguish two [[flow]] tables of the same flow become coordinates too
    distinguishing: dict[str, set[str]] = {}
    for spec in sc.flows:
        distinguishing.setdefault(spec.name, set())
    for name in distinguishing:
        specs = [s for s in sc.flows if s.name == name]
        if len(specs) > 1:
            defaults = _flows.options(name)
            for key in defaults:
                seen = {repr(s.options.get(key, defaults[key])) for s in specs}
                if len(seen) > 1:
                    distinguishing[name].add(key)

    target_points = dist_points(sc.target, data_axes(sc.target))
    init_points = dist_points(sc.init, data_axes(sc.init))

    points: list[RunPoint] = []
    seen: dict[tuple, int] = {}
    for (tpoint, tvalues, _), (ipoint, ivalues, _) in itertools.product(target_points, init_points):
        data_coords = {f"target.{k}": v for k, v in tvalues.items()} | {f"init.{k}": v for k, v in ivalues.items()}
        for i, (spec, fpoints) in enumerate(zip(sc.flows, flow_points)):
            defaults = _flows.options(spec.name)
            for params, swept, resolved in fpoints:
                extra = {k: params.get(k, defaults[k]) for k in sorted(distinguishing[spec.name]) if k not in swept}
                for method in sc.run.methods:
                    for seed in sc.run.seeds:
                        coords = {"flow": spec.name, "method": method, "seed": seed, **data_coords, **swept, **extra}
                        coords = {k: copy.deepcopy(v) for k, v in coords.items()}
                        key = tuple(sorted((k, repr(v)) for k, v in coords.items()))
                        if key in seen:
                            chk.fail(f"flow[{i}]", f"repeats the runs of flow[{seen[key]}]", "each [[flow]] table to differ in some option")
                        seen[key] = i
                        init_point = dataclasses.replace(ipoint, seed=seed)
                        if ipoint.kind == INIT_GENERATOR:  # the particles draw the untrained generator of this table
                            init_point = dataclasses.replace(init_point, options={
                                "generator": dataclasses.asdict(sc.tables[INIT_GENERATOR])})
                        points.append(
                            RunPoint(
                                flow=spec.name,
                                params=copy.deepcopy(params),
                                method=method,
                                seed=seed,
                                target=tpoint,
                                init=init_point,
                                coords=coords,
                                flow_params=resolved,
                            )
                        )
    # a coordinate with a list value anywhere is stored as text everywhere, so its values share one type
    listy = {k for p in points for k, v in p.coords.items() if isinstance(v, (list, tuple))}
    for p in points:
        for k in listy & p.coords.keys():
            p.coords[k] = coord_text(p.coords[k])
    return points


def expand(sc: Scenario, *, allow_data_sweeps: bool = False) -> list[RunPoint]:
    """The runs of a scenario: data points x flows x flow sweeps x methods x seeds.

    Parameters
    ----------
    sc : Scenario
        A scenario from :func:`load` / :func:`loads`.
    allow_data_sweeps : bool
        Whether lists in [target] / [init] may sweep the data (``wgfsim
        sweep``); ``wgfsim run`` writes one file with one target sample, so
        it passes False and gets a :class:`ScenarioError` for them.

    Returns
    -------
    list of RunPoint
        In order: data points, then ``[[flow]]`` tables in file order, their
        sweep points (first key slowest), methods, seeds.
    """
    chk = Checker(sc.source, {})
    if sc.sweeps_data and not allow_data_sweeps:
        key = sc.data_sweeps[0]
        chk.fail(
            key,
            "a list sweeps the data, which needs `wgfsim sweep` (one output file per data point)",
            f"a single value for `wgfsim run`, or run `wgfsim sweep {sc.source}`",
        )
    return expand_points(sc, chk)
