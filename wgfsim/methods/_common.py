"""What both methods share: seeded streams and the bound field of a run point."""

from __future__ import annotations

import numpy as np

from ..flows import Field


def rng(*words) -> np.random.Generator:
    """The stream ``SeedSequence(words)`` (streams of a run: see :mod:`wgfsim.runner`)."""
    return np.random.default_rng(np.random.SeedSequence([int(w) for w in words]))


def field(point, backend: str, prune_tol=None) -> Field:
    """The run's bound field, on the stream ``[seed, 2]``, from the point's resolved ``Params``."""
    params = point.flow_params if point.flow_params is not None else point.params
    return Field(point.flow, params=params, rng=rng(point.seed, 2), backend=backend, prune_tol=prune_tol)
