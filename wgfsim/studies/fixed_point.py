"""Simulate vs fixed point, on the same start: the particle flow against the drifting generator.

The particle method simulates a flow (``x_{k+1} = x_k + eta v(x_k)``); the
generator chases the flow's fixed point (each step regresses ``G(z)`` onto
``G(z) + eta v``).  Both start from one measure (``[generator] start =
"init"`` or ``[init] kind = "generator"``, :mod:`wgfsim.methods.generator.start`)
and run on one clock (particles ``t = step * step_size``, generator
``t = step * drift_step`` with ``drift_step = step_size``).  Four parts:

``a`` across the gap
    two_modes 20/80 -> 50/50 over a grid of ``x = separation^2 / sigma^2``,
    every flow of the registry at one sigma (:mod:`._settings`), both methods
    from the init measure (the generator fitted to it): half-times and final
    mode masses side by side ("final": the mean over the last fifth of the
    records, with the generator's jitter, their std, beside it).
``b`` where the fixed point lands
    an unequal target (20/80), both methods started from the untrained
    generator's measure; final error of the first mode's mass against sigma.
``c`` expressivity
    a width x depth grid (one flow): the fit residual over training, the
    final MMD^2 to the target, and the MMD^2 between the generator's samples
    and the particles at matched t.
``d`` batch stability
    per flow, the velocity at K fixed generated points from batches of B
    generated and B target samples (each batch holds the K points and
    B - K fresh generated samples, so flows whose field is a coupling are
    measured the same way) against the velocity from the full samples:
    relative bias and standard deviation against B.  No training.

Each flow's options, step and horizon come from the flow registry
(:mod:`._settings`).  The module holds four parts, each with its table and
figure, and the CLI: that is why it is a little over 500 lines.

``wgfsim study fixed_point --part a|b|c|d|all -o OUT`` runs the reduced
default of a part (each sized for a few minutes on 2 cores) and prints its
table; ``--set KEY=VALUE`` passes scenario overrides to every sweep of
parts a-c (e.g. ``--set run.seeds=[0,1,2]``), and the study's own grids are
options (``--x``, ``--sigmas``, ``--widths``, ``--depths``, ``--batches``).
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Sequence

import numpy as np

from .. import flows as _flows
from ._settings import toml_value as _toml
from ._settings import FlowSetting, flow_settings, is_transport

__all__ = ["part_a", "part_b", "part_c", "part_d", "scenario_text", "main", "PARTS"]

PARTS = {
    "a": "across the gap: half-times and final mode masses, particles vs generator, per flow and separation",
    "b": "where the fixed point lands: final mode-weight error vs sigma on a 20/80 target",
    "c": "expressivity: width x depth, fit residual, MMD^2 to the target and to the particles at matched t",
    "d": "batch stability: bias and std of the velocity from B samples against the full-sample velocity",
}


def scenario_text(*, name: str, settings: Sequence[FlowSetting], separation, target_weights, init: dict,
                  generator: dict, n: int = 200, std: float = 0.05, eval_n: int | None = None,
                  seeds=(0,), metrics=("mode_mass",)) -> str:
    """One sweep's scenario: 1-D two_modes target, ``init`` table, the flows (one step size), both methods."""
    steps = {(s.step_size, s.steps, s.record_every) for s in settings}
    if len(steps) != 1:
        raise ValueError(f"scenario_text: flows of one scenario share a step size, got {sorted(steps)}")
    eta, n_steps, every = steps.pop()
    lines = [f"name = {_toml(name)}", "", "[target]", 'kind = "two_modes"', f"separation = {_toml(separation)}",
             f"weights = {_toml(list(target_weights))}", f"std = {std!r}", "dim = 1", f"n = {n}", "", "[init]"]
    lines += [f"{k} = {_toml(v)}" for k, v in init.items()] + [f"n = {n}", ""]
    for s in settings:
        lines += ["[[flow]]", f"name = {_toml(s.flow)}"] + [f"{k} = {_toml(v)}" for k, v in s.options.items()] + [""]
    lines += ["[run]", 'methods = ["particles", "generator"]', f"steps = {n_steps}", f"step_size = {eta!r}",
              f"record_every = {every}", f"seeds = {_toml(list(seeds))}", 'backend = "auto"', 'dtype = "float64"', "",
              "[generator]", f"drift_step = {eta!r}"]
    lines += [f"{k} = {_toml(v)}" for k, v in generator.items()]
    if eval_n:
        lines.append(f"eval_n = {eval_n}")
    lines += ["", "[metrics]", f"names = {_toml(list(metrics))}", f"reference_n = {n}", ""]
    return "\n".join(lines)


