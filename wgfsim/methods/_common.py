"""What both methods share: seeded streams and the bound field of a run point."""

from __future__ import annotations

import numpy as np

from ..flows import Field


def rng(*words) -> np.random.Generator:
    """The stream ``SeedSequence(words)`` (streams of a run: see :mod:`wgfsim.runner`)."""
    return np.random.default_rng(np.random.SeedSequence([int(w) for w in words]))


def field(point, backend: str) -> Field:
    """The run's bound field, on the stream ``[seed, 2]``."""
    return Field(point.flow, rng=rng(point.seed, 2), backend=backend, **point.params)
