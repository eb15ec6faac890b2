"""Host snapshots of run states: flat dicts of NumPy arrays and JSON strings.

Both methods (particles and the generator) save their state in this one
format, so a checkpoint is a ``numpy.savez`` archive that loads without
pickle (:mod:`wgfsim.io.checkpoint`) on any machine, GPU runs included:

- arrays are host copies under slash-separated keys (``x``, ``params/out.W``);
- random generators are their bit-generator state as JSON (:func:`rng_state`);
- a flow's carried state (Sinkhorn potentials, KALE's coefficients; string
  keys, :class:`wgfsim.flows.CarriedState`) is a JSON description whose arrays
  sit under ``field/...`` (:func:`save_field`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import numpy as np

from ..backend import to_numpy

__all__ = ["dumps", "loads", "rng_state", "rng_from", "save_field", "restore_field", "sample_digest"]


def sample_digest(sample) -> str:
    """SHA-256 of a sample's float64 values and its shape: a checkpoint names the target sample it was written for."""
    host = np.ascontiguousarray(to_numpy(sample), dtype=np.float64)
    return hashlib.sha256(host.tobytes()).hexdigest() + f":{host.shape}"


def _json_default(obj):
    if isinstance(obj, np.ndarray):  # MT19937's key, for instance
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"checkpoint: cannot encode {type(obj).__name__}")


def _json_hook(obj):
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def dumps(obj) -> str:
    """JSON text of ``obj`` (NumPy arrays and scalars allowed)."""
    return json.dumps(obj, default=_json_default)


def loads(value) -> Any:
    """Inverse of :func:`dumps`; ``value`` is a str or the 0-d array ``numpy.load`` returns."""
    text = value if isinstance(value, str) else str(np.asarray(value)[()])
    return json.loads(text, object_hook=_json_hook)


def rng_state(rng: np.random.Generator) -> str:
    """A generator's bit-generator state as JSON text."""
    return dumps(rng.bit_generator.state)


def rng_from(text) -> np.random.Generator:
    """The generator saved by :func:`rng_state`, continuing its stream exactly."""
    bit_state = loads(text)
    bit_generator = getattr(np.random, bit_state["bit_generator"])()
    bit_generator.state = bit_state
    return np.random.Generator(bit_generator)


def _encode(value, prefix: str, arrays: dict):
    """A JSON description of ``value``; its arrays go to ``arrays[prefix/...]`` as host copies."""
    if value is None:
        return {"none": True}
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0:
        arrays[prefix] = np.array(to_numpy(value))  # a copy: later in-place changes must not leak in
        return {"array": prefix}
    if isinstance(value, (tuple, list)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_encode(v, f"{prefix}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, (bool, int, float, str, np.generic)):
        return {"scalar": value.item() if isinstance(value, np.generic) else value}
    if hasattr(value, "shape"):  # 0-d array
        return {"scalar": to_numpy(value).item()}
    raise TypeError(f"checkpoint: cannot store field state of type {type(value).__name__} at {prefix!r}")


def _decode(spec, arrays: Mapping, xp):
    if "none" in spec:
        return None
    if "array" in spec:
        return xp.asarray(np.asarray(arrays[spec["array"]]))
    if "tuple" in spec:
        return tuple(_decode(s, arrays, xp) for s in spec["tuple"])
    if "list" in spec:
        return [_decode(s, arrays, xp) for s in spec["list"]]
    return spec["scalar"]


def save_field(field, ck: dict) -> None:
    """Put a :class:`wgfsim.flows.Field`'s generator and carried state into ``ck``."""
    ck["field_rng"] = rng_state(field.ctx.rng)
    entries = [[key, _encode(value, f"field/{i}", ck)] for i, (key, value) in enumerate(field.state.items())]
    ck["field_state"] = dumps(entries)


def restore_field(field, ck: Mapping, xp) -> None:
    """Overwrite ``field``'s generator and carried state with those saved by :func:`save_field`."""
    field.ctx.rng = rng_from(ck["field_rng"])
    field.state.clear()  # keep the dict object: a Field's calls share it
    for key, spec in loads(ck["field_state"]):
        field.state[key] = _decode(spec, ck, xp)  # a string key, stored as it is