def _groups(settings: Sequence[FlowSetting]) -> dict:
    out: dict = {}
    for s in settings:
        out.setdefault((s.step_size, s.steps, s.record_every), []).append(s)
    return out


def _group_name(key) -> str:
    return f"eta{key[0]:g}_steps{key[1]}"


def _sweep(text: str, out, overrides, workers, progress, variables=("mode_mass", "flow_params")):
    from ..io import open_sweep
    from ..scenario import loads
    from ..sweep import run_sweep

    sc = loads(text, source=f"<fixed_point:{pathlib.Path(out).name}>", overrides=tuple(overrides))
    result = run_sweep(sc, out, workers=workers, progress=progress)
    if result.failed:
        print(f"fixed_point: {len(result.failed)} point(s) failed in {out}:\n{result.summary()}")
    return open_sweep(out, layout="runs", variables=list(variables))


def _tail_mass(ds, fraction: float = 0.2):
    """Mean and std of the left mode's mass over the last ``fraction`` of each run's records: (run,), (run,).

    The generator's mass jitters from record to record (fresh latents, a constant Adam rate), so one
    record is a noisy snapshot of where it settles; the particles' tail is nearly constant.
    """
    m = ds["mode_mass"].values[:, :, 0]  # (run, time)
    k = max(1, int(round(fraction * m.shape[1])))
    tail = m[:, -k:]
    return np.nanmean(tail, axis=1), np.nanstd(tail, axis=1)


def _runs(ds):
    """Per run: a dict of its coordinates (flow, method, seed, swept keys) and its index."""
    idx = ds.indexes["run"]
    names = list(idx.names)
    return [dict(zip(names, v if isinstance(v, tuple) else (v,))) for v in idx]


def _flow_label(ds, r: int) -> str:
    params = json.loads(str(ds["flow_params"].values[r]))
    lam = params.get("lambda_")
    return params["flow"] + (f" lambda={lam:g}" if lam is not None and lam != 1.0 else "")


def _all_flows() -> list[tuple[str, dict]]:
    return [(n, {}) for n in _flows.names()]


# ------------------------------------------------------------------ part a


def part_a(out_dir, *, x_values=(4.0, 8.0), sigma: float = 1.0, flows=None, horizon: float = 100.0,
           transport_horizon: float = 3.0, n: int = 200, eval_n: int = 1000, generator: dict | None = None,
           overrides=(), workers: int = 1, progress: bool = False) -> dict:
    """Across the gap (module docstring): returns ``{"rows": [...], "wall_s": ..}``, one row per run."""
    from ..diagnostics import half_time

    flows = flows or _all_flows()
    settings = [flow_settings(f, sigma, horizon=horizon, transport_horizon=transport_horizon, extra=o) for f, o in flows]
    seps = [float(sigma * math.sqrt(x)) for x in x_values]
    gen = {"start": "init", "start_steps": 1000, "width": 64, "depth": 3, **(generator or {})}
    rows, t0 = [], time.perf_counter()
    init = {"kind": "two_modes", "separation": seps, "weights": [0.2, 0.8], "std": 0.05, "dim": 1}
    for key, group in _groups(settings).items():
        text = scenario_text(name=f"fixed_point_a_{_group_name(key)}", settings=group, separation=seps,
                             target_weights=(0.5, 0.5), init=init, generator=gen, n=n, eval_n=eval_n)
        ds = _sweep(text, pathlib.Path(out_dir) / _group_name(key), overrides, workers, progress)
        h = half_time(ds).values
        final, jitter = _tail_mass(ds)
        first = ds["mode_mass"].isel(time=0).values
        for r, c in enumerate(_runs(ds)):
            rows.append({"flow": _flow_label(ds, r), "method": c["method"], "seed": c["seed"],
                         "x": round((c.get("target.separation", seps[0]) / sigma) ** 2, 6), "half_time": float(h[r]),
                         "mass0": float(first[r, 0]), "mass_final": float(final[r]),
                         "mass_jitter": float(jitter[r]),
                         "t_end": float(ds["t"].values[r][np.isfinite(ds["t"].values[r])][-1]),
                         "step_size": key[0]})
    return {"rows": rows, "wall_s": time.perf_counter() - t0, "sigma": sigma}


