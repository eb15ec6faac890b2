"""The ``wgfsim`` command line: run | sweep | validate | info | plot | flows | study.

Exit codes:

- 0: success;
- 1: a run that stopped on NaN/inf (its records are kept), an environment
  failure (disk full, I/O error), or an internal error (with a traceback);
- 2: a user error: bad scenario, bad arguments, missing or foreign file, a
  library refusal of an input (any ``ValueError`` the library raises);
- 130: interrupted (Ctrl-C, or SIGTERM or SIGHUP, which take the same
  path); every record so far is kept and the message says how to resume.

User and environment errors print one line, never a traceback.
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
    from .scenario.resources import check_environment, check_size

    path = pathlib.Path(args.scenario)
    if not path.is_file():
        raise UserError(f"{path}: no such scenario file")
    try:
        sc = load(path, overrides=args.set or ())
        check_environment(sc)
        if getattr(args, "no_size_check", False):
            from .flows import set_limits

            # the API entry points' own check too, for this command (main restores it): the user chose to try
            args.restore_limits = set_limits(check=False)
        else:
            check_size(sc)
    except ScenarioError as err:
        raise UserError(str(err)) from None
    return sc


def _resume_command(args) -> str:
    """The command line that continues this run: scenario, -o and every --set, then --resume."""
    import shlex

    words = ["wgfsim", "run", args.scenario, "-o", args.output]
    for item in args.set or ():
        words += ["--set", item]
    if getattr(args, "no_size_check", False):
        words.append("--no-size-check")
    return " ".join(shlex.quote(str(w)) for w in words + ["--resume"])


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
    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite: give one of them (continue the unfinished run, or discard it)")
    try:
        path = runner.run_scenario(sc, out_dir, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    except ScenarioError as err:
        raise UserError(str(err)) from None
    except KeyboardInterrupt as err:
        print(f"\nwgfsim: interrupted{_by(err)}; every record so far is kept. Continue with: "
              f"{_resume_command(args)}", file=sys.stderr)
        return 130
    except OSError as err:
        partial = runner.output_path(sc, out_dir)
        partial = partial.with_name(partial.name + ".partial")
        if isinstance(err, _USER_ERRORS) or not partial.exists():
            raise
        # the environment failed (disk full, no inodes, I/O error): every published record is in the .partial
        print(f"wgfsim: error: {_one_line(err)}; the run is kept and resumable ({partial}): free space or fix the "
              f"disk, then continue with: {_resume_command(args)}", file=sys.stderr)
        return EXIT_FAILURE
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

    from .io.fs import check_not_symlink

    if args.workers is not None and (args.scheduler or args.dask_local):
        other = "--scheduler" if args.scheduler else "--dask-local"
        raise UserError(f"--workers: asks for local worker processes but {other} asks for a Dask cluster; give one "
                        "executor: --workers N (local processes), --dask-local N or --scheduler ADDRESS")
    sc = _load(args)
    check_not_symlink(pathlib.Path(args.output) / sc.name, "sweep")  # OUTPUT/NAME is a name wgfsim chose
    try:
        result = sweep.run_sweep(
            sc, pathlib.Path(args.output) / sc.name, workers=args.workers, scheduler=args.scheduler,
            dask_local=args.dask_local, progress=not args.quiet,
        )
    except KeyboardInterrupt as err:
        print(f"\nwgfsim: interrupted{_by(err)}; finished points are kept and an unfinished one resumes from its "
              "checkpoints: run the same `wgfsim sweep` command again to continue", file=sys.stderr)
        return 130
    print(result.summary() if hasattr(result, "summary") else result)
    return EXIT_FAILURE if getattr(result, "failed", None) else EXIT_OK


def cmd_validate(args) -> int:
    from .scenario import ScenarioError, expand

    sc = _load(args)
    try:
        if sc.sweeps_data:  # the runs `wgfsim sweep` really runs: tied data axes are not crossed
            from .sweep import plan

            points = [pp.point for pp in plan(sc)[0]]
        else:
            points = expand(sc, allow_data_sweeps=True)
    except ScenarioError as err:
        raise UserError(str(err)) from None
    print(f"{sc.source}: ok: {len(points)} run(s)" + (" (data sweep: needs `wgfsim sweep`)" if sc.sweeps_data else ""))
    for p in points:
        print(f"  {p.label}")
    from .scenario.resources import describe

    print(describe(sc))
    return EXIT_OK


def _open_stored(path):
    """``("run", dataset)`` or ``("sweep", dataset)``; a missing or foreign path is a UserError."""
    from . import plots

    try:
        return plots.open_path(path)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None


def cmd_info(args) -> int:
    import numpy as np

    kind, ds = _open_stored(args.file)
    if kind == "sweep":
        from . import plots

        print(plots.sweep_summary(ds))
        return EXIT_OK
    print(f"{args.file}: scenario {ds.attrs.get('scenario_name', '?')!r}, status {ds.attrs.get('status', '?')}, "
          f"wgfsim {ds.attrs.get('wgfsim_version', '?')}, backend {ds.attrs.get('backend', '?')}, dtype {ds.attrs.get('dtype', '?')}")
    print("dims: " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
    coords = [c for c in ds.coords if c != "run" and ds[c].dims == ("run",)]  # MultiIndex levels or plain coordinates
    metrics = [m for m, v in ds.data_vars.items() if v.dims == ("run", "time") and np.isfinite(v.values).any()]
    header = ["run", *coords, "records", *[f"final {m}" for m in metrics]]
    rows, last_record = [], []
    for r in range(ds.sizes["run"]):
        recorded = _recorded(ds, r)
        n = int(recorded.sum())
        last = int(np.flatnonzero(recorded)[-1]) if n else None
        last_record.append(last)
        vals = [f"{ds[m].values[r, last]:.4g}" if last is not None else "-" for m in metrics]
        rows.append([str(r), *[str(ds[c].values[r]) for c in coords], str(n), *vals])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    if "mode_mass" in ds and ds.sizes.get("mode", 0):
        print("mode masses at the last record: " + "; ".join(
            f"run {r}: " + ("-" if last is None else "/".join(f"{m:.3f}" for m in ds["mode_mass"].values[r, last]))
            for r, last in enumerate(last_record)))
    return EXIT_OK


def _recorded(ds, r: int):
    """Which records of run ``r`` were written: finite ``t``, or (a file without ``t``) finite positions."""
    import numpy as np

    if "t" in ds:
        return np.isfinite(ds["t"].values[r])
    if "position" in ds:
        return np.isfinite(ds["position"].values[r]).any(axis=(-2, -1))  # padded particles are NaN
    return np.ones(ds.sizes.get("time", 0), dtype=bool)


def cmd_plot(args) -> int:
    from . import plots

    path = pathlib.Path(args.file)
    if args.animate and path.is_dir():
        raise UserError(f"{path}: --animate draws one run file; a sweep folder has one per point "
                        f"(wgfsim plot {path}/POINT.h5 --animate)")
    kind, ds = _open_stored(path)
    stem = path.name.removesuffix(".partial").removesuffix(".h5")
    out = pathlib.Path(args.output) if args.output else path.parent / f"{stem}_figures"
    animation_only = [flag for flag, value in (("--format", args.format), ("--max-frames", args.max_frames),
                                               ("--fps", args.fps)) if value is not None]
    if animation_only and not args.animate:
        raise UserError(f"{', '.join(animation_only)}: only with --animate")
    made = not out.exists()  # a figure folder this call creates goes again if nothing is drawn into it
    try:
        if kind == "sweep":
            written = plots.plot_sweep(ds, out, dims=args.dims)
        elif args.animate:
            fmt = args.format or "gif"
            written = [plots.animate(ds, out / f"{stem}_animation.{fmt}", fmt=fmt, dims=args.dims,
                                     max_frames=plots.MAX_FRAMES if args.max_frames is None else args.max_frames,
                                     fps=8.0 if args.fps is None else args.fps, progress=not args.quiet)]
        else:
            written = plots.plot_all(ds, out, dims=args.dims)
    except (ValueError, KeyError) as err:  # bad --dims / --max-frames / --fps for this file, mp4 without ffmpeg;
        # a KeyError: a file that lacks a variable a figure needs
        raise UserError(str(err) if isinstance(err, ValueError) else f"{path}: cannot plot it (no {err})") from None
    finally:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    for fig in written:
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
    from ._version import __version__

    p = argparse.ArgumentParser(prog="wgfsim", description="Particle simulation of Wasserstein gradient flows and drifting fields.")
    p.add_argument("--version", action="version", version=f"wgfsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def scenario_args(sp):
        sp.add_argument("scenario", help="scenario file (TOML)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a scenario value, e.g. run.steps=100 (repeatable)")

    run = sub.add_parser("run", help="run a scenario into OUTPUT/NAME.h5 (and its figures)")
    scenario_args(run)
    run.add_argument("-o", "--output", default="outputs", help="output folder (default: outputs)")
    run.add_argument("--resume", action="store_true",
                     help="continue a killed run from its checkpoints (same scenario and --set values)")
    run.add_argument("--overwrite", action="store_true",
                     help="discard an unfinished run (NAME.h5.partial) and start afresh")
    run.add_argument("--no-size-check", action="store_true",
                     help="run even when the memory estimate exceeds the available memory")
    run.add_argument("--no-plots", action="store_true", help="skip the figures")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    sw = sub.add_parser("sweep", help="run every point of a scenario's lists, one file each")
    scenario_args(sw)
    sw.add_argument("-o", "--output", default="outputs", help="output folder (default: outputs); points go to OUTPUT/NAME/")
    sw.add_argument("--workers", type=_positive_int, default=None,
                    help="local worker processes (default 1); not with --scheduler or --dask-local")
    sw.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing dask.distributed scheduler")
    sw.add_argument("--dask-local", type=_positive_int, metavar="N",
                    help="start a dask LocalCluster of N workers for the sweep")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sw.add_argument("--no-size-check", action="store_true",
                    help="run even when the memory estimate exceeds the available memory")
    sw.set_defaults(func=cmd_sweep)

    val = sub.add_parser("validate", help="check a scenario and list its runs, without running")
    scenario_args(val)
    val.add_argument("--no-size-check", action="store_true", help="skip the memory estimate")
    val.set_defaults(func=cmd_validate)

    info = sub.add_parser("info", help="what a stored run (a table) or a sweep folder (points, axes, status) holds")
    info.add_argument("file", help="a run file (NAME.h5) or a sweep folder")
    info.set_defaults(func=cmd_info)

    plot = sub.add_parser("plot", help="figures from a stored run or a sweep folder",
                          description="A run file: snapshots, metrics, mode masses, velocities (PNG), or with "
                                      "--animate one animation of every run side by side.  A sweep folder: the "
                                      "final-sample grids (one per target) and the final metric against each "
                                      "flow's hyper-parameter.")
    plot.add_argument("file", help="a run file (NAME.h5) or a sweep folder")
    plot.add_argument("-o", "--output", help="figure folder (default: FILE's stem + _figures, beside it)")
    plot.add_argument("--animate", action="store_true", help="write an animation of the run file instead of stills")
    plot.add_argument("--format", choices=["gif", "mp4"], help="animation format (default gif; mp4 needs ffmpeg)")
    plot.add_argument("--max-frames", type=int, metavar="N",
                      help="at most N frames, records evenly subsampled (default 120)")
    plot.add_argument("--fps", type=float, help="animation frames per second (default 8)")
    plot.add_argument("--dims", metavar="I,J", help="the two data coordinates drawn, e.g. 0,3 (default 0,1)")
    plot.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    plot.set_defaults(func=cmd_plot)

    fl = sub.add_parser("flows", help="the registered flows and their options")
    fl.set_defaults(func=cmd_flows)

    st = sub.add_parser("study", help="run a study: mass_transfer | paper_fig2 | curl (arguments after the name)")
    st.add_argument("name", help="the study's name")
    st.add_argument("args", nargs=argparse.REMAINDER, help="the study's own arguments (wgfsim study NAME --help)")
    st.set_defaults(func=cmd_study)
    return p


def cmd_study(args) -> int:
    from . import studies

    if args.name not in studies.STUDIES:
        raise UserError(f"study: unknown study {args.name!r}; expected one of {list(studies.STUDIES)}")
    return studies.run(args.name, args.args)


def _positive_int(text: str) -> int:
    """argparse type: a positive integer, or a one-line usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# errors the library raises for what a user gave it: one line, exit 2
