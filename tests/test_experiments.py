"""The paper_fig2 driver (wgfsim/studies/paper_fig2.py) on a tiny generator sweep.

Truths: the point files read with h5py directly (not through wgfsim.io),
NumPy's mean/min/max over the seeds, and the PNG signature of the figure.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from wgfsim import scenario
from wgfsim.studies import paper_fig2 as experiments
from wgfsim.sweep import run_sweep

TINY = """
name = "tiny_fig2"
[target]
kind = "moons"
n = 200
[init]
kind = "gaussian"
dim = 2
n = 100
[[flow]]
name = "mmd"
bandwidth = [0.2, 1.0]
[[flow]]
name = "sliced"
n_projections = 4
[run]
methods = ["generator"]
steps = 3
record_every = 3
seeds = [0, 1]
[generator]
latent_dim = 2
width = 8
depth = 1
batch_size = 32
[metrics]
names = ["mmd2"]
reference_n = 200
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig2")
    result = run_sweep(scenario.loads(TINY), out, workers=1, progress=False)
    assert result.ok and len(result.finished) == 6
    return result.out_dir


def _value(coords):
    """The hyper-parameter as TINY writes it: swept bandwidths are coordinates; sliced's 4 is not swept."""
    return float(coords["bandwidth"]) if coords["flow"] == "mmd" else 4.0


def _final_mmd2_by_h5py(folder):
    manifest = json.loads((folder / "sweep.json").read_text())
    out = {}
    for e in manifest["points"]:
        with h5py.File(folder / e["file"], "r") as f:
            out[e["file"]] = (e["coords"], float(np.asarray(f["mmd2"])[0, -1]))
    return out


def test_rows_and_summary_match_the_point_files(sweep_dir):
    rows = experiments.collect(sweep_dir)
    truth = _final_mmd2_by_h5py(sweep_dir)
    assert len(rows) == len(truth) == 6  # (2 mmd bandwidths + 1 sliced) x 2 seeds
    assert {r["toy"] for r in rows} == {"moons"}  # one toy is no sweep axis: named from the scenario
    by_key = {(r["flow"], r["value"], r["seed"]): r["mmd2"] for r in rows}
    for coords, final in truth.values():
        assert by_key[(coords["flow"], _value(coords), int(coords["seed"]))] == pytest.approx(final, rel=1e-12)
    summary = experiments.summarise(rows)
    for (toy, flow, value), (mean, lo, hi, n) in summary.items():
        seeds = [final for coords, final in truth.values()
                 if coords["flow"] == flow and _value(coords) == value]
        assert n == 2
        assert (mean, lo, hi) == pytest.approx((np.mean(seeds), np.min(seeds), np.max(seeds)), rel=1e-12)
    best = experiments.best(summary)
    mmd_means = {v: m for (_, f, v), (m, *_r) in summary.items() if f == "mmd"}
    assert best[("moons", "mmd")] == (min(mmd_means, key=mmd_means.get), min(mmd_means.values()))


def test_figure_is_the_one_figure_2_implementation(sweep_dir, tmp_path):
    # the study draws with plots.final_metric_figure: the same PNG as the plot command's figure of the sweep
    import matplotlib.image

    path = experiments.figure(sweep_dir, tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from wgfsim import cli

    assert cli.main(["plot", str(sweep_dir), "-o", str(tmp_path / "figs")]) == 0
    (final,) = [p for p in (tmp_path / "figs").iterdir() if "_final_mmd2" in p.name]
    assert (matplotlib.image.imread(path) == matplotlib.image.imread(final)).all()
