"""The mass-transfer study: half-times of the mode-mass error against separation^2 / sigma^2.

Gretton et al. Section 3.3, Appendix D: kernel flows feel a distant mode only
through ``kappa = exp(-s^2 / (2 sigma^2))``, so the time they need to move
mass between two modes grows like ``1/kappa`` (slope 1/2 of ``log`` half-time
against ``x = s^2/sigma^2``); transport flows (Sinkhorn at small eps, sliced,
exact W2) move it in a time that does not grow.  Any flow with a length scale
joins the kernel group (its options at the study's sigma come from the
registry's ``options_at_scale``, its step and guide from
:mod:`._settings`: the critics' step follows lambda, and each flow's guide is
``1/kappa`` of its own gap decay, Gaussian or Laplace), so a new flow needs
no change here.  ``--kernel-flows kl_kde,mmd,kale,drmmd,kale:lambda_=0.1,drmmd:lambda_=0.1``
runs the critic table of ``docs/results.md``.

``wgfsim study mass_transfer -o OUT`` runs it and prints the table.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .. import flows as _flows
from ..diagnostics import _polyfit, fit_slopes, flow_names, half_time, separation_over_sigma, two_atom_closed_form
from ._settings import toml_value as _toml
from ._settings import flow_settings, gap_decay, log_inverse_decay, parse_flow_list

__all__ = ["mass_transfer_scenario", "MassTransferStudy", "mass_transfer_study", "plot_half_times", "main"]


def _draw_half_times(ax, xv: np.ndarray, hv: np.ndarray, flows: np.ndarray, sigma: float,
                     decays: dict | None = None) -> None:
    """Draw one line per flow (geometric mean over repeats), never-finished runs as open triangles at the top.

    ``decays``: flow label -> ``(law, length)`` (:func:`._settings.gap_decay`); each flow whose field
    decays across the gap gets its own dashed guide ``log 1/kappa(s)`` through its first point
    (Gaussian ``s^2/(2 l^2)``, a line of slope ``sigma^2/(2 l^2)`` in ``x``; Laplace ``s/l``, a
    curve in ``x``).  Flows not in ``decays`` take the registry's default options' decay.
    """
    finite = hv[np.isfinite(hv) & (hv > 0)]
    top = float(finite.max()) * 3 if finite.size else 1.0
    fits = fit_slopes(xv, hv, flows)
    decays = dict(decays or {})
    for k, flow in enumerate(dict.fromkeys(flows.ravel().tolist())):
        m = flows == flow
        xs = np.unique(xv[m][np.isfinite(xv[m])])
        ys = []
        for xval in xs:
            sel = hv[m & (xv == xval)]
            ok = sel[np.isfinite(sel) & (sel > 0)]
            ys.append(float(np.exp(np.mean(np.log(ok)))) if ok.size == sel.size and ok.size else math.nan)
            if np.isinf(sel).any():
                ax.plot([xval], [top], marker="^", mfc="none", color=f"C{k}", ls="none")
        slope = fits[flow]["slope"]
        label = f"{flow} (slope {slope:.2f})" if math.isfinite(slope) else flow
        ax.plot(xs, ys, marker="o", color=f"C{k}", label=label)
        name = str(flow).split(" ")[0]
        if flow not in decays and name in _flows.names():
            flow_rec = _flows.get(name)
            defaults = flow_rec.options_at_scale(sigma) if flow_rec.options_at_scale is not None else {}
            decays[flow] = gap_decay(name, defaults)
        law, length = decays.get(flow, ("none", math.nan))
        if law != "none" and xs.size > 1 and math.isfinite(ys[0]):
            xg = np.linspace(xs[0], xs[-1], 50)
            lg = log_inverse_decay(law, length, sigma * np.sqrt(xg)) - log_inverse_decay(law, length, sigma * math.sqrt(xs[0]))
            ax.plot(xg, ys[0] * np.exp(lg), ls="--", color=f"C{k}", lw=0.8, alpha=0.7)
    ax.plot([], [], ls="--", color="0.5", lw=0.8, label="1/kappa of each flow's gap decay")
    ax.set_yscale("log")
    ax.set_xlabel(r"separation$^2$ / $\sigma^2$" + f"  ($\\sigma$ = {sigma:.3g})")
    ax.set_ylabel("half-time of the mode-mass error")
    ax.set_title("mass transfer between distant modes")
    ax.legend(fontsize="small")


_STUDY_TEMPLATE = """\
# Mass transfer between distant modes (Gretton et al. Section 3.3, Appendix D): {group} flows.
name = "{name}"
description = "two_modes {pi}/{one_minus_pi} target, particles started {alpha}/{one_minus_alpha}, separation swept"

