"""The dense float64 reference: the oracle every fast kernel is tested against.

This is the only module of wgfsim that builds pairwise (N x M) arrays, and it
builds them ``chunk`` rows at a time so it never holds more than
``chunk x M`` numbers.  It is written for obviousness, not speed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lse_shift", "cost_matrix", "median_distance", "mean_distance", "pairwise_sq_dists"]

# rows per chunk: keeps chunk x M under ~32 MB of float64 for M = 10^5
_CHUNK_ELEMENTS = 1 << 22


def pairwise_sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``|x_i - y_j|^2`` as an (N, M) array, by explicit differences (no cancellation)."""
    diff = x[:, None, :] - y[None, :, :]  # (N, M, d)
    return np.einsum("nmd,nmd->nm", diff, diff)


def cost_matrix(x: np.ndarray, y: np.ndarray, cost: str = "sqeuclidean") -> np.ndarray:
    """The (N, M) cost matrix: ``|x-y|^2/2`` (``sqeuclidean``) or ``|x-y|`` (``euclidean``)."""
    d2 = pairwise_sq_dists(np.asarray(x, np.float64), np.asarray(y, np.float64))
    if cost == "sqeuclidean":
        return 0.5 * d2
    if cost == "euclidean":
        return np.sqrt(d2)
    raise ValueError(f"cost: expected 'sqeuclidean' or 'euclidean', got {cost!r}")


def lse_shift(x, y, g, eps, cost="sqeuclidean", exclude_diagonal=False, unit=False, with_shift=True):
    """Dense reference of the fused reduction (see :func:`wgfsim.primitives.lse_shift`).

    Returns ``lse`` (N,) and, if ``with_shift``, ``shift`` (N, d):
    ``lse_i = log sum_j exp(g_j - c(x_i, y_j)/eps)`` and
    ``shift_i = sum_j softmax_j(...) (y_j - x_i)`` (unit vectors if ``unit``).
    A row whose every logit is -inf gets ``lse = -inf`` and ``shift = 0``; a
    NaN logit (a NaN in x_i, y_j or g_j) makes its row NaN, never "empty".
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n, d = x.shape
    m = y.shape[0]
    g = np.zeros(m) if g is None else np.asarray(g, np.float64)
    lse = np.empty(n)
    shift = np.zeros((n, d)) if with_shift else None
    chunk = max(1, _CHUNK_ELEMENTS // max(m, 1))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        diff = y[None, :, :] - x[start:stop, None, :]  # (c, M, d)
        dist2 = np.einsum("cmd,cmd->cm", diff, diff)  # (c, M)
        c = 0.5 * dist2 if cost == "sqeuclidean" else np.sqrt(dist2)
        logits = g[None, :] - c / eps  # (c, M)
        if exclude_diagonal:
            rows = np.arange(start, stop)
            logits[rows - start, rows] = -np.inf
        mx = logits.max(axis=1, keepdims=True)  # (c, 1); NaN if any logit of the row is NaN
        empty = mx[:, 0] == -np.inf  # (c,) no admissible column
        mx_safe = np.where(empty[:, None], 0.0, mx)  # NaN stays NaN and spreads to the row
        with np.errstate(invalid="ignore"):  # +inf offsets: inf - inf, NaN as in the kernels
            w = np.exp(logits - mx_safe)  # (c, M)
        s = w.sum(axis=1)  # (c,)
        with np.errstate(divide="ignore"):
            lse[start:stop] = np.where(empty, -np.inf, np.log(s) + mx_safe[:, 0])
        if with_shift:
            if unit:
                norm = np.sqrt(dist2)
                diff = np.divide(diff, norm[..., None], out=np.zeros_like(diff), where=norm[..., None] > 0)
            num = np.einsum("cm,cmd->cd", w, diff)  # (c, d)
            with np.errstate(invalid="ignore"):
                shift[start:stop] = np.where(empty[:, None], 0.0, num / np.where(empty, 1.0, s)[:, None])
    return lse, shift


def _subsample(z: np.ndarray, max_points: int) -> np.ndarray:
    # a deterministic stride keeps heuristics reproducible without an RNG
    stride = max(1, int(np.ceil(z.shape[0] / max_points)))
    return z[::stride]


def median_distance(z: np.ndarray, max_points: int = 1000) -> float:
    """Median of ``|z_i - z_k|`` over distinct pairs of a strided subsample (median heuristic)."""
    z = _subsample(np.asarray(z, np.float64), max_points)
    d2 = pairwise_sq_dists(z, z)
    iu = np.triu_indices(z.shape[0], k=1)
    return float(np.sqrt(np.median(d2[iu])))


def mean_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Mean of ``|x_i - y_j|`` over all N x M pairs, exact (chunked row sums, never the N x M array)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return float(distance_sums(x, y).sum()) / (x.shape[0] * y.shape[0])


def distance_sums(x, y, exclude_diagonal=False):
    """Row sums ``sum_j |x_i - y_j|`` (N,), chunked (reference for the energy distance)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    out = np.empty(x.shape[0])
    chunk = max(1, _CHUNK_ELEMENTS // max(y.shape[0], 1))
    for start in range(0, x.shape[0], chunk):
        out[start:start + chunk] = np.sqrt(pairwise_sq_dists(x[start:start + chunk], y)).sum(axis=1)
    return out  # the diagonal terms |x_i - x_i| are zero, so exclude_diagonal changes nothing
