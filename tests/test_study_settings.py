"""Per-flow settings the studies draw from the registry (wgfsim.studies._settings) and the fixed-point study's part d.

Truths: the MMD field of one target atom at distance s from a lone particle
(closed form: ``k(s) s`` for the Gaussian kernel, ``k(s)`` times a unit vector
for the Laplace kernel) decays between two distances exactly as the flow's
gap law says; the critics' steps are those measured in docs/results.md
(halving them moved no half-time by more than 6 %); an unbiased linear
field's batch noise falls like ``B^-1/2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import wgfsim
from wgfsim.studies import fixed_point
from wgfsim.studies._settings import flow_settings, gap_decay, log_inverse_decay, parse_flow_list


@pytest.mark.parametrize("kernel, prefactor", [("gaussian", lambda s: s), ("laplace", lambda s: 1.0)])
def test_gap_decay_is_the_fields_decay(kernel, prefactor):
    h = 0.7
    law, length = gap_decay("mmd", {"bandwidth": h, "kernel": kernel})
    assert (law, length) == (kernel, pytest.approx(h))
    s1, s2 = 1.5, 3.0
    v = [wgfsim.velocity("mmd", np.zeros((1, 1)), np.array([[s]]), bandwidth=h, kernel=kernel)[0, 0] for s in (s1, s2)]
    # v(s) = prefactor(s) * kappa(s): the decay between s1 and s2 is the law's, up to the known prefactor
    measured = math.log(v[0] / prefactor(s1)) - math.log(v[1] / prefactor(s2))
    assert measured == pytest.approx(log_inverse_decay(law, length, s2) - log_inverse_decay(law, length, s1), rel=1e-9)


def test_transport_flows_do_not_decay_and_kernel_flows_do():
    for name in ("sinkhorn", "sliced", "w2_exact"):
        assert gap_decay(name, {})[0] == "none"
    for name in ("kl_kde", "sinkhorn_proxy", "kale", "drmmd"):
        law, length = gap_decay(name, wgfsim.flows.get(name).options_at_scale(2.0))
        assert law == "gaussian" and length == pytest.approx(2.0)


def test_critic_steps_are_the_measured_ones():
    want = {("kale", 1.0): 0.5, ("kale", 0.1): 0.2, ("drmmd", 1.0): 0.25, ("drmmd", 0.1): 0.1}
    for (name, lam), eta in want.items():
        st = flow_settings(name, 1.0, horizon=600, extra={"lambda_": lam})
        assert st.step_size == eta and st.steps == round(600 / eta) and st.steps / st.record_every <= 300
    assert flow_settings("kl_kde", 1.0).step_size == 1.0
    assert flow_settings("w2_exact", 1.0).step_size == 0.1
    assert parse_flow_list("kl_kde, kale:lambda_=0.1") == [("kl_kde", {}), ("kale", {"lambda_": 0.1})]
    with pytest.raises(ValueError, match="unknown flow"):
        parse_flow_list("kde")


def test_part_d_batch_noise_of_the_mmd_field_falls_like_one_over_sqrt_b():
    # the MMD field is linear in both empirical measures: no batch bias beyond noise, std ~ B^-1/2
    res = fixed_point.part_d(batches=(64, 256, 1024), k_points=16, full=4096, repeats=30, flows=[("mmd", {})])
    rows = sorted(res["rows"], key=lambda r: r["B"])
    slope = np.polyfit(np.log([r["B"] for r in rows]), np.log([r["std"] for r in rows]), 1)[0]
    assert -0.75 < slope < -0.25, slope
    for r in rows:  # the bias is the noise of a 30-repeat mean plus the full sample's own error
        assert r["bias"] < 3 * r["std"] / math.sqrt(30) + 0.05


@pytest.mark.slow
def test_fixed_point_parts_a_to_c_run_from_the_cli(tmp_path, capsys):
    """A tiny run of parts a-c: the transport flow's particles finish the transfer, both methods start together."""
    import json

    out = tmp_path / "out"
    assert fixed_point.main(["--part", "a", "-o", str(out), "--x", "4", "--horizon", "4", "--flows", "kl_kde,w2_exact",
                             "--set", "generator.start_steps=200", "--json", str(tmp_path / "a.json")]) == 0
    rows = json.loads((tmp_path / "a.json").read_text())["a"]["rows"]
    w2 = {r["method"]: r for r in rows if r["flow"] == "w2_exact"}
    assert w2["particles"]["mass_final"] == pytest.approx(0.5, abs=0.01)  # exact W2 moves the 30 % in t = 3
    for r in rows:  # one start: the particles' stratified 0.2, the fitted generator near it
        assert r["mass0"] == pytest.approx(0.2, abs=0.05 if r["method"] == "generator" else 1e-12)
    assert fixed_point.main(["--part", "b", "-o", str(out), "--sigmas", "2", "--horizon", "4", "--flows", "mmd",
                             "--json", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["b"]["rows"]
    assert len({r["mass0_start"] for r in rows}) == 1  # both methods start at the untrained generator's points
    assert fixed_point.main(["--part", "c", "-o", str(out), "--widths", "8", "--depths", "1", "--horizon", "3",
                             "--json", str(tmp_path / "c.json")]) == 0
    (row,) = json.loads((tmp_path / "c.json").read_text())["c"]["rows"]
    assert row["gap"][0] == 0.0 and all(math.isfinite(v) for v in row["residual"][:-1])
    assert "part c" in capsys.readouterr().out
