"""The flow registry: every flow is one file plus one registry line, and carries what readers need.

Truths: the test suite's own source (every registered flow has a test marked
``@pytest.mark.truth(name)``), the repository's files (each flow's doc page),
and round trips that need no reference values (a flow's options at a length
scale give back that length scale; ``field_at`` at the particles equals the
velocity where the flow says it does).
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


# flows whose field at their own particles is their velocity (drift_da2 masks the self pair in velocity only)
FIELD_AT_IS_VELOCITY = ("kl_kde", "mmd", "sinkhorn_proxy", "kale", "drmmd")


@pytest.mark.parametrize("name", [n for n in flows.names() if flows.get(n).field_at is not None])
def test_field_at_the_particles(name, rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) + 0.5
    at = flows.field_at(name, x, x, y)
    assert at.shape == x.shape and np.isfinite(at).all()
    if name in FIELD_AT_IS_VELOCITY:
        np.testing.assert_allclose(at, wgfsim.velocity(name, x, y), rtol=1e-8, atol=1e-12)


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
