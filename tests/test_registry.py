"""The flow registry: a flow is one module, one registry line, one test and one doc page, and its record carries what readers need.

Truths: the test suite's own source (every registered flow has a test marked
``@pytest.mark.truth(name)``), the repository's files (each flow's doc page),
round trips that need no reference values (a flow's options at a length
scale give back that length scale; ``field_at`` at the particles equals the
velocity exactly where the record says it does), and, registry-wide in the
diffrax style, each flow's own declared closed forms against its velocity
(``two_atom`` at stacked atoms, ``gap_decay`` across wide gaps).
"""

from __future__ import annotations

import ast
import math
import pathlib

import numpy as np
import pytest

import wgfsim
from wgfsim import flows

TESTS = pathlib.Path(__file__).parent
REPO = TESTS.parent


def truth_flows(test_dir: pathlib.Path = TESTS) -> set[str]:
    """Flow names named by ``@pytest.mark.truth(...)`` decorators anywhere in the test files (read with ast)."""
    found = set()
    for path in test_dir.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "truth"
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "mark"):
                found.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return found


def missing_truths(names, test_dir: pathlib.Path = TESTS) -> set[str]:
    return set(names) - truth_flows(test_dir)


def test_every_registered_flow_has_a_truth_test():
    assert missing_truths(flows.names()) == set()


def test_a_flow_without_a_truth_test_is_caught(tmp_path):
    (tmp_path / "test_some.py").write_text('import pytest\n\n@pytest.mark.truth("kl_kde")\ndef test_x():\n    pass\n')
    assert missing_truths(["kl_kde", "new_flow"], tmp_path) == {"new_flow"}


def test_truth_marks_name_registered_flows():
    assert truth_flows() <= set(flows.names())


@pytest.mark.parametrize("name", flows.names())
def test_flow_record_is_complete(name):
    flow = flows.get(name)
    assert flow.doc == f"docs/flows/{name}.md" and (REPO / flow.doc).is_file()
    options = flows.options(name)
    if flow.hyper is not None:
        assert flow.hyper in options
    # a length scale and the options that set it come together, and invert each other
    assert (flow.length_scale is None) == (flow.options_at_scale is None)
    if flow.options_at_scale is not None:
        for sigma in (0.3, 2.0):
            got = flow.length_scale(flows.make_params(name, **flow.options_at_scale(sigma)))
            assert got == pytest.approx(sigma, rel=1e-14)


@pytest.mark.parametrize("name", [n for n in flows.names() if flows.get(n).field_at is not None])
def test_field_at_the_particles(name, rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) + 0.5
    at = flows.field_at(name, x, x, y)
    assert at.shape == x.shape and np.isfinite(at).all()
    v = wgfsim.velocity(name, x, y)
    # the record says whether field_at at the particles is the velocity (drift_da2 masks the self pair in velocity only)
    assert np.allclose(at, v, rtol=1e-8, atol=1e-12) == flows.get(name).field_at_is_velocity


def test_flows_without_field_at_say_which_have_one():
    name = next(n for n in flows.names() if flows.get(n).field_at is None)
    x = np.zeros((2, 1))
    with pytest.raises(ValueError, match="flows with one"):
        flows.field_at(name, x, x, x + 1.0)


@pytest.mark.parametrize("name", [n for n in flows.names() if flows.get(n).two_atom is not None])
def test_two_atom_closed_forms_point_towards_the_deficit(name):
    # the overcrowded right atom (alpha < pi) moves left, towards the atom short of mass
    opts = flows.get(name).options_at_scale(1.0) if flows.get(name).options_at_scale else {}
    v = flows.get(name).two_atom(1.0, 0.5, 0.2, flows.make_params(name, **opts))
    assert math.isfinite(v) and v < 0


# ---------------------------------------------------------------- registry-wide truths (diffrax style)


def _stacked(D, pi, alpha, n=40, m=50):
    """Particles (alpha on -D, 1 - alpha on +D) and targets (pi, 1 - pi) stacked exactly on the atoms, in 1-D."""
    n_left, m_left = round(alpha * n), round(pi * m)
    x, y = np.full((n, 1), D), np.full((m, 1), D)
    x[:n_left], y[:m_left] = -D, -D
    return x, y


def _two_atom_cases(name):
    """Option sets of the flow: at two length scales (where it has one), with each kernel it offers, and its examples."""
    flow = flows.get(name)
    cases = [flow.options_at_scale(s) for s in (0.7, 1.5)] if flow.options_at_scale else [{}]
    if "kernel" in flows.options(name):
        cases += [{**c, "kernel": "laplace"} for c in cases]
    return cases + [dict(e) for e in flow.examples]