[target]
kind = "two_modes"
separation = {separations}
weights = [{pi}, {one_minus_pi}]
std = {std}
dim = {dim}
n = {n}

[init]
kind = "two_modes"
separation = {separations}
weights = [{alpha}, {one_minus_alpha}]
std = {std}
dim = {dim}
n = {n}

{flows}

[run]
methods = ["particles"]
steps = {steps}
step_size = {step_size}
record_every = {record_every}
seeds = {seeds}
backend = "auto"
dtype = "float64"
record_velocity = {record_velocity}

[metrics]
names = ["mode_mass"]
"""


def _flow_tables(flows: Sequence[tuple[str, dict]]) -> str:
    out = []
    for name, params in flows:
        lines = ["[[flow]]", f"name = {_toml(name)}"] + [f"{k} = {_toml(v)}" for k, v in params.items()]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def mass_transfer_scenario(
    *,
    name: str,
    group: str,
    flows: Sequence[tuple[str, dict]],
    separations: Sequence[float],
    pi: float = 0.5,
    alpha: float = 0.2,
    std: float = 0.05,
    dim: int = 1,
    n: int = 200,
    steps: int = 600,
    step_size: float = 1.0,
    record_every: int = 2,
    seeds: Sequence[int] = (0,),
    record_velocity: bool = False,
) -> str:
    """The TOML text of one group of the study (``scenarios/mass_transfer.toml`` is the same, all flows at once)."""
    return _STUDY_TEMPLATE.format(
        group=group,
        name=name,
        pi=pi,
        one_minus_pi=round(1.0 - pi, 12),
        alpha=alpha,
        one_minus_alpha=round(1.0 - alpha, 12),
        separations=_toml([float(s) for s in separations]),
        std=float(std),
        dim=int(dim),
        n=int(n),
        flows=_flow_tables(flows),
        steps=int(steps),
        step_size=float(step_size),
        record_every=int(record_every),
        seeds=_toml([int(s) for s in seeds]),
        record_velocity=_toml(bool(record_velocity)),
    )


@dataclass
class MassTransferStudy:
    """Result of :func:`mass_transfer_study`.

    ``half_times`` (DataArray: flow x target.separation [x seed]) in units of
    ``t``; ``x`` = separation^2 / sigma^2 on the same grid; ``slopes`` the fit
    of ``log half_time`` against ``x`` per flow over the finite half-times
    (:func:`fit_slopes`), next to ``closed_form_slopes`` (the same fit of
    ``log 1/|v(+D)|`` from the two-atom closed forms on the same grid) and
    ``reference_slope`` = 1/2 (``1/kappa = exp(x/2)``, the limit of both as
    ``x`` grows).  ``datasets``: the (sweep dataset, half-times) of each group.
    """

    half_times: Any
    x: Any
    slopes: dict
    sigma: float
    sweep_dirs: list
    closed_form_slopes: dict = field(default_factory=dict)
    datasets: list = field(default_factory=list, repr=False)
    reference_slope: float = 0.5
    unconverged: list = field(default_factory=list)  # point files whose Sinkhorn missed its tolerance
    decays: dict = field(default_factory=dict)  # flow label -> (law, length): each flow's gap decay

    def table(self) -> str:
        """A plain-text table: half-time per flow and x, the fitted slopes, the closed form's, and 1/2."""
        h = self.half_times
        if "seed" in h.dims:
            h = np.exp(np.log(h).mean("seed"))
        xs = self.x.values
        head = "flow".ljust(16) + "".join(f"{v:>9.2f}" for v in xs) + "    slope  tail  closed-form  asymptote"
        rows = [f"half-times in t against x = separation^2/sigma^2 (sigma = {self.sigma:g})", head]
        for flow in h["flow"].values.tolist():
            vals = h.sel(flow=flow).values.ravel()
            fit = self.slopes.get(flow, {})
            cf = self.closed_form_slopes.get(flow, math.nan)
            cf_text = f"{cf:11.3f}  {self.reference_slope:9.3f}" if math.isfinite(cf) else ""
            rows.append(flow.ljust(16) + "".join(f"{v:>9.3g}" for v in vals)
                        + f"   {fit.get('slope', math.nan):6.3f} {fit.get('slope_tail', math.nan):5.2f}  {cf_text}")
        rows.append("slope: fit of log half-time over all finite points; tail: over the 3 largest x; closed-form: the same "
                    "fit of log 1/|v(+D)| (docs/math.md#two-atoms) on this grid; asymptote: 1/2 from kappa = exp(-x/2)")
        if self.unconverged:
            rows.append(f"UNCONVERGED: {len(self.unconverged)} point(s) whose Sinkhorn missed its tolerance "
                        f"(their half-times are suspect): {', '.join(self.unconverged)}")
        return "\n".join(rows)

    def figure(self):
        """Log half-time against separation^2/sigma^2, one line per flow (see :func:`plot_half_times`)."""
        import xarray as xr
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 4.4), dpi=100, layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        h = self.half_times
        x = (h["target.separation"] / self.sigma) ** 2
        hh, xx = xr.broadcast(h, x)
        flows = np.broadcast_to(h["flow"].values.reshape([-1] + [1] * (h.ndim - 1)), h.shape)
        _draw_half_times(ax, xx.transpose(*hh.dims).values, hh.values, flows, self.sigma, self.decays)
        return fig


