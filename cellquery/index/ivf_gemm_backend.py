"""Inverted-file L2 index searched list by list with GEMM + the fused top-k scan (an IVF-Flat).

Build: k-means (faiss ``Kmeans``, seeded) of ``nlist`` centroids trained on a seeded
subsample of ``points_per_list`` rows per list (50 by default, instead of the whole
reference), then every reference row is assigned to its nearest centroid (faiss
``IndexFlatL2.assign``) and the rows are stored grouped by list. Search: each query's
``nprobe`` nearest centroids (the exact search of :mod:`cellquery.index.gemm_backend`), then, list
by list, the queries that probe a list are scored against all of its rows with one BLAS
``sgemm`` per block (``-2 Q_l X_l^T``) followed by the same fused heap scan as the exact
backend. Every query's nearest list is scanned in a first pass and its other lists in a
second: after the first pass each heap holds close hits, so the scan's screening rejects
most rows of the other lists at SIMD speed. Worker threads own disjoint sets of queries,
so no heap is shared.

faiss's own ``IndexIVFFlat`` scans each query's lists one query at a time (no GEMM); the
query-grouped GEMM scan here was faster on the same lists (10^6 references, 10^4
queries, 1,000 lists, nprobe 16, 2 shared cores: 0.25-0.7 s against faiss's 0.8-0.9 s),
and the subsample-trained quantiser keeps the build short, which is what a one-shot
mapping (build + search + vote once) pays for. Written here because faiss has no
query-grouped IVF scan on the CPU.

With ``nprobe >= nlist`` every list is scanned and the results are exact (as the
``gemm`` backend, up to float32 rounding). Ties at equal distance are broken by the
smaller position in list order, then the output is ordered by (distance, id).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import IO

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from cellquery.errors import InputError
from cellquery.index.base import Index, check_int, finalize, restore_common
from cellquery.index.gemm_backend import _scan_block, knn_gemm

# queries searched per call of _search (the base class's batch_size is raised to this):
# large batches give each list many queries, so its GEMMs are large
MIN_BATCH = 200_000


def auto_nlist(n_total: int) -> int:
    """``nlist="auto"``: about ``sqrt(n)`` lists (at least 1).

    The build costs ``n * nlist`` distance computations (assigning every row), a search of
    ``q`` queries about ``q * nprobe * n / nlist``: for one-shot mappings (``q << n``) few,
    large lists keep the build short while the list scans stay GEMM-sized.
    """
    return max(1, int(round(math.sqrt(max(n_total, 1)))))


def _int(name: str, v) -> int:
    return check_int(v, f"index: ivf_gemm param '{name}'")


class IvfGemmIndex(Index):
    """IVF-Flat index with GEMM-batched list scans (see module doc).

    Stores the float32 vectors (4 * dim bytes per row), an int64 id per row and the centroids.

    Params
    ------
    nlist : int or "auto", default "auto"
        Inverted lists; "auto" -> :func:`auto_nlist` of ``n_total`` (or the training rows).
        Stored resolved after training.
    nprobe : int, default 8
        Lists scanned per query (clipped to nlist).
    points_per_list : int, default 50
        k-means training rows per list (a seeded subsample of the training rows).
    niter : int, default 10
        k-means iterations.
    n_total : int or None
        Final number of rows, for ``nlist="auto"`` when training on a sample of a chunked build.
    threads : int or None, default None
        Worker threads; None = ``os.cpu_count()``.
    query_block, ref_block : int, default 512, 4096
        Block shape of one GEMM inside a list.
    """

    backend = "ivf_gemm"
    DEFAULTS = {
        "nlist": "auto", "nprobe": 8, "points_per_list": 50, "niter": 10, "n_total": None,
        "threads": None, "query_block": 512, "ref_block": 4096,
    }

    def __init__(self, dim: int, params: dict | None = None, seed: int = 0):
        super().__init__(dim, params, seed)
        p = self.params
        if p["nlist"] != "auto":
            check_int(p["nlist"], "index: ivf_gemm param 'nlist'", alternative="'auto'")
        for key in ("nprobe", "points_per_list", "niter", "query_block", "ref_block"):
            _int(key, p[key])
        for key in ("threads", "n_total"):
            if p[key] is not None:
                check_int(p[key], f"index: ivf_gemm param '{key}'", alternative="None")
        self._centroids = np.zeros((0, dim), np.float32)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # chunks (rows, lists, ids) not yet grouped
        self._X = np.zeros((0, dim), np.float32)  # rows grouped by list
        self._ids = np.zeros(0, np.int64)  # original id of each grouped row
        self._offsets = np.zeros(1, np.int64)  # list l holds grouped rows offsets[l]:offsets[l + 1]
        self._norms = np.zeros(0, np.float32)

    # -- build ------------------------------------------------------------------------
    def _train(self, X: np.ndarray) -> None:
        p = self.params
        if p["nlist"] == "auto":
            p["nlist"] = auto_nlist(int(p["n_total"] or X.shape[0]))
        if p["nlist"] > X.shape[0]:
            raise InputError(f"index: ivf_gemm nlist={p['nlist']} exceeds the {X.shape[0]} training rows")
        n_sample = min(X.shape[0], p["nlist"] * p["points_per_list"])
        if n_sample < X.shape[0]:
            rows = np.sort(np.random.default_rng(self.seed).choice(X.shape[0], size=n_sample, replace=False))
            X = np.ascontiguousarray(X[rows])
        km = faiss.Kmeans(
            self.dim, int(p["nlist"]), niter=int(p["niter"]), seed=self.seed, verbose=False,
            max_points_per_centroid=int(p["points_per_list"]), min_points_per_centroid=1,
        )
        km.train(X)
        self._centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)

    def _threads(self) -> int:
        t = self.params["threads"]
        return int(t) if t is not None else (os.cpu_count() or 1)

    def _add(self, X: np.ndarray) -> None:
        # nearest centroid of every row: faiss's flat search, whose k = 1 path is a BLAS
        # GEMM + argmin without heaps
        quantizer = faiss.IndexFlatL2(self.dim)
        quantizer.add(self._centroids)
        lists = quantizer.assign(X, 1)[:, 0].astype(np.int64)
        order = np.argsort(lists, kind="stable")  # the gather below is the chunk's own copy
        # ids continue from self.n, the rows added before this chunk
        self._pending.append((np.ascontiguousarray(X[order], dtype=np.float32), lists[order], order + self.n))

    def _group(self) -> None:
        """Merge the chunks added since the last search into the list-grouped arrays.

        Each chunk is stored sorted by (list, id); a stable sort by list of the chunks in
        order keeps that order, so within a list the rows stay in ascending id.
        """
        if not self._pending:
            return
        old_lists = np.repeat(np.arange(len(self._offsets) - 1), np.diff(self._offsets))
        parts = ([(self._X, old_lists, self._ids)] if len(self._ids) else []) + self._pending
        if len(parts) == 1:
            X, lists, ids = parts[0]
        else:
            lists = np.concatenate([p[1] for p in parts])
            order = np.argsort(lists, kind="stable")
            X = np.concatenate([p[0] for p in parts])[order]
            lists, ids = lists[order], np.concatenate([p[2] for p in parts])[order]
        self._X, self._ids = X, ids
        self._offsets = np.concatenate([[0], np.cumsum(np.bincount(lists, minlength=len(self._centroids)))]).astype(np.int64)
        self._norms = np.einsum("ij,ij->i", self._X, self._X)
        self._pending = []

    # -- search -----------------------------------------------------------------------
    def search(self, Q: np.ndarray, k: int, batch_size: int = 10000) -> tuple[np.ndarray, np.ndarray]:
        check_int(batch_size, "index: batch_size")
        return super().search(Q, k, batch_size=max(int(batch_size), MIN_BATCH))

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._group()
        p = self.params
        nlist = len(self._centroids)
        nprobe = min(int(p["nprobe"]), nlist)
        threads = self._threads()
        _, probes = knn_gemm(Q, [self._centroids], nprobe, threads=threads)
        n_q = Q.shape[0]
        heap_d = np.full((n_q, k), np.inf, dtype=np.float32)
        heap_i = np.full((n_q, k), -1, dtype=np.int64)  # positions in list order
        Qm = np.ascontiguousarray(-2.0 * Q, dtype=np.float32)
        qb, rb = int(p["query_block"]), int(p["ref_block"])
        offsets, Xg, norms = self._offsets, self._X, self._norms

        def run(rows: np.ndarray) -> None:
            # every query's nearest list first: its heap then holds close hits, so the scans
            # of its other lists mostly cost the vectorised screening (module doc)
            buf = np.empty(qb * rb, dtype=np.float32)
            for ranks in (slice(0, 1), slice(1, nprobe)):
                lists = probes[rows, ranks].ravel()
                owner = np.repeat(rows, lists.size // max(len(rows), 1))
                order = np.argsort(lists, kind="stable")
                lists, owner = lists[order], owner[order]
                bounds = np.searchsorted(lists, np.arange(nlist + 1))
                for lst in np.flatnonzero(np.diff(bounds)):
                    lo, hi = offsets[lst], offsets[lst + 1]
                    for qs in range(bounds[lst], bounds[lst + 1], qb):
                        q = owner[qs : min(qs + qb, bounds[lst + 1])]
                        hd, hi_ = heap_d[q], heap_i[q]
                        Qb = Qm[q]
                        for rs in range(lo, hi, rb):
                            re = min(rs + rb, hi)
                            S = buf[: len(q) * (re - rs)].reshape(len(q), re - rs)
                            np.matmul(Qb, Xg[rs:re].T, out=S)
                            _scan_block(S, norms[rs:re], int(rs), hd, hi_)
                        heap_d[q], heap_i[q] = hd, hi_

        groups = [g for g in np.array_split(np.arange(n_q), threads) if len(g)]
        with threadpool_limits(limits=1, user_api="blas"):
            if len(groups) <= 1:
                for g in groups:
                    run(g)
            else:
                with ThreadPoolExecutor(max_workers=len(groups)) as pool:
                    list(pool.map(run, groups))
        I = np.where(heap_i >= 0, self._ids[np.maximum(heap_i, 0)], -1)
        order = np.lexsort((I, heap_d), axis=1)
        D = np.take_along_axis(heap_d, order, axis=1)
        I = np.take_along_axis(I, order, axis=1)
        qn = np.einsum("ij,ij->i", Q, Q)[:, None]
        return finalize(D + qn, I, squared=True)

    # -- file -------------------------------------------------------------------------
    def _write_payload(self, f: IO[bytes]) -> None:
        self._group()
        for a in (self._centroids, self._X, self._ids, self._offsets):
            np.save(f, a, allow_pickle=False)

    @classmethod
    def _read_payload(cls, f: IO[bytes], header: dict) -> "IvfGemmIndex":
        obj = cls.__new__(cls)
        restore_common(obj, header)
        obj._pending = []
        arrays = [np.load(f, allow_pickle=False) for _ in range(4)]
        obj._centroids, obj._X, obj._ids, obj._offsets = arrays
        if obj._X.shape != (obj.n, obj.dim) or len(obj._ids) != obj.n or obj._offsets[-1] != obj.n:
            raise InputError(f"index: ivf_gemm payload holds {obj._X.shape} rows, header says ({obj.n}, {obj.dim})")
        obj._norms = np.einsum("ij,ij->i", obj._X, obj._X)
        return obj