@pytest.mark.parametrize("name", flows.names())
def test_velocity_at_stacked_atoms_equals_the_declared_two_atom_form(name):
    # the flow's own closed form (docs/math.md#two-atoms) against its velocity at stacked atoms; a flow
    # that declares none must say why (a newcomer's flow may reproduce an existing closed form: see
    # docs/developer.md, "Add a flow")
    flow = flows.get(name)
    if flow.two_atom is None:
        assert flow.no_two_atom, f"{name}: declares no two_atom closed form and no reason (no_two_atom)"
        return
    pi, alpha, checked = 0.6, 0.3, 0
    for options in _two_atom_cases(name):
        params = flows.make_params(name, **options)
        for D in (0.4, 1.0):
            expected = flow.two_atom(D, pi, alpha, params)
            if not math.isfinite(expected):  # the form does not hold for these options (it says so with NaN)
                continue
            x, y = _stacked(D, pi, alpha)
            v = wgfsim.velocity(name, x, y, rng=0, **options)
            # the mean over the overcrowded atom's particles (w2_exact splits them; the others move them alike)
            got = v[x[:, 0] > 0, 0].mean()
            np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-12, err_msg=f"{name} {options} D={D}")
            checked += 1
    assert checked > 0, f"{name}: declares two_atom but no option set gives a finite value"


def test_kl_kde_laplace_two_atom_is_the_closed_form_not_nan():
    # kappa = exp(-2D/h), written out here from docs/math.md#two-atoms rather than taken from wgfsim.analytic
    D, h, pi, alpha = 0.8, 0.5, 0.6, 0.3
    k = math.exp(-2 * D / h)
    by_hand = -2 * D * (pi * k / (1 - pi + pi * k) - alpha * k / (1 - alpha + alpha * k))
    params = flows.make_params("kl_kde", kernel="laplace", bandwidth=h)
    assert flows.get("kl_kde").two_atom(D, pi, alpha, params) == pytest.approx(by_hand, rel=1e-14)


@pytest.mark.parametrize("name", flows.names())
def test_gap_decay_law_is_how_the_velocity_at_stacked_atoms_decays(name):
    # across a wide gap the overcrowded atom's velocity is (displacement s) x (the law at s) x (a constant):
    # the declared law and length must give the ratio of the velocities at two wide gaps
    flow = flows.get(name)
    options = flow.options_at_scale(0.8) if flow.options_at_scale else {}
    law, length = flow.gap_decay(flows.make_params(name, **options))
    assert law in flows.GAP_LAWS
    if law == "none":
        assert math.isnan(length)
        return
    assert length > 0
    if flow.two_atom is None:  # only flows whose stacked-atom velocity is a pure kernel weight are measured here
        return
    s1, s2 = (6 * length, 7 * length) if law == "gaussian" else (12 * length, 14 * length)
    v = []
    for s in (s1, s2):
        x, y = _stacked(s / 2, 0.6, 0.3)
        v.append(wgfsim.velocity(name, x, y, **options)[x[:, 0] > 0, 0].mean())
    predicted = (s2 / s1) * (math.exp(-(s2**2 - s1**2) / (2 * length**2)) if law == "gaussian"
                             else math.exp(-(s2 - s1) / length))
    assert v[1] / v[0] == pytest.approx(predicted, rel=2e-3)


def equivalences(points, cases):
    """Pairs of (flow, options) of different flows whose velocities agree on ``points`` (to 1e-10, normwise)."""
    x, y = points
    fields = [(name, opts, wgfsim.velocity(name, x, y, rng=0, **opts)) for name, opts in cases]
    out = []
    for i, (a, oa, va) in enumerate(fields):
        for b, ob, vb in fields[i + 1:]:
            if a != b and np.abs(va - vb).max() <= 1e-10 * max(np.abs(vb).max(), 1e-300):
                out.append(((a, oa), (b, ob)))
    return out


def test_no_flow_is_another_flows_option_set(rng):
    # a new flow that reproduces an existing one (a flow equal to kl_kde(kernel="laplace")) is an option set,
    # not a flow: every registered flow's examples against every other's, on the same points
    points = rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) * 0.8 + 0.5
    cases = [(n, dict(e)) for n in flows.names() for e in flows.get(n).examples]
    assert equivalences(points, cases) == []


def test_the_equivalence_check_finds_a_copy_of_an_existing_flow(rng):
    import dataclasses

    points = rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) * 0.8 + 0.5
    copy = dataclasses.replace(flows.get("kl_kde"), name="laplace_copy", examples=({"kernel": "laplace"},))
    flows.register(copy)
    try:
        found = equivalences(points, [("kl_kde", {"kernel": "laplace"}), ("mmd", {}), ("laplace_copy", {"kernel": "laplace"})])
    finally:
        flows._registry._REGISTRY.pop("laplace_copy")
    assert found == [(("kl_kde", {"kernel": "laplace"}), ("laplace_copy", {"kernel": "laplace"}))]