def table_a(res) -> str:
    rows = res["rows"]
    xs = sorted({r["x"] for r in rows})
    head = "| flow (step) | " + " | ".join(f"x={x:g}: half-time P / G" for x in xs) + " | " + \
        " | ".join(f"x={x:g}: final mass P / G" for x in xs) + " |"
    out = [head, "|" + "---|" * (1 + 2 * len(xs))]
    for flow in dict.fromkeys(r["flow"] for r in rows):
        cells_h, cells_m, step = [], [], ""
        for x in xs:
            def val(method, key):
                v = [r[key] for r in rows if r["flow"] == flow and r["x"] == x and r["method"] == method]
                return float(np.mean(v)) if v else math.nan
            cells_h.append(f"{_fmt(val('particles', 'half_time'))} / {_fmt(val('generator', 'half_time'))}")
            cells_m.append(f"{val('particles', 'mass_final'):.3f} / {val('generator', 'mass_final'):.3f} "
                           f"(+-{val('generator', 'mass_jitter'):.3f})")
            step = next(r["step_size"] for r in rows if r["flow"] == flow)
        out.append(f"| {flow} ({step:g}) | " + " | ".join(cells_h) + " | " + " | ".join(cells_m) + " |")
    return "\n".join(out)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "never" if math.isinf(v) else f"{v:.3g}"