def mass_transfer_study(
    out_dir,
    *,
    x_values: Sequence[float] = (4.0, 6.0, 8.0, 10.0, 12.0),
    sigma: float = 1.0,
    n: int = 200,
    std: float = 0.05,
    pi: float = 0.5,
    alpha: float = 0.2,
    dim: int = 1,
    seeds: Sequence[int] = (0,),
    kernel_flows: Sequence = ("kl_kde", "sinkhorn_proxy"),
    kernel_steps: int = 600,
    kernel_step_size: float = 1.0,
    transport_eps: float = 0.1,
    transport_flows: Sequence[str] = ("sinkhorn", "sliced", "w2_exact"),
    transport_steps: int = 30,
    transport_step_size: float = 0.1,
    workers: int = 1,
    executor: str | None = None,
    progress: bool = False,
    unconverged: str = "flag",
) -> MassTransferStudy:
    """Run the mass-transfer study and fit ``log half_time`` against ``separation^2 / sigma^2``.

    Sweeps over ``separation = sigma * sqrt(x)`` for ``x`` in ``x_values``
    (target and init tied: particles start on the target's modes), with mode
    std ``std`` (0: exact atoms; small: modes the particles can leave):

    * kernel flows, each at the study's sigma (the registry's
      ``options_at_scale``: ``kl_kde``/``mmd``/``kale``/``drmmd`` with
      ``bandwidth = sigma``, ``sinkhorn_proxy`` with ``epsilon = sigma^2``),
      over the horizon ``kernel_steps * kernel_step_size`` with each flow's
      own Euler step (:func:`._settings.flow_settings`: ``kernel_step_size``
      for the kernel flows, ``c lambda^0.4`` for the critics, whose fields
      grow like ``1/lambda``); an entry is a name or ``(name, options)``
      (``("kale", {"lambda_": 0.1})``), one sweep per step size;
    * transport flows (``sinkhorn`` with ``epsilon = transport_eps`` (<< separation^2),
      ``sliced``, ``w2_exact``), a short horizon with small steps to resolve it.

    The slope for a kernel flow is fitted over the separations where its
    run finished (finite half-time); it is compared with 1/2, the rate at
    which ``kappa = exp(-2 D^2/sigma^2) = exp(-x/2)`` (D = separation/2)
    makes the closed-form velocity of the overcrowded mode vanish; the
    figure draws each flow's own guide from its gap decay.

    ``out_dir`` holds the sweeps (``kernel/`` for the step-1 kernel flows,
    ``kernel_eta<step>/`` for the others, ``transport/``); re-running skips
    finished points.

    ``unconverged``: points whose Sinkhorn missed its tolerance
    (:mod:`wgfsim.studies.convergence`) are listed in the result's
    ``unconverged`` and marked in its table (``"flag"``, the default), or
    make the study raise ``ValueError`` (``"refuse"``).
    """
    from .convergence import check_policy, unconverged as _unconverged

    check_policy(unconverged)
    from ..io import open_sweep
    from ..scenario import loads
    from ..sweep import run_sweep

    seps = [float(sigma * math.sqrt(x)) for x in x_values]
    horizon = kernel_steps * kernel_step_size
    settings = []
    for entry in kernel_flows:
        f, extra = (entry, {}) if isinstance(entry, str) else entry
        if _flows.get(f).options_at_scale is None:
            raise ValueError(f"kernel_flows: {f!r} has no length scale to set; flows with one: "
                             f"{[n for n in _flows.names() if _flows.get(n).options_at_scale is not None]}")
        st = flow_settings(f, sigma, horizon=horizon, extra=extra)
        if st.step_size == 1.0 and kernel_step_size != 1.0:  # the plain kernel flows take the caller's step
            st = dataclasses.replace(st, step_size=kernel_step_size, steps=kernel_steps,
                                     record_every=max(1, -(-kernel_steps // 300)))
        settings.append(st)
    # each flow's own study settings in this dimension (its record's study_options), at the length
    # sqrt(transport_eps) where the flow has a length scale (sinkhorn's epsilon = transport_eps)
    transport_params = {}
    for f in transport_flows:
        entry = _flows.get(f)
        transport_params[f] = dict(entry.study_options(dim)) if entry.study_options is not None else {}
        if entry.options_at_scale is not None:
            transport_params[f].update(entry.options_at_scale(math.sqrt(transport_eps)))
    by_step: dict = {}
    for st in settings:
        by_step.setdefault((st.step_size, st.steps, st.record_every), []).append(st)
    groups = []
    for (eta, steps, every), sts in by_step.items():
        name = "kernel" if eta == kernel_step_size else f"kernel_eta{eta:g}"
        groups.append((name, [(st.flow, st.options) for st in sts], steps, eta, every))
    groups.append(("transport", [(f, transport_params[f]) for f in transport_flows], transport_steps,
                   transport_step_size, 1))
    out = pathlib.Path(out_dir)
    pieces, dirs, datasets, decays, loose = [], [], [], {}, []
    import xarray as xr

    for group, flows, steps, eta, every in groups:
        if not flows:
            continue
        text = mass_transfer_scenario(
            name=f"mass_transfer_{group}", group=group, flows=flows, separations=seps, pi=pi, alpha=alpha, std=std,
            dim=dim, n=n, steps=steps, step_size=eta, record_every=every, seeds=seeds,
        )
        sc = loads(text, source=f"<mass_transfer_study:{group}>")
        result = run_sweep(sc, out / group, workers=workers, executor=executor, progress=progress)
        if result.failed:
            raise RuntimeError(f"mass_transfer_study: {len(result.failed)} point(s) failed:\n{result.summary()}")
        ds = open_sweep(out / group, variables=["mode_mass"])
        runs = open_sweep(out / group, layout="points", variables=["sinkhorn_error"])
        for i in np.flatnonzero(_unconverged(runs, "point")):
            loose.append(str(runs["file"].values[i]))
        if loose and unconverged == "refuse":
            raise ValueError(f"mass_transfer_study: {len(loose)} point(s) whose Sinkhorn missed its tolerance "
                             f"(sinkhorn_error in the files; raise max_iter): {', '.join(loose[:5])}")
        h = half_time(ds)
        if "flow" not in h.dims:
            h = h.expand_dims(flow=[str(ds["flow"].values)])
        # a critic at another lambda than 1 is its own line: "kale lambda=0.1"
        labels = {f: _label(f, o) for f, o in flows}
        h = h.assign_coords(flow=[labels.get(str(f), str(f)) for f in h["flow"].values])
        for f, o in flows:
            decays[labels[f]] = gap_decay(f, o)
        datasets.append((ds, h))
        dirs.append(out / group)
        pieces.append(h)
    h_all = xr.concat(pieces, dim="flow").transpose("flow", ...)
    h_all = h_all.drop_vars([c for c in h_all.coords if c not in h_all.dims and c != "init.separation"], errors="ignore")
    sep = h_all["target.separation"]
    x = (sep / sigma) ** 2
    hh, xx = xr.broadcast(h_all, x)
    labels = np.broadcast_to(h_all["flow"].values.reshape([-1] + [1] * (h_all.ndim - 1)), h_all.shape)
    slopes = fit_slopes(xx.transpose(*hh.dims).values, hh.values, labels)
    # the same fit for 1 / |closed-form velocity of the overcrowded atom|: what kappa alone predicts on this grid
    closed = {}
    for st in settings:
        inv = [1.0 / abs(two_atom_closed_form(st.flow, sigma * math.sqrt(xv) / 2, pi, alpha, **st.options))
               for xv in x_values]
        if all(math.isfinite(v) for v in inv):
            closed[_label(st.flow, st.options)] = _polyfit(np.asarray(x_values, float), np.log(inv))[0]
    return MassTransferStudy(half_times=h_all, x=x, slopes=slopes, sigma=float(sigma), sweep_dirs=dirs,
                             closed_form_slopes=closed, datasets=datasets, decays=decays, unconverged=loose)


def _label(flow: str, options: dict) -> str:
    lam = options.get("lambda_")
    return f"{flow} lambda={lam:g}" if lam is not None and float(lam) != 1.0 else flow


def plot_half_times(ds, *, sigma: float | None = None, half_times=None, ax=None):
    """Log half-time against ``separation^2 / sigma^2``, one line per flow (repeats: geometric mean).

    ``ds`` is a stored dataset (run file or sweep); ``half_times`` optionally
    the :func:`wgfsim.diagnostics.half_time` of it (computed when not given).
    Runs that never reached half their error are drawn as open triangles at
    the top edge.  The legend gives each flow's fitted slope; each flow's
    dashed guide is ``1/kappa`` of its own gap decay (the registry's options
    at ``sigma``: Gaussian ``exp(s^2/(2 sigma^2))``, slope 1/2 in ``x``;
    Laplace ``exp(s/h)``).
    Returns a ``matplotlib.figure.Figure``.
    """
    import xarray as xr
    from matplotlib.figure import Figure

    h = half_time(ds) if half_times is None else half_times
    x = separation_over_sigma(ds, sigma)
    h, x = xr.broadcast(h, x)
    x = x.transpose(*h.dims)
    names = flow_names(ds)
    flows = np.broadcast_to(names, h.shape) if names.shape == h.shape else _broadcast_names(ds, h)
    if ax is None:
        fig = Figure(figsize=(6.4, 4.4), dpi=100, layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    _draw_half_times(ax, x.values, h.values, flows, x.attrs["sigma"])
    return fig


def _broadcast_names(ds, h) -> np.ndarray:
    import xarray as xr

    names = xr.DataArray(flow_names(ds).astype(str), dims=ds["flow_params"].dims)
    return xr.broadcast(names, h)[0].transpose(*h.dims).values


def main(argv=None) -> int:
    """``wgfsim study mass_transfer``: run the study into OUT and print its table."""
    import argparse

    ap = argparse.ArgumentParser(prog="wgfsim study mass_transfer", description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="outputs/mass_transfer_study", help="folder for the two sweeps")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--kernel-flows", default="kl_kde,sinkhorn_proxy",
                    help="comma-separated flows with a length scale, NAME[:KEY=VALUE...] (e.g. kale:lambda_=0.1); "
                         "each takes its own step (wgfsim.studies._settings)")
    ap.add_argument("--transport-flows", default="sinkhorn,sliced,w2_exact")
    ap.add_argument("--x", default="4,6,8,10,12", help="values of separation^2/sigma^2")
    ap.add_argument("--kernel-steps", type=int, default=600)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--figure", help="also write the half-time figure here (PNG)")
    ap.add_argument("--unconverged", choices=["flag", "refuse"], default="flag",
                    help="points whose Sinkhorn missed its tolerance: mark them in the table (default) or refuse")
    args = ap.parse_args(argv)
    study = mass_transfer_study(
        args.output, x_values=[float(v) for v in args.x.split(",")], seeds=[int(s) for s in args.seeds.split(",")],
        kernel_flows=parse_flow_list(args.kernel_flows),
        transport_flows=[f for f in args.transport_flows.split(",") if f],
        kernel_steps=args.kernel_steps, workers=args.workers, progress=True, unconverged=args.unconverged,
    )
    print(study.table())
    if args.figure:
        study.figure().savefig(args.figure)
        print(f"wrote {args.figure}")
    return 0
