"""CLI mistakes end in one line and exit code 2, never a traceback (run in-process through cli.main)."""

from __future__ import annotations

import pytest

from wgfsim import cli

from scenarios import build


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(build())
    return path


def _main(argv) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors exit 2 after one "error:" line
        return exc.code


@pytest.mark.parametrize(
    "args, says",
    [
        (["sweep", "{f}", "--workers", "0"], "--workers: expected a positive integer, got '0'"),
        (["sweep", "{f}", "--dask-local", "-1"], "--dask-local: expected a positive integer"),
        (["sweep", "{f}", "--scheduler", "tcp://127.0.0.1:1", "--dask-local", "2", "-o", "{o}"], "give one of them"),
        # two executors asked for: local processes and a Dask cluster
        (["sweep", "{f}", "--workers", "2", "--dask-local", "2", "-o", "{o}"], "--workers: asks for local worker processes"),
        (["sweep", "{f}", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1", "-o", "{o}"], "give one executor"),
        (["study", "no_such_study"], "unknown study 'no_such_study'"),
        (["info", "{o}/missing.h5"], "missing.h5"),
        (["run", "{f}", "--set", "run.steps=-3", "-o", "{o}"], "run.steps"),
    ],
)
def test_mistakes_are_one_line_with_exit_2(tmp_path, scenario_file, capsys, args, says):
    code = _main([a.format(f=scenario_file, o=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


def test_foreign_file_is_refused_by_info_with_exit_2(tmp_path, capsys):
    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(b"not an hdf5 file at all")
    assert cli.main(["info", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "foreign.h5" in err and "Traceback" not in err
