"""The reference's own k-NN graph by the shards' scatter/gather, so that no process holds the whole reference's index.

Every shard is searched by all reference cells for k + 1 hits (rule
query_index, :func:`cellquery.index.sharded.search_shard`); the gather merges
those per-shard heaps exactly (:func:`cellquery.index.merge.merge_topk`, as
distributed NN-descent merges its partitions' heaps) and drops each cell
itself, leaving its k nearest *other* reference cells. For exact indexes the
graph equals brute-force k-NN over the whole reference; a cell's own row is
at distance 0 and so among its k + 1 merged hits unless more than k other
cells coincide with it, when any k of them at distance 0 are its neighbours.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cellquery.errors import InputError
from cellquery.index.merge import merge_topk


def reference_knn_graph(parts: list[dict], offsets: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices): each reference cell's k nearest other cells (global ids, ascending; -1 / inf where fewer).

    ``parts`` are the shards' hit files (keys ``reference_distances``,
    ``reference_indices``: all reference cells x the shard's k + 1 hits).
    """
    D, I = merge_topk([(p["reference_distances"], p["reference_indices"]) for p in parts], offsets, k + 1)
    return drop_self_hits(D, I, np.arange(len(I)))


def drop_self_hits(distances: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hits of reference rows searched against their own reference, each row's own hit removed.

    ``distances`` / ``indices``: ``(n, k + 1)`` hits of reference rows ``rows``. A row's
    first entry with its own id is dropped (leave-self-out); where the search did not
    return it, the last (farthest) hit is dropped instead. Returns ``(n, k)`` arrays.
    """
    indices = np.asarray(indices)
    rows = np.asarray(rows)
    if indices.ndim != 2 or indices.shape[1] < 2 or len(rows) != len(indices):
        raise InputError(f"index: leave-self-out needs (n, k + 1) hits for n rows, got {indices.shape} for {len(rows)}")
    n, width = indices.shape
    own = indices == rows[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), width - 1)
    keep = np.ones(indices.shape, dtype=bool)
    keep[np.arange(n), drop] = False
    return np.asarray(distances)[keep].reshape(n, width - 1), indices[keep].reshape(n, width - 1)


def graph_matrix(distances: np.ndarray, indices: np.ndarray) -> sp.csr_matrix:
    """The k-NN graph as a scipy CSR matrix of distances (cells x cells; missing hits left out)."""
    n, k = indices.shape
    present = indices >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))[present]
    return sp.csr_matrix((distances[present].astype(np.float64), (rows, indices[present])), shape=(n, n))