def figure_a(res):
    """Two panels over the flows: half-times (log) and final mass of the left mode; hatched: the generator."""
    from matplotlib.figure import Figure

    rows = res["rows"]
    flows = list(dict.fromkeys(r["flow"] for r in rows))
    xs = sorted({r["x"] for r in rows})
    fig = Figure(figsize=(9, 5.2), dpi=80, layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    w = 0.8 / max(1, 2 * len(xs))
    for ax, key in zip(axes, ("half_time", "mass_final")):
        for j, x in enumerate(xs):
            for m, (method, hatch) in enumerate((("particles", ""), ("generator", "//"))):
                vals = [np.mean([r[key] for r in rows if r["flow"] == f and r["x"] == x and r["method"] == method]
                                or [np.nan]) for f in flows]
                pos = np.arange(len(flows)) + (2 * j + m) * w - 0.4 + w / 2
                ax.bar(pos, np.where(np.isfinite(vals), vals, np.nan), width=w, color=f"C{j}", hatch=hatch,
                       edgecolor="k", lw=0.3, label=f"x = {x:g}, {method}")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("half-time (t)")
    axes[0].legend(fontsize="x-small", ncol=2 * len(xs), loc="upper left")
    axes[1].axhline(0.5, color="0.3", ls="--", lw=1)
    axes[1].set_ylim(0.2, 0.52)
    axes[1].set_ylabel("final mass, left mode\n(target 0.5, start 0.2)")
    axes[1].set_xticks(np.arange(len(flows)), flows, rotation=30, ha="right", fontsize="small")
    axes[0].set_title(f"across the gap (sigma = {res['sigma']:g}, x = separation^2/sigma^2): particles vs "
                      "generator (hatched), one start", fontsize="medium")
    return fig


# ------------------------------------------------------------------ part b


def part_b(out_dir, *, sigmas=(0.5, 1.0, 2.0), separation: float = 4.0, flows=None, horizon: float = 100.0,
           transport_horizon: float = 3.0, n: int = 200, eval_n: int | None = None, generator: dict | None = None,
           overrides=(), workers: int = 1, progress: bool = False) -> dict:
    """Where the fixed point lands (module docstring): final |mass_0 - 0.2| per flow, sigma and method."""
    # the flows with a length scale (sinkhorn is run as a transport flow, its eps fixed << separation^2),
    # and w2_exact as the transport reference
    flows = flows or [(f, o) for f, o in _all_flows() if _flows.get(f).options_at_scale is not None
                      and not is_transport(f)] + [("w2_exact", {})]
    gen = {"width": 64, "depth": 3, **(generator or {})}
    rows, t0 = [], time.perf_counter()
    for sigma in sigmas:
        settings = [flow_settings(f, sigma, horizon=horizon, transport_horizon=transport_horizon, extra=o)
                    for f, o in flows]
        for key, group in _groups(settings).items():
            name = f"fixed_point_b_sigma{sigma:g}_{_group_name(key)}"
            text = scenario_text(name=name, settings=group, separation=separation, target_weights=(0.2, 0.8),
                                 init={"kind": "generator"}, generator=gen, n=n, eval_n=eval_n)
            ds = _sweep(text, pathlib.Path(out_dir) / name, overrides, workers, progress)
            final, jitter = _tail_mass(ds)
            for r, c in enumerate(_runs(ds)):
                rows.append({"flow": _flow_label(ds, r), "method": c["method"], "seed": c["seed"], "sigma": sigma,
                             "mass0_start": float(ds["mode_mass"].isel(time=0).values[r, 0]),
                             "mass_final": float(final[r]), "mass_jitter": float(jitter[r]),
                             "error": abs(float(final[r]) - 0.2),
                             "t": ds["t"].values[r].tolist(), "mass": ds["mode_mass"].values[r, :, 0].tolist()})
    return {"rows": rows, "wall_s": time.perf_counter() - t0, "separation": separation}


def table_b(res) -> str:
    rows = res["rows"]
    sig = sorted({r["sigma"] for r in rows})
    out = ["| flow | " + " | ".join(f"sigma={s:g}: error P / G" for s in sig) + " |", "|" + "---|" * (1 + len(sig))]
    for flow in dict.fromkeys(r["flow"] for r in rows):
        cells = []
        for s in sig:
            def val(method):
                v = [r["error"] for r in rows if r["flow"] == flow and r["sigma"] == s and r["method"] == method]
                return float(np.mean(v)) if v else math.nan
            cells.append(f"{val('particles'):.3f} / {val('generator'):.3f}")
        out.append(f"| {flow} | " + " | ".join(cells) + " |")
    starts = sorted({round(r["mass0_start"], 3) for r in rows})
    out.append(f"\nmass of the left mode at t = 0 (the untrained generator's measure): {starts}")
    return "\n".join(out)


def figure_b(res):
    """Left: final error against sigma per flow (solid particles, dashed generator); right: the left mode's mass
    over t at the smallest sigma."""
    from matplotlib.figure import Figure

    rows = res["rows"]
    fig = Figure(figsize=(10, 3.9), dpi=80, layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    smallest = min(r["sigma"] for r in rows)
    for k, flow in enumerate(dict.fromkeys(r["flow"] for r in rows)):
        for method, ls, mk in (("particles", "-", "o"), ("generator", "--", "s")):
            pts = sorted((r["sigma"], r["error"]) for r in rows if r["flow"] == flow and r["method"] == method)
            if pts:
                s, e = zip(*pts)
                ax.plot(s, e, ls=ls, marker=mk, color=f"C{k}", label=f"{flow}" if method == "particles" else None)
            for r in rows:
                if r["flow"] == flow and r["method"] == method and r["sigma"] == smallest and "mass" in r:
                    ax2.plot(r["t"], r["mass"], ls=ls, color=f"C{k}", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("sigma (separation %g)" % res["separation"])
    ax.set_ylabel("final |mass of left mode - 0.2|")
    ax.set_title("final error (solid: particles, dashed: generator)", fontsize="medium")
    ax.legend(fontsize="x-small", ncol=2)
    ax2.axhline(0.2, color="0.3", ls=":", lw=1)
    ax2.set_xscale("symlog", linthresh=1.0)
    ax2.set_xlim(0, None)
    ax2.set_xlabel("t")
    ax2.set_ylabel("mass of the left mode (target 0.2)")
    ax2.set_title(f"trajectories at sigma = {smallest:g}", fontsize="medium")
    return fig


# ------------------------------------------------------------------ part c


def part_c(out_dir, *, widths=(16, 64), depths=(1, 3), flow: str = "mmd", sigma: float = 1.0,
           separation: float = 4.0, horizon: float = 100.0, n: int = 200, overrides=(), workers: int = 1,
           progress: bool = False) -> dict:
    """Expressivity (module docstring): per (width, depth) the residual series and the two MMD^2s."""
    from .. import metrics

    setting = flow_settings(flow, sigma, horizon=horizon)
    rows, t0 = [], time.perf_counter()
    for w in widths:
        for d in depths:
            name = f"fixed_point_c_w{w}_d{d}"
            text = scenario_text(name=name, settings=[setting], separation=separation, target_weights=(0.5, 0.5),
                                 init={"kind": "generator"}, generator={"width": w, "depth": d}, n=n,
                                 metrics=("mode_mass", "mmd2"))
            ds = _sweep(text, pathlib.Path(out_dir) / name, overrides, workers, progress,
                        variables=("mode_mass", "flow_params", "position", "mmd2", "fit_residual"))
            runs = _runs(ds)
            for seed in sorted({c["seed"] for c in runs}):
                p = next(i for i, c in enumerate(runs) if c["method"] == "particles" and c["seed"] == seed)
                g = next(i for i, c in enumerate(runs) if c["method"] == "generator" and c["seed"] == seed)
                pos = ds["position"].values
                gap = [metrics.mmd2(pos[g, k][np.isfinite(pos[g, k, :, 0])], pos[p, k][np.isfinite(pos[p, k, :, 0])])
                       for k in range(pos.shape[1])]
                res = ds["fit_residual"].values[g]
                rows.append({"width": w, "depth": d, "seed": seed, "t": ds["t"].values[g].tolist(),
                             "residual": res.tolist(), "mmd2_gen": float(ds["mmd2"].values[g, -1]),
                             "mmd2_part": float(ds["mmd2"].values[p, -1]), "gap": gap,
                             "residual_median": float(np.nanmedian(res))})
    return {"rows": rows, "wall_s": time.perf_counter() - t0, "flow": flow, "sigma": sigma}


def table_c(res) -> str:
    out = ["| width x depth | median fit residual | final MMD^2 to target: generator | particles | "
           "MMD^2 generator vs particles: t=0 | middle | end |", "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        g = r["gap"]
        out.append(f"| {r['width']} x {r['depth']} | {r['residual_median']:.3g} | {r['mmd2_gen']:.3g} | "
                   f"{r['mmd2_part']:.3g} | {g[0]:.2g} | {g[len(g) // 2]:.3g} | {g[-1]:.3g} |")
    return "\n".join(out)


def figure_c(res):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.4), dpi=90, layout="constrained")
    a1, a2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for k, r in enumerate(res["rows"]):
        lab = f"{r['width']} x {r['depth']}"
        a1.plot(r["t"], r["residual"], color=f"C{k}", lw=1, label=lab)
        a2.plot(r["t"], r["gap"], color=f"C{k}", lw=1, label=lab)
    a1.set_yscale("log")
    a1.set_xlabel("t")
    a1.set_ylabel("fit residual (0: step absorbed, 1: none)")
    a2.set_yscale("log")
    a2.set_xlabel("t")
    a2.set_ylabel("MMD^2(generator, particles)")
    a1.legend(fontsize="x-small", title="width x depth", title_fontsize="x-small")
    fig.suptitle(f"expressivity ({res['flow']}, sigma {res['sigma']:g})", fontsize="medium")
    return fig


# ------------------------------------------------------------------ part d


_RANDOM_FLOWS = ("kl_kde_wgf", "sliced")


def part_d(*, batches=(64, 128, 256, 512, 1024), k_points: int = 32, full: int = 4096, repeats: int = 40,
           sigma: float = 1.0, separation: float = 2.0 * math.sqrt(2.0), flows=None, seed: int = 0) -> dict:
    """Batch stability (module docstring): relative bias and std of the velocity at K fixed points against B."""
    from .. import targets
    from ..flows import Field

    flows = flows or _all_flows()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 21]))
    q = targets.make("two_modes", separation=separation, weights=[0.2, 0.8], std=0.05, dim=1)
    p = targets.make("two_modes", separation=separation, weights=[0.5, 0.5], std=0.05, dim=1)
    z = q.sample(k_points, rng)  # (K, 1) the fixed evaluation points
    x_full = np.concatenate([z, q.sample(full - k_points, rng)])
    y_full = p.sample(full, rng)
    rows, t0 = [], time.perf_counter()
    for name, extra in flows:
        s = flow_settings(name, sigma, extra=extra)
        opts = dict(s.options)
        t1 = time.perf_counter()
        # flows with their own randomness (kl_kde_wgf's Monte-Carlo, sliced's directions): the reference
        # averages 5 independent draws, so that their own noise is not read as the batch's bias
        ref = np.mean([Field(name, rng=np.random.default_rng(1 + i), **opts)(x_full, y_full)[:k_points]
                       for i in range(5 if name in _RANDOM_FLOWS else 1)], axis=0)  # (K, 1)
        scale = float(np.sqrt(np.mean(np.sum(ref * ref, axis=1))))
        for B in batches:
            est = []
            for r in range(repeats):
                xb = np.concatenate([z, q.sample(B - k_points, rng)]) if B > k_points else z[:B]
                yb = p.sample(B, rng)
                est.append(Field(name, rng=np.random.default_rng(100 + r), **opts)(xb, yb)[: min(B, k_points)])
            est = np.stack(est)  # (R, K, 1)
            mean = est.mean(0)
            bias = float(np.sqrt(np.mean(np.sum((mean - ref[: est.shape[1]]) ** 2, axis=1)))) / scale
            std = float(np.sqrt(np.mean(np.sum(est.var(0, ddof=1), axis=1)))) / scale
            rows.append({"flow": s.label, "B": B, "bias": bias, "std": std, "rms_full": scale})
        rows[-1]["wall_s"] = time.perf_counter() - t1
    return {"rows": rows, "wall_s": time.perf_counter() - t0, "full": full, "k": k_points, "repeats": repeats,
            "separation": separation, "sigma": sigma}


