"""Sharded search: split reference rows into shards and merge per-shard top-k results.

Written by hand (a k-way merge of small sorted lists; faiss's ``ResultHeap`` merges
squared distances in place and breaks ties by arrival order, not by global id).
"""

from __future__ import annotations

import numpy as np

from cellquery.errors import InputError
from cellquery.index.base import check_int, check_k, finalize

_ID_LAST = np.iinfo(np.int64).max


def split_shards(n: int, n_shards: int) -> list[tuple[int, int]]:
    """Split rows ``0..n-1`` into ``n_shards`` contiguous ranges ``(start, stop)``.

    The ranges of :func:`numpy.array_split`: sizes differ by at most one, larger shards first.

    Raises
    ------
    InputError
        ``n < 1``, ``n_shards < 1`` or ``n_shards > n`` (a shard would be empty).
    """
    for name, v in (("n", n), ("n_shards", n_shards)):
        check_int(v, f"index: split_shards {name}")
    if n_shards > n:
        raise InputError(f"index: split_shards n_shards={n_shards} exceeds n={n} rows")
    return [(int(part[0]), int(part[-1]) + 1) for part in np.array_split(np.arange(n), n_shards)]


def merge_topk(
    parts: list[tuple[np.ndarray, np.ndarray]], offsets: list[int], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact merge of per-shard top-k results into global top-k.

    Parameters
    ----------
    parts
        Per shard ``(D, I)``: distances (n_q, k_s) and shard-local ids (n_q, k_s); ``-1``
        ids (any distance) mark missing results. ``k_s`` may differ between shards.
    offsets
        Global id of each shard's row 0 (global id = local id + offset).
    k
        Neighbours kept per query.

    Returns
    -------
    D, I
        float32 (n_q, k) distances ascending and int64 global ids; ties broken by smaller
        global id; missing results (``-1`` / ``inf``) last.
    """
    k = check_k(k)
    if len(parts) == 0:
        raise InputError("index: merge_topk got no shard results")
    if len(offsets) != len(parts):
        raise InputError(f"index: merge_topk got {len(parts)} shard results but {len(offsets)} offsets")
    n_q = np.shape(parts[0][0])[0] if np.ndim(parts[0][0]) == 2 else None
    Ds, Is = zip(*(_global_ids(s, D, I, off, n_q) for s, ((D, I), off) in enumerate(zip(parts, offsets))))
    D = np.concatenate(Ds, axis=1)
    I = np.concatenate(Is, axis=1)
    # Sort each row by (distance, global id); missing ids carry inf and the largest id.
    order = np.lexsort((I, D), axis=1)[:, :k]
    D = np.take_along_axis(D, order, axis=1)
    I = np.take_along_axis(I, order, axis=1)
    # fewer candidates than k in total: finalize pads with -1 / inf
    return finalize(D, np.where(I == _ID_LAST, np.int64(-1), I), squared=False, k=k)


def _global_ids(s: int, D, I, offset: int, n_q: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Check shard ``s``'s results; return its distances and global ids, missing ones ``inf`` / last."""
    D = np.asarray(D, dtype=np.float32)
    I = np.asarray(I)
    if D.ndim != 2 or D.shape != I.shape:
        raise InputError(f"index: merge_topk shard {s} D {D.shape} and I {I.shape} must be equal 2-D shapes")
    if D.shape[0] != n_q:
        raise InputError(f"index: merge_topk shard {s} has {D.shape[0]} query rows, shard 0 has {n_q}")
    if np.isnan(D).any():
        raise InputError(f"index: merge_topk shard {s} distances contain NaN")
    check_int(offset, f"index: merge_topk offset {s}", lo=0)
    I = I.astype(np.int64)
    missing = I < 0
    return np.where(missing, np.float32(np.inf), D), np.where(missing, _ID_LAST, I + np.int64(offset))
