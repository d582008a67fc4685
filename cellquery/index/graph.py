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

from cellquery.index.merge import merge_topk


def reference_knn_graph(parts: list[dict], offsets: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices): each reference cell's k nearest other cells (global ids, ascending; -1 / inf where fewer).

    ``parts`` are the shards' hit files (keys ``reference_distances``,
    ``reference_indices``: all reference cells x the shard's k + 1 hits).
    """
    D, I = merge_topk([(p["reference_distances"], p["reference_indices"]) for p in parts], offsets, k + 1)
    rows = np.arange(len(I))[:, None]
    own = I == rows
    # drop the cell itself where it is among the hits, else the (k + 1)-th hit
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones(I.shape, dtype=bool)
    keep[np.arange(len(I)), drop] = False
    n = len(I)
    return D[keep].reshape(n, k), I[keep].reshape(n, k)


def graph_matrix(distances: np.ndarray, indices: np.ndarray) -> sp.csr_matrix:
    """The k-NN graph as a scipy CSR matrix of distances (cells x cells; missing hits left out)."""
    n, k = indices.shape
    present = indices >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))[present]
    return sp.csr_matrix((distances[present].astype(np.float64), (rows, indices[present])), shape=(n, n))