def table_d(res) -> str:
    rows = res["rows"]
    bs = sorted({r["B"] for r in rows})
    out = ["| flow | RMS full v | " + " | ".join(f"B={b}: bias / std" for b in bs) + " | std slope in B |",
           "|" + "---|" * (3 + len(bs))]
    for flow in dict.fromkeys(r["flow"] for r in rows):
        rr = sorted((r for r in rows if r["flow"] == flow), key=lambda r: r["B"])
        slope = np.polyfit(np.log([r["B"] for r in rr]), np.log([max(r["std"], 1e-300) for r in rr]), 1)[0]
        out.append(f"| {flow} | {rr[0]['rms_full']:.3g} | " + " | ".join(f"{r['bias']:.3f} / {r['std']:.3f}" for r in rr)
                   + f" | {slope:.2f} |")
    return "\n".join(out)


def figure_d(res):
    from matplotlib.figure import Figure

    rows = res["rows"]
    fig = Figure(figsize=(8, 3.4), dpi=90, layout="constrained")
    a1, a2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for k, flow in enumerate(dict.fromkeys(r["flow"] for r in rows)):
        rr = sorted((r for r in rows if r["flow"] == flow), key=lambda r: r["B"])
        b = [r["B"] for r in rr]
        a1.plot(b, [r["bias"] for r in rr], marker="o", color=f"C{k % 10}", ls="-" if k < 10 else "--", label=flow)
        a2.plot(b, [r["std"] for r in rr], marker="o", color=f"C{k % 10}", ls="-" if k < 10 else "--")
    b = np.array(sorted({r["B"] for r in rows}), float)
    a2.plot(b, 0.5 * np.sqrt(b[0] / b), color="0.5", ls=":", label="B^-1/2")
    for a, lab in ((a1, "relative bias |E v_B - v|/RMS v"), (a2, "relative std of v_B")):
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel("batch size B")
        a.set_ylabel(lab)
    a1.legend(fontsize="x-small", ncol=2)
    a2.legend(fontsize="x-small")
    fig.suptitle(f"batch stability (K = {res['k']} points, full = {res['full']}, {res['repeats']} repeats)",
                 fontsize="medium")
    return fig


