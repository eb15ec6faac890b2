"""Gretton et al. Section 4.3, Figure 2: drifting generators, six flows, five 2-D toys.

The experiment is ``scenarios/paper_fig2.toml`` run as a sweep (one file per
point, :func:`wgfsim.sweep.run_sweep`); this module reads the sweep back,
tabulates the final MMD^2 (Gaussian kernel, median-heuristic bandwidth,
:func:`wgfsim.metrics.mmd2`) per (toy, flow, hyper-parameter) over seeds, and
draws the figure: MMD^2 against the hyper-parameter, one panel per toy, one
line per flow, the seeds as a min-max band.

The x axis is a length scale shared by the kernel flows: the bandwidth sigma
(``kl_kde``, ``mmd``), ``sqrt(eps)`` (``sinkhorn``, ``sinkhorn_proxy``; the
sqeuclidean cost ``|x-y|^2/2`` at temperature eps is the Gaussian kernel of
bandwidth ``sqrt(eps)``) and the temperature T (``drift_da2``, euclidean cost
``|x-y|/T``).  ``sliced`` has no length scale: it is drawn against its number of
projections on the top axis (dashed).

Command line::

    python -m wgfsim.experiments OUT_DIR [--run SCENARIO [--set K=V ...] [--workers 2]]
                                 [--figure docs/figures/paper_fig2.png]

runs the sweep first when ``--run`` is given, then prints the table (markdown)
and writes the figure.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
from collections import defaultdict

import numpy as np

__all__ = ["HYPER", "FLOWS", "collect", "summarise", "best", "markdown_table", "figure", "main"]

# the swept hyper-parameter of each flow (a coordinate of the sweep)
HYPER = {
    "kl_kde": "bandwidth",
    "mmd": "bandwidth",
    "sinkhorn": "epsilon",
    "sinkhorn_proxy": "epsilon",
    "drift_da2": "temperatures",
    "sliced": "n_projections",
}
FLOWS = tuple(HYPER)
TOYS = ("moons", "eight_gaussians", "checkerboard", "spiral", "rings")


def length_scale(flow: str, value: float) -> float:
    """The hyper-parameter as a length: sigma, sqrt(eps), T (sliced: the value itself)."""
    return math.sqrt(value) if HYPER[flow] == "epsilon" else float(value)


def collect(out_dir) -> list[dict]:
    """One row per finished point: toy, flow, hyper-parameter value, seed, first and final mmd2.

    Reads ``sweep.json`` and each point's file (:func:`wgfsim.store.open_run`);
    points not finished yet are left out.  A diverged run (NaN) keeps NaN.
    The toy and the hyper-parameter come from the sweep's own scenario
    (re-expanded), so a value that is not swept, or left at the flow's
    default, is still known; a list-valued one counts by its first entry.
    """
    from .flows import make_params
    from .scenario import expand, loads
    from .store import open_run
    from .sweep import read_manifest

    out = pathlib.Path(out_dir)
    manifest = read_manifest(out)
    sc = loads(manifest["scenario"], source=manifest["source"], overrides=manifest["overrides"],
               base_dir=os.path.dirname(manifest["source"]) or ".")
    points = {p.label: p for p in expand(sc, allow_data_sweeps=True)}
    rows = []
    for e in manifest["points"]:
        f = out / e["file"]
        if not f.exists():
            continue
        point = points[e["label"]]
        value = getattr(make_params(point.flow, **point.params), HYPER[point.flow])
        mmd = np.asarray(open_run(f)["mmd2"].values, dtype=float)[0]  # (time,)
        rows.append(
            {
                "toy": point.target.kind,
                "flow": point.flow,
                "value": float(value[0] if isinstance(value, tuple) else value),
                "seed": point.seed,
                "mmd2_first": float(mmd[0]),
                "mmd2": float(mmd[-1]),
            }
        )
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


def _flows(rows):
    present = {r["flow"] for r in rows}
    return [f for f in FLOWS if f in present]


def markdown_table(rows: list[dict]) -> str:
    """Final MMD^2 (seed mean, with [min, max]) per toy, flow and hyper-parameter value."""
    s = summarise(rows)
    lines = []
    for toy in _toys(rows):
        first = [r["mmd2_first"] for r in rows if r["toy"] == toy]
        lines.append(f"**{toy}** (untrained generator: MMD^2 = {np.mean(first):.2e})\n")
        lines.append("| flow | hyper-parameter | values: final MMD^2 mean [min, max] over seeds |")
        lines.append("|---|---|---|")
        for flow in _flows(rows):
            vals = sorted(v for (t, f, v) in s if t == toy and f == flow)
            cells = []
            for v in vals:
                m, lo, hi, _ = s[(toy, flow, v)]
                cells.append(f"{v:g}: {m:.2e} [{lo:.1e}, {hi:.1e}]")
            lines.append(f"| {flow} | {HYPER[flow]} | " + "; ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def figure(rows: list[dict], path) -> pathlib.Path:
    """MMD^2 against the hyper-parameter: one panel per toy, one line per flow, seeds as a min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarise(rows)
    toys = _toys(rows)
    flows = _flows(rows)
    colours = dict(zip(FLOWS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(1, len(toys), figsize=(3.6 * len(toys), 3.6), squeeze=False, sharey=True)
    for ax, toy in zip(axes[0], toys):
        top = ax.twiny() if "sliced" in flows else None
        for flow in flows:
            vals = sorted(v for (t, f, v) in s if t == toy and f == flow)
            if not vals:
                continue
            mean = np.array([s[(toy, flow, v)][0] for v in vals])
            lo = np.array([s[(toy, flow, v)][1] for v in vals])
            hi = np.array([s[(toy, flow, v)][2] for v in vals])
            target_ax, style = (top, "--") if flow == "sliced" else (ax, "-")
            x = np.array([length_scale(flow, v) for v in vals])
            target_ax.plot(x, mean, style, marker="o", ms=3, color=colours[flow], label=flow)
            target_ax.fill_between(x, lo, hi, color=colours[flow], alpha=0.2, lw=0)
        first = np.mean([r["mmd2_first"] for r in rows if r["toy"] == toy])
        ax.axhline(first, color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("length scale: sigma, sqrt(eps), T")
        ax.set_title(toy, fontsize=10)
        if top is not None:
            top.set_xscale("log")
            top.set_xlabel("sliced: n_projections (dashed)", fontsize=8)
            top.tick_params(labelsize=7)
    axes[0][0].set_ylabel("final MMD^2 (median-heuristic kernel)")
    handles, labels = [], []
    for ax in fig.axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wgfsim.experiments", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="the sweep folder (sweep.json + point files)")
    ap.add_argument("--run", metavar="SCENARIO", help="run the sweep of this scenario into OUT_DIR first")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--figure", default="docs/figures/paper_fig2.png")
    args = ap.parse_args(argv)
    if args.run:
        from . import scenario, sweep

        sc = scenario.load(args.run, overrides=args.overrides)
        res = sweep.run_sweep(sc, args.out_dir, workers=args.workers)
        print(res.summary(), file=sys.stderr)
    rows = collect(args.out_dir)
    if not rows:
        print(f"{args.out_dir}: no finished points yet", file=sys.stderr)
        return 1
    print(markdown_table(rows))
    for (toy, flow), (v, m) in sorted(best(summarise(rows)).items()):
        print(f"best {toy:16s} {flow:15s} {HYPER[flow]}={v:g}: {m:.2e}")
    print(f"figure: {figure(rows, args.figure)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
