"""A scenario builder for tests: the TOML of a small scenario, with any table or key replaced.

``build(**tables)`` starts from a tiny two-modes scenario (1-D, 64 points,
one kl_kde flow, 12 particle steps) and replaces whole tables or single keys:
``build(flow=[{"name": "mmd", "bandwidth": 1.0}], run={"steps": 4})``.  Keys
of a table given as a dict update that table (a key set to ``None`` is
removed); a table set to ``None`` is removed.  Tests
use it instead of copying a scenario text into every file.
"""

from __future__ import annotations

import copy
import json

BASE = {
    "name": "tiny",
    "target": {"kind": "two_modes", "separation": 2.0, "weights": [0.7, 0.3], "std": 0.1, "dim": 1, "n": 64},
    "init": {"kind": "two_modes", "separation": 2.0, "weights": [0.3, 0.7], "std": 0.1, "dim": 1, "n": 64},
    "flow": [{"name": "kl_kde", "bandwidth": 0.5}],
    "run": {"methods": ["particles"], "steps": 12, "step_size": 0.5, "record_every": 3, "seeds": [0]},
    "metrics": {"names": ["mode_mass", "mmd2"]},
}
# a generator small enough to train in a second
# (the residual net with He's init: spread out from the start, so 12 steps move its mode masses; the default
# plain MLP with torch's init starts collapsed near the origin)
GENERATOR = {"latent_dim": 2, "width": 16, "depth": 2, "learning_rate": 0.01, "batch_size": 64, "drift_step": 0.25,
             "architecture": "residual", "init": "he"}


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(u) for u in v) + "]"
    return repr(v)


def build(**tables) -> str:
    """The TOML text of the base scenario with ``tables`` applied (see the module docstring)."""
    spec = copy.deepcopy(BASE)
    for key, value in tables.items():
        if value is None:
            spec.pop(key, None)
        elif isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key].update(value)
            spec[key] = {k: v for k, v in spec[key].items() if v is not None}  # None removes a key
        else:
            spec[key] = value
    if "generator" in spec.get("run", {}).get("methods", []) and "generator" not in spec:
        spec["generator"] = dict(GENERATOR)
    lines = [f"{k} = {_value(v)}" for k, v in spec.items() if not isinstance(v, (dict, list)) or k == "description"]
    for key, value in spec.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for table in value:
                lines += ["", f"[[{key}]]"] + [f"{k} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
