"""Exact k-nearest-neighbour search over one point set, streamed in query chunks.

The exact faiss ``Flat`` index of :mod:`cellquery.index` (brute force, float32) finds a
few more candidates than needed;
the candidates are then re-ranked by float64 Euclidean distance computed from
coordinate differences, with ties broken by the lower cell index. This makes the
result exact and deterministic up to float32 rounding that moves a true
neighbour by more than the candidate margin, which does not happen in practice.
Memory is O(chunk * k * d) per step, never O(n^2).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cellquery.errors import InputError
from cellquery.index import build_index

_BLOCK_ELEMENTS = 1 << 23  # float64 elements gathered per re-ranking block (64 MiB)
_QUERY_ELEMENTS = 1 << 22  # query rows * candidates per faiss call


def iter_exact_knn(
    X: np.ndarray, k: int, exclude_self: bool = True
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(start, indices, distances)`` for consecutive query chunks of ``X``.

    Parameters
    ----------
    X
        (n, d) float array; every row is both a query and a database point.
    k
        Neighbours per cell (``k <= n - 1`` if ``exclude_self`` else ``k <= n``).
    exclude_self
        Drop each cell from its own neighbour list.

    Yields
    ------
    start, indices, distances
        Rows ``start:start+len(indices)``; ``indices`` (m, k) int64 ordered nearest
        first, ``distances`` (m, k) float64 Euclidean (not squared).
    """
    import faiss

    X = np.asarray(X, dtype=np.float64)
    n, _ = X.shape
    need = k + 1 if exclude_self else k
    if k < 1 or need > n:
        raise InputError(f"k: {k} neighbours are not possible with {n} cells")
    # Centring keeps float32 norms small, which makes faiss's distances tighter.
    Xc = X - X.mean(axis=0, keepdims=True)
    X32 = np.ascontiguousarray(Xc, dtype=np.float32)
    index = build_index("faiss", X32, {"factory": "Flat", "gpu": False})
    margin = min(n - need, max(16, int(np.ceil(0.05 * need))))
    n_cand = need + margin
    chunk = int(max(1, min(n, _QUERY_ELEMENTS // n_cand)))
    # Stay on faiss's direct-difference path: above this many queries per call it
    # switches to the BLAS expansion |x|^2 + |y|^2 - 2xy, whose float32 error
    # grows with the norms rather than the distances.
    blas_threshold = int(getattr(faiss.cvar, "distance_compute_blas_threshold", 0))
    if blas_threshold > 1:
        chunk = min(chunk, blas_threshold - 1)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        _, cand = index.search(X32[start:stop], n_cand, batch_size=chunk)
        yield (start, *_rerank(Xc, start, cand, k, exclude_self))


def _rerank(Xc: np.ndarray, start: int, cand: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of each query row's candidates by float64 distance, ties by lower index.

    Query rows are ``Xc[start : start + len(cand)]``; returns (indices, distances).
    """
    m, n_cand = cand.shape
    idx_out = np.empty((m, k), dtype=np.int64)
    dist_out = np.empty((m, k), dtype=np.float64)
    block = int(max(1, _BLOCK_ELEMENTS // (n_cand * max(Xc.shape[1], 1))))
    for b0 in range(0, m, block):
        b1 = min(m, b0 + block)
        ci = cand[b0:b1].astype(np.int64)
        diff = Xc[ci] - Xc[start + b0 : start + b1, None, :]
        dist = np.einsum("ijk,ijk->ij", diff, diff)
        if exclude_self:
            self_id = np.arange(start + b0, start + b1)[:, None]
            dist[ci == self_id] = np.inf
        # sort by (distance, index): lexsort uses the last key as primary
        order = np.lexsort((ci, dist), axis=1)[:, :k]
        idx_out[b0:b1] = np.take_along_axis(ci, order, axis=1)
        dist_out[b0:b1] = np.sqrt(np.take_along_axis(dist, order, axis=1))
    return idx_out, dist_out


def exact_knn(X: np.ndarray, k: int, exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """All neighbours at once: ``(indices, distances)`` of shape (n, k); see :func:`iter_exact_knn`."""
    parts = list(iter_exact_knn(X, k, exclude_self=exclude_self))
    return np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
