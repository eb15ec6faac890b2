"""The ``wgfsim`` command line: run | sweep | validate | info | plot | flows.

Exit codes: 0 success, 2 user error (bad scenario, bad arguments, missing
file), 1 internal failure or a run that stopped on NaN/inf (its records are
kept).  User errors print one message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USER = 0, 1, 2


class UserError(Exception):
    """A mistake of the user's: printed as one line, exit code 2."""


def _load(args):
    from .scenario import ScenarioError, load

    path = pathlib.Path(args.scenario)
    if not path.is_file():
        raise UserError(f"{path}: no such scenario file")
    try:
        return load(path, overrides=args.set or ())
    except ScenarioError as err:
        raise UserError(str(err)) from None


def cmd_run(args) -> int:
    from . import runner
    from .scenario import ScenarioError

    sc = _load(args)
    if sc.sweeps_data:
        raise UserError(
            f"{sc.source}: {', '.join(sc.data_sweeps)}: a list here sweeps the data, one file per data point; "
            f"run it with `wgfsim sweep {args.scenario}` (or pick one value with --set)"
        )
    out_dir = pathlib.Path(args.output)
    try:
        path = runner.run_scenario(sc, out_dir, resume=args.resume, progress=not args.quiet)
    except ScenarioError as err:
        raise UserError(str(err)) from None
    except KeyboardInterrupt:
        print(f"\nwgfsim: interrupted; every record so far is kept. Continue with: wgfsim run {args.scenario} --resume", file=sys.stderr)
        return 130
    print(f"wrote {path}")
    if not args.no_plots:
        from . import plots

        fig_dir = out_dir / f"{sc.name}_figures"
        for fig in plots.plot_all(path, fig_dir):
            print(f"wrote {fig}")
    return _report_failures(path)


def _report_failures(path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        failed = json.loads(f.attrs.get("failed_runs", "{}"))
    for label, err in failed.items():
        print(f"wgfsim: run '{label}' failed: {err}", file=sys.stderr)
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_sweep(args) -> int:
    from . import sweep

    sc = _load(args)
    result = sweep.run_sweep(
        sc, pathlib.Path(args.output) / sc.name, workers=args.workers, scheduler=args.scheduler,
        dask_local=args.dask_local, progress=not args.quiet,
    )
    print(result.summary() if hasattr(result, "summary") else result)
    return EXIT_FAILURE if getattr(result, "failed", None) else EXIT_OK


def cmd_validate(args) -> int:
    from .scenario import ScenarioError, expand

    sc = _load(args)
    try:
        points = expand(sc, allow_data_sweeps=True)
    except ScenarioError as err:
        raise UserError(str(err)) from None
    print(f"{sc.source}: ok: {len(points)} run(s)" + (" (data sweep: needs `wgfsim sweep`)" if sc.sweeps_data else ""))
    for p in points:
        print(f"  {p.label}")
    return EXIT_OK


def _open(path):
    from .store import open_run

    path = pathlib.Path(path)
    if not path.exists() and not path.with_name(path.name + ".partial").exists():
        raise UserError(f"{path}: no such file")
    try:
        return open_run(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a wgfsim run file ({err})") from None


def cmd_info(args) -> int:
    import numpy as np

    ds = _open(args.file)
    print(f"{args.file}: scenario {ds.attrs.get('scenario_name', '?')!r}, status {ds.attrs.get('status', '?')}, "
          f"wgfsim {ds.attrs.get('wgfsim_version', '?')}, backend {ds.attrs.get('backend', '?')}, dtype {ds.attrs.get('dtype', '?')}")
    print("dims: " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
    coords = [c for c in ds.coords if ds[c].dims == ("run",)]
    metrics = [m for m in ("mmd2", "energy_distance", "sinkhorn", "w2", "energy", "velocity_rms", "loss") if m in ds and not bool(np.all(np.isnan(ds[m].values)))]
    header = ["run", *coords, "records", *[f"final {m}" for m in metrics]]
    rows = []
    for r in range(ds.sizes["run"]):
        recorded = ~np.isnan(ds.position.values[r, :, 0, 0])
        n = int(recorded.sum())
        last = int(np.flatnonzero(recorded)[-1]) if n else None
        vals = [f"{ds[m].values[r, last]:.4g}" if last is not None else "-" for m in metrics]
        rows.append([str(r), *[str(ds[c].values[r]) for c in coords], str(n), *vals])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    if "mode_mass" in ds:
        print("mode masses at the last record: " + "; ".join(
            f"run {r}: " + "/".join(f"{m:.3f}" for m in ds.mode_mass.values[r, -1]) for r in range(ds.sizes["run"])))
    return EXIT_OK


def cmd_plot(args) -> int:
    from . import plots

    ds = _open(args.file)
    out = pathlib.Path(args.output) if args.output else pathlib.Path(args.file).with_suffix("").with_name(pathlib.Path(args.file).stem + "_figures")
    for fig in plots.plot_all(ds, out):
        print(f"wrote {fig}")
    return EXIT_OK


def cmd_flows(args) -> int:
    from . import flows

    for name in flows.names():
        flow = flows.get(name)
        print(f"{name}: {flow.summary}")
        print(f"    energy: {flow.energy_name or 'none (not a gradient flow)'}; weights a, b: {'yes' if flow.weights else 'no'}")
        for opt, default in flows.options(name).items():
            print(f"    {opt} = {default!r}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="wgfsim", description="Particle simulation of Wasserstein gradient flows and drifting fields.")
    p.add_argument("--version", action="version", version=f"wgfsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def scenario_args(sp):
        sp.add_argument("scenario", help="scenario file (TOML)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a scenario value, e.g. run.steps=100 (repeatable)")

    run = sub.add_parser("run", help="run a scenario into OUTPUT/NAME.h5 (and its figures)")
    scenario_args(run)
    run.add_argument("-o", "--output", default="outputs", help="output folder (default: outputs)")
    run.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoints")
    run.add_argument("--no-plots", action="store_true", help="skip the figures")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    sw = sub.add_parser("sweep", help="run every point of a scenario's lists, one file each")
    scenario_args(sw)
    sw.add_argument("-o", "--output", default="outputs", help="output folder (default: outputs); points go to OUTPUT/NAME/")
    sw.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    sw.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing dask.distributed scheduler")
    sw.add_argument("--dask-local", type=int, metavar="N", help="start a dask LocalCluster of N workers for the sweep")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=cmd_sweep)

    val = sub.add_parser("validate", help="check a scenario and list its runs, without running")
    scenario_args(val)
    val.set_defaults(func=cmd_validate)

    info = sub.add_parser("info", help="what a stored run holds, as a table")
    info.add_argument("file")
    info.set_defaults(func=cmd_info)

    plot = sub.add_parser("plot", help="figures from a stored run")
    plot.add_argument("file")
    plot.add_argument("-o", "--output", help="figure folder (default: FILE's stem + _figures)")
    plot.set_defaults(func=cmd_plot)

    fl = sub.add_parser("flows", help="the registered flows and their options")
    fl.set_defaults(func=cmd_flows)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"wgfsim: error: {err}", file=sys.stderr)
        return EXIT_USER


if __name__ == "__main__":
    sys.exit(main())
