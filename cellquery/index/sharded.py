"""Sharded search as scatter and gather: the map-reduce of distributed NN-descent on Snakemake.

The reference is split into S contiguous shards. Each shard is indexed and
searched as its own job (scatter): for the query cells (k hits) and for the
reference cells themselves (k + 1 hits, for local scales and the distance
cut-off). The gather step merges the shards' top-k lists exactly
(:func:`cellquery.index.merge.merge_topk`), as distributed NN-descent
(PyNNDescent on Spark) merges the per-partition heaps of its k-NN graph, so
that for exact indexes the result equals one index over the whole reference.
An unsharded index is the one-shard case of the same three steps.
"""

from __future__ import annotations

import numpy as np

from cellquery.index import build_index
from cellquery.index.merge import merge_topk, split_shards
from cellquery.index.calibration import calibrate_from_reference_hits


def shard_rows(n: int, n_shards: int, shard: int) -> tuple[int, int]:
    """Row range (start, stop) of shard ``shard`` of ``n`` reference rows."""
    return split_shards(n, n_shards)[shard]


def build_shard(reference: np.ndarray, n_shards: int, shard: int, backend: str, params: dict, seed: int = 0):
    """Index of one shard of the reference (shard-local ids)."""
    start, stop = shard_rows(len(reference), n_shards, shard)
    return build_index(backend, reference[start:stop], params, seed=seed)


def search_shard(index, query: np.ndarray, reference: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """One shard's hits (shard-local ids) for the query (k) and for every reference cell (k + 1).

    An unsharded ``ivf_gemm`` index with ``self_search: leaves`` searches the reference in
    leaves of its own lists
    (:meth:`~cellquery.index.ivf_gemm_backend.IvfGemmIndex.leaf_reference_search`); a shard
    is searched by the whole reference as by queries, since most reference cells are not its own.
    """
    qd, qi = index.search(query, k)
    params = getattr(index, "params", {})
    if params.get("self_search") == "leaves" and getattr(index, "n", None) == len(reference):
        rd, ri = index.leaf_reference_search(min(k + 1, len(reference)), leaf_size=params["leaf_size"],
                                             nprobe=params["leaf_nprobe"])
    else:
        rd, ri = index.search(reference, min(k + 1, len(reference)))
    return {"distances": qd, "indices": qi, "reference_distances": rd, "reference_indices": ri}


def merge_shards(parts: list[dict], offsets: list[int], reference: np.ndarray, *, k: int, seed: int = 0):
    """Gather: merged query hits (global ids), leave-one-out self distances and the calibration."""
    distances, indices = merge_topk([(p["distances"], p["indices"]) for p in parts], offsets, k)
    k_self = min(k + 1, len(reference))
    rd, ri = merge_topk([(p["reference_distances"], p["reference_indices"]) for p in parts], offsets, k_self)
    calibration, self_distances = calibrate_from_reference_hits(reference, rd, ri, k=k, seed=seed)
    return distances, indices, self_distances, calibration


def sharded_search(indexes: list, offsets: list[int]):
    """A search function over every shard: ``search(x, n)`` returns the merged n nearest (global ids).

    Each shard is asked for at most its own size; the merge is exact, so for
    exact indexes this is the search of one index over the whole reference.
    """

    def search(points: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [index.search(points, min(n, index.n)) for index in indexes]
        return merge_topk(parts, offsets, n)

    return search
