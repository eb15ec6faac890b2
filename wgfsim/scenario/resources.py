"""The one resource estimator of a scenario: memory (bytes) and pairs (per step and per record).

Built from what the records declare, so that no table here names a flow, a
metric or a method: each :class:`~wgfsim.flows.Flow` declares
``memory(n, m, d, params)`` (what its velocity holds beyond the particles)
and ``pairs(n, m, params)`` (the pairs one velocity call visits); each
metric record (:data:`wgfsim.metrics.RECORDS`) its ``memory`` and ``pairs``
per evaluation; each method record (:data:`wgfsim.methods.RECORDS`) its own
``memory``.  An estimate to refuse what cannot fit, not a measurement.
"""

from __future__ import annotations

import dataclasses

from .. import flows as _flows
from .. import metrics as _metrics
from .. import methods as _methods
from .. import targets as _targets

from .expand import expand
from .spec import RunPoint, Scenario, ScenarioError

__all__ = ["memory_estimate", "pairs_estimate", "check_size", "check_environment", "describe"]


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 2**10:.3g} KiB"


def _points(sc: Scenario) -> tuple[list[RunPoint], int]:
    points = expand(sc, allow_data_sweeps=True)
    d = 1
    try:
        d = points[0].target.build().dim
    except Exception:  # noqa: BLE001 - loading already built it; an estimate never fails
        pass
    return points, d


def _params(p: RunPoint):
    return p.flow_params if p.flow_params is not None else _flows.make_params(p.flow, **p.params)


def _metric_options(sc: Scenario, name: str) -> dict:
    return _metrics.options_of([name], dataclasses.asdict(sc.metrics)).get(name, {})


def memory_estimate(sc: Scenario) -> tuple[int, dict[str, float]]:
    """Bytes one run of ``sc`` needs at its peak, and the parts of the largest.

    Runs of a file are run one after another, so the peak is the largest run
    plus what every run shares: the target sample (``target.n x dim``, with
    the sampler's copy) and the reference sample (``metrics.reference_n x
    dim``, likewise), in float64.  A run holds its particles ``x`` (N x d in
    the run's dtype: ``x``, the field ``v``, ``x + eta v`` and the kernels'
    temporaries, about 4 copies), a record on the host (float32 positions
    and velocities), and what its flow, its metrics and its method declare
    (``sliced``'s projections, ``w2_exact``'s dense plan, the critic flows'
    Gram matrices, the exact-W2 metric's plan, the generator's network).
    """
    points, d = _points(sc)
    item = 4 if sc.run.dtype == "float32" else 8
    m_target, m_ref = sc.target.n, sc.metrics.reference_n
    shared = {"target sample": 2.0 * m_target * d * 8, "reference sample": 2.0 * m_ref * d * 8}
    worst, worst_parts = 0.0, {}
    for p in points:
        n = p.init.n
        parts = {"particles": 4.0 * n * d * item + 2.0 * n * d * 4}
        flow = _flows.get(p.flow)
        if flow.memory is not None:
            parts.update(flow.memory(n, m_target, d, _params(p)))
        for name in sc.metrics.names:
            record = _metrics.RECORDS[name]
            if record.memory is not None:
                parts.update(record.memory(n, m_ref, d, _metric_options(sc, name)))
        method = _methods.record(p.method)
        if method.memory is not None and method.table is not None:
            parts.update(method.memory(sc.tables.get(method.table), d))
        total = sum(parts.values())
        if total > worst:
            worst, worst_parts = total, parts
    parts = {**shared, **worst_parts}
    return int(sum(parts.values())), parts


def pairs_estimate(sc: Scenario) -> dict[str, float]:
    """The most point pairs one run visits: ``{"per step": ..., "per record": ...}``.

    Per step: the flow's velocity (its record's ``pairs``); per record: the
    metrics asked for against the reference sample (their records' ``pairs``).
    """
    points, d = _points(sc)
    m_target, m_ref = sc.target.n, sc.metrics.reference_n
    step = record = 0.0
    for p in points:
        n = p.init.n
        flow = _flows.get(p.flow)
        step = max(step, flow.pairs(n, m_target, d, _params(p)) if flow.pairs is not None else float(n * m_target))
        per_record = sum(_metrics.RECORDS[name].pairs(n, m_ref, _metric_options(sc, name))
                         for name in sc.metrics.names if _metrics.RECORDS[name].pairs is not None)
        record = max(record, per_record)
    return {"per step": step, "per record": record}


def check_size(sc: Scenario, available: int | None = None) -> None:
    """Refuse (ScenarioError) a scenario beyond this machine: memory, or time measured in point pairs.

    Memory: :func:`memory_estimate` against what a new allocation can take
    now (``available``, default ``MemAvailable`` capped by a cgroup limit;
    where that is unknown, nothing is refused on memory).  Time:
    :func:`pairs_estimate`, the pairs one step's field or one record's
    metrics visit, against ``wgfsim.flows.LIMITS["max_pairs"]`` (1e13,
    hours on a CPU core): a run that would sit for hours at one step or one
    record with nothing shown is refused before it starts.
    """
    need, parts = memory_estimate(sc)
    if available is None:
        available = _targets._available_memory()
    if available is not None and need > available:
        biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
        detail = ", ".join(f"{k} {_bytes(v)}" for k, v in biggest)
        raise ScenarioError(
            f"{sc.source}: the run needs about {_bytes(need)} of memory ({detail}) but {_bytes(available)} is "
            "available; make init.n, target.n, metrics.reference_n or the flow's sizes smaller, or pass "
            "--no-size-check to try anyway", source=sc.source)
    limit = _flows.LIMITS["max_pairs"]
    pairs = pairs_estimate(sc)
    for where, what in (("per step", "the flow's field (init.n, target.n and the flow's sizes)"),
                        ("per record", "the metrics against the reference sample (init.n, metrics.reference_n, "
                                       "metrics.names)")):
        if pairs[where] > limit:
            raise ScenarioError(
                f"{sc.source}: {what} would visit about {pairs[where]:.3g} point pairs {where}, more than "
                f"{limit:.3g} (hours on a CPU core before the next step or record); make those sizes smaller, "
                "or pass --no-size-check to try anyway", source=sc.source)


def describe(sc: Scenario) -> str:
    """One line for ``wgfsim validate``: the memory and pairs estimates (and so the time a step and a record take)."""
    need, _ = memory_estimate(sc)
    pairs = pairs_estimate(sc)
    total = sc.run.steps * pairs["per step"] + (sc.run.steps // sc.run.record_every + 1) * pairs["per record"]
    return (f"estimate: about {_bytes(need)} of memory at the peak of a run; {pairs['per step']:.3g} point pairs "
            f"per step, {pairs['per record']:.3g} per record, {total:.3g} per run (~1e9 pairs/s on a CPU core)")


def check_environment(sc: Scenario) -> None:
    """Refuse (ScenarioError) what this machine cannot run: a backend that is not available here.

    Kept out of loading: a scenario written for a GPU machine stays a valid
    file everywhere (planning a sweep, reading its results); ``wgfsim
    validate``, ``run`` and ``sweep`` call this before any work.
    """
    from ..backend import get as get_backend

    if sc.run.backend == "auto":
        return
    ok, why = get_backend(sc.run.backend).available()
    if not ok:
        raise ScenarioError(f'{sc.source}: run.backend: "{sc.run.backend}" is not usable on this machine ({why}); '
                            'expected "auto", "numba" or "numpy" here', source=sc.source, path="run.backend")



