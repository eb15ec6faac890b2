"""Gretton et al. Section 4.3, Figure 2: drifting generators, six flows, five 2-D toys.

The experiment is ``scenarios/paper_fig2.toml`` run as a sweep (one file per
point, :func:`wgfsim.sweep.run_sweep`); this module reads the sweep back from
its files alone, tabulates the final MMD^2 (Gaussian kernel, median-heuristic
bandwidth, :func:`wgfsim.metrics.mmd2`) per (toy, flow, hyper-parameter) over
seeds, and draws the figure with :func:`wgfsim.plots.final_metric_figure` (the
one Figure 2 implementation): MMD^2 against the hyper-parameter, one panel per
toy, one line per flow, the seeds as a min-max band.

Each flow's hyper-parameter is the registry's ``hyper`` and the x axis its
``length_scale`` (bandwidth sigma, ``sqrt(eps)``, the temperature's length),
both read from each run's stored ``flow_params`` (typed, :func:`wgfsim.io.flow_params`).

Command line::

    wgfsim study paper_fig2 OUT_DIR [--run SCENARIO [--set K=V ...] [--workers 2]]
                                    [--figure docs/figures/paper_fig2.png]

runs the sweep first when ``--run`` is given, then prints the table (markdown)
and writes the figure.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from collections import defaultdict

import numpy as np

from .. import flows as _flows

__all__ = ["collect", "summarise", "best", "markdown_table", "figure", "main", "TOYS"]

TOYS = ("moons", "eight_gaussians", "checkerboard", "spiral", "rings")


def _hyper_value(value) -> float:
    """The hyper-parameter as one number: a list value counts by its largest entry, as ``length_scale`` does."""
    if isinstance(value, (tuple, list)):
        return float(max(value))
    return float(value)


def collect(out_dir) -> list[dict]:
    """One row per finished point: toy, flow, hyper-parameter value and length, seed, first and final mmd2.

    Everything comes from the point files (:func:`wgfsim.open_sweep`): the
    flow's full options from ``flow_params`` (so a value left at its default
    is known), the toy from the swept ``target.kind`` or the file's
    ``target`` description.  Points not finished yet are left out; a diverged
    run (NaN) keeps NaN.  A list-valued hyper-parameter counts by its largest entry (the entry
    ``length_scale`` measures).  ``converged``: False where the run's Sinkhorn missed its tolerance
    (:func:`wgfsim.studies.convergence.unconverged`).
    """
    from ..io import flow_params, open_sweep

    from .convergence import unconverged

    ds = open_sweep(out_dir, layout="runs", variables=["mmd2", "sinkhorn_error"]).reset_index("run")
    loose = unconverged(ds)
    kinds = ds["target.kind"].values if "target.kind" in ds.coords else None
    default_kind = json.loads(ds.attrs.get("target", "{}") or "{}").get("kind", "")
    rows = []
    typed = flow_params(ds)  # each run's (flow, Params), read back from the files
    for i in range(ds.sizes["run"]):
        if str(ds["status"].values[i]) == "missing":
            continue
        flow, p = typed[i]
        entry = _flows.get(flow)
        value = _hyper_value(getattr(p, entry.hyper)) if entry.hyper else math.nan
        length = entry.length_scale(p) if entry.length_scale is not None else math.nan
        mmd = np.asarray(ds["mmd2"].values[i], dtype=float)  # (time,)
        recorded = np.flatnonzero(np.isfinite(ds["t"].values[i]))
        rows.append({
            "toy": str(kinds[i]) if kinds is not None else default_kind,
            "flow": flow,
            "value": value,
            "length": float(length),
            "seed": int(ds["seed"].values[i]),
            "mmd2_first": float(mmd[recorded[0]]) if recorded.size else math.nan,
            "mmd2": float(mmd[recorded[-1]]) if recorded.size else math.nan,
            "converged": not bool(loose[i]),
        })
    return rows


def summarise(rows: list[dict]) -> dict:
    """``{(toy, flow, value): (mean, min, max, n)}`` of the final mmd2 over seeds (NaN-aware)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["toy"], r["flow"], r["value"])].append(r["mmd2"])
    out = {}
    for k, v in groups.items():
        a = np.asarray(v, dtype=float)
        fin = a[np.isfinite(a)]
        if fin.size:
            out[k] = (float(fin.mean()), float(fin.min()), float(fin.max()), int(a.size))
        else:
            out[k] = (math.nan, math.nan, math.nan, int(a.size))
    return out