_USER_ERRORS = (UserError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)


def _user_errors() -> tuple:
    from .io.lock import LockHeld  # another writer holds the file: the user's to resolve

    return (*_USER_ERRORS, LockHeld)


def _stop_signals():
    """SIGTERM and SIGHUP take the Ctrl-C path (exit 130, every record kept, the resume hint).

    Returns the previous handlers (restored by :func:`main`); outside the main
    thread signals cannot be handled and nothing changes.
    """
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            old[sig] = signal.signal(sig, interrupt)
        except (ValueError, OSError):  # not the main thread
            pass
    return old


def main(argv=None) -> int:
    import signal

    args = _parser().parse_args(argv)
    previous = _stop_signals()
    try:
        return args.func(args)
    except _user_errors() as err:
        print(f"wgfsim: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USER
    except ImportError as err:  # an optional dependency asked for (CuPy, dask.distributed)
        print(f"wgfsim: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt as err:
        print(f"\nwgfsim: interrupted{_by(err)}", file=sys.stderr)
        return 130
    except OSError as err:  # the environment: disk full, I/O errors
        print(f"wgfsim: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if getattr(args, "restore_limits", None) is not None:
            from .flows import LIMITS

            LIMITS.update(args.restore_limits)


def _by(err: BaseException) -> str:
    """`` (SIGTERM)`` when a signal other than Ctrl-C stopped the command."""
    return f" ({err.args[0]})" if err.args and str(err.args[0]).startswith("SIG") else ""


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split()) if "\n" in text else text


if __name__ == "__main__":
    sys.exit(main())