# ------------------------------------------------------------------ CLI


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def main(argv=None) -> int:
    """``wgfsim study fixed_point``: run one part (or all) into OUT, print its table, write its figure."""
    import argparse

    from ._settings import parse_flow_list

    ap = argparse.ArgumentParser(prog="wgfsim study fixed_point", description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="all", choices=[*PARTS, "all"])
    ap.add_argument("-o", "--output", default="outputs/fixed_point_study", help="folder for the sweeps")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--flows", default="", help="comma-separated flows, NAME[:KEY=VALUE...] (default: every flow)")
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--x", default="4,8", help="part a: values of separation^2/sigma^2")
    ap.add_argument("--horizon", type=float, default=100.0, help="parts a-c: time the kernel flows run")
    ap.add_argument("--sigmas", default="0.5,1,2", help="part b: the sigma grid")
    ap.add_argument("--widths", default="16,64", help="part c")
    ap.add_argument("--depths", default="1,3", help="part c")
    ap.add_argument("--c-flow", default="mmd", help="part c: the flow")
    ap.add_argument("--batches", default="64,128,256,512,1024", help="part d: batch sizes B")
    ap.add_argument("--repeats", type=int, default=40, help="part d")
    ap.add_argument("--full", type=int, default=4096, help="part d: the full sample sizes")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="scenario override for every sweep of parts a-c (repeatable)")
    ap.add_argument("--figure-dir", help="write fixed_point_<part>.png here")
    ap.add_argument("--json", help="write the results (rows) as JSON here")
    args = ap.parse_args(argv)
    flows = parse_flow_list(args.flows) or None
    out = pathlib.Path(args.output)
    parts = list(PARTS) if args.part == "all" else [args.part]
    results = {}
    for part in parts:
        if part == "a":
            res = part_a(out / "a", x_values=_floats(args.x), sigma=args.sigma, flows=flows, horizon=args.horizon,
                         overrides=args.set, workers=args.workers, progress=True)
            table, fig = table_a(res), figure_a
        elif part == "b":
            res = part_b(out / "b", sigmas=_floats(args.sigmas), flows=flows, horizon=args.horizon,
                         overrides=args.set, workers=args.workers, progress=True)
            table, fig = table_b(res), figure_b
        elif part == "c":
            res = part_c(out / "c", widths=[int(v) for v in _floats(args.widths)],
                         depths=[int(v) for v in _floats(args.depths)], flow=args.c_flow, sigma=args.sigma,
                         horizon=args.horizon, overrides=args.set, workers=args.workers, progress=True)
            table, fig = table_c(res), figure_c
        else:
            res = part_d(batches=[int(v) for v in _floats(args.batches)], repeats=args.repeats, full=args.full,
                         sigma=args.sigma, flows=flows)
            table, fig = table_d(res), figure_d
        results[part] = res
        print(f"\n## part {part}: {PARTS[part]} ({res['wall_s']:.0f} s wall)\n")
        print(table)
        if args.figure_dir:
            path = pathlib.Path(args.figure_dir) / f"fixed_point_{part}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            fig(res).savefig(path)
            print(f"wrote {path}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0
