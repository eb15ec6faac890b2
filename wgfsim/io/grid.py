"""The grid layout of a sweep: one dimension per independent swept key (see :func:`wgfsim.io.open_sweep`)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["grid_layout"]


def _aliases(keys: list[str], table: dict[str, list]) -> dict[str, str]:
    """key -> earlier key it always equals (a tied data axis), e.g. init.separation -> target.separation."""
    out = {}
    for j, b in enumerate(keys):
        for a in keys[:j]:
            if a in out:
                continue
            if all(x is not None and x == y for x, y in zip(table[a], table[b])):
                out[b] = a
                break
    return out


def _config_label(coords: dict, members: list[str]) -> str:
    extra = " ".join(f"{k}={coords[k]}" for k in members if k != "flow" and coords.get(k) is not None)
    return f"{coords.get('flow', '')} {extra}".strip()


def grid_layout(ds, keys: list[str], table: dict[str, list]):
    """Unstack the ``point`` dimension into one dimension per independent swept key (see :func:`open_sweep`)."""
    aliases = _aliases(keys, table)
    n = ds.sizes["point"]
    independent = [k for k in keys if k not in aliases]
    partial = [k for k in independent if any(v is None for v in table[k])]
    if partial:
        members = ["flow"] + [k for k in independent if k in partial and k != "flow"]
        labels = [_config_label({k: table[k][i] for k in members}, members) for i in range(n)]
        ds = ds.assign_coords(config=("point", np.array(labels, dtype=str)))
        dims = ["config"] + [k for k in independent if k not in members]
        grouped = {m: "config" for m in members}
    else:
        dims = list(independent)
        grouped = {}
    if not dims:  # one point: nothing to unstack
        return ds.squeeze("point", drop=False).drop_vars(["point"], errors="ignore")
    # coordinates that are functions of one grid dimension: aliases and the config's members
    parent = {**{b: a for b, a in aliases.items()}, **grouped}
    parent = {k: p for k, p in parent.items() if k != p}
    along: dict[str, dict[str, Any]] = {}
    for k, p in parent.items():
        pvals = ds[p].values
        along[k] = {"parent": p, "map": {}}
        for pv, kv in zip(pvals.tolist(), ds[k].values.tolist()):
            along[k]["map"].setdefault(pv, kv)
    other = [c for c, v in ds.coords.items() if v.dims == ("point",) and c not in dims]
    dropped = {c: ds[c] for c in other}
    ds = ds.drop_vars(other)
    # a key with one value over the whole sweep (method = "particles") stays as a scalar coordinate
    constant = {c: v.values[0] for c, v in dropped.items() if c not in along and (v.values == v.values[0]).all()}
    if len(dims) == 1:
        # one axis: a plain index, nothing to unstack (xarray unstacks only MultiIndexes)
        if len(set(ds[dims[0]].values.tolist())) != n:
            raise ValueError(f"sweep: the key {dims[0]!r} does not identify the points uniquely; "
                             "open it with layout='runs'")
        ds = ds.swap_dims(point=dims[0]).sortby(dims[0])
    else:
        ds = ds.set_index(point=dims)
        if ds.indexes["point"].has_duplicates:
            raise ValueError(f"sweep: the keys {dims} do not identify the points uniquely; open it with layout='runs'")
        fill = {"status": "absent", "error": "", "file": ""}
        ds = ds.unstack("point", fill_value=fill) if "status" in ds else ds.unstack("point")
    for k, info in along.items():
        p = info["parent"]
        values = [info["map"].get(v) for v in ds[p].values.tolist()]
        ds = ds.assign_coords({k: (p, np.asarray(values, dtype=dropped[k].dtype))})
    ds = ds.assign_coords({c: ((), v) for c, v in constant.items()})
    ds = ds.transpose(*dims, ...)
    return ds