def best(summary: dict) -> dict:
    """``{(toy, flow): (value, mean mmd2)}`` at the flow's sweet spot (lowest seed-mean)."""
    out = {}
    for (toy, flow, value), (mean, *_rest) in summary.items():
        if not math.isfinite(mean):
            continue
        if (toy, flow) not in out or mean < out[(toy, flow)][1]:
            out[(toy, flow)] = (value, mean)
    return out


def _toys(rows):
    present = {r["toy"] for r in rows}
    return [t for t in TOYS if t in present] + sorted(present - set(TOYS))


def _flow_order(rows):
    present = {r["flow"] for r in rows}
    return [f for f in _flows.names() if f in present]


def markdown_table(rows: list[dict]) -> str:
    """Final MMD^2 (seed mean, with [min, max]) per toy, flow and hyper-parameter value.

    A value some of whose runs did not converge (Sinkhorn's tolerance unmet)
    is marked ``(unconverged)``.
    """
    s = summarise(rows)
    lines = []
    for toy in _toys(rows):
        first = [r["mmd2_first"] for r in rows if r["toy"] == toy]
        lines.append(f"**{toy}** (untrained generator: MMD^2 = {np.mean(first):.2e})\n")
        lines.append("| flow | hyper-parameter | values: final MMD^2 mean [min, max] over seeds |")
        lines.append("|---|---|---|")
        for flow in _flow_order(rows):
            vals = sorted(v for (t, f, v) in s if t == toy and f == flow)
            cells = []
            for v in vals:
                m, lo, hi, _ = s[(toy, flow, v)]
                loose = any(not r.get("converged", True) for r in rows
                            if (r["toy"], r["flow"], r["value"]) == (toy, flow, v))
                cells.append(f"{v:g}: {m:.2e} [{lo:.1e}, {hi:.1e}]" + (" (unconverged)" if loose else ""))
            lines.append(f"| {flow} | {_flows.get(flow).hyper} | " + "; ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def figure(out_dir, path) -> pathlib.Path:
    """The figure of the sweep in ``out_dir``, drawn by the one Figure 2 implementation,
    :func:`wgfsim.plots.final_metric_figure` (final MMD^2 against each flow's length scale, one panel per toy)."""
    from ..io import open_sweep
    from ..plots.sweeps import DPI, SWEEP_VARIABLES, final_metric_figure

    ds = open_sweep(out_dir, layout="points", variables=list(SWEEP_VARIABLES))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    final_metric_figure(ds, "mmd2").savefig(path, dpi=DPI)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="wgfsim study paper_fig2", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="the sweep folder (sweep.json + point files)")
    ap.add_argument("--run", metavar="SCENARIO", help="run the sweep of this scenario into OUT_DIR first")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--figure", default="docs/figures/paper_fig2.png")
    ap.add_argument("--unconverged", choices=["flag", "refuse"], default="flag",
                    help="points whose Sinkhorn missed its tolerance: mark them (default) or refuse (exit 1)")
    args = ap.parse_args(argv)
    if args.run:
        from .. import scenario, sweep

        sc = scenario.load(args.run, overrides=args.overrides)
        res = sweep.run_sweep(sc, args.out_dir, workers=args.workers)
        print(res.summary(), file=sys.stderr)
    rows = collect(args.out_dir)
    if not rows:
        print(f"{args.out_dir}: no finished points yet", file=sys.stderr)
        return 1
    loose = [r for r in rows if not r["converged"]]
    if loose:
        print(f"{args.out_dir}: {len(loose)} run(s) whose Sinkhorn missed its tolerance (sinkhorn_error in their "
              "files): " + ", ".join(f"{r['toy']} {r['flow']} {r['value']:g} seed {r['seed']}" for r in loose[:5])
              + (" ..." if len(loose) > 5 else ""), file=sys.stderr)
        if args.unconverged == "refuse":
            return 1
    print(markdown_table(rows))
    for (toy, flow), (v, m) in sorted(best(summarise(rows)).items()):
        print(f"best {toy:16s} {flow:15s} {_flows.get(flow).hyper}={v:g}: {m:.2e}")
    print(f"figure: {figure(args.out_dir, args.figure)}", file=sys.stderr)
    return 0
