"""Inverted-file L2 index searched list by list with GEMM + the fused top-k scan (an IVF-Flat).

Build: k-means (faiss ``Kmeans``, seeded) of ``nlist`` centroids trained on a seeded
subsample of ``points_per_list`` rows per list (50 by default, instead of the whole
reference), then every reference row is assigned to its nearest centroid (faiss
``IndexFlatL2.assign``) and the rows are stored grouped by list. Search: each query's
``nprobe`` nearest centroids (exact, through groups of centroids: :meth:`IvfGemmIndex.probes`), then, list
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

The reference's own k nearest rows (calibration: local scales, conformal candidates) are
searched the same way with the rows in list order (:meth:`IvfGemmIndex.reference_search`),
optionally with fewer lists per row. A row's first list is scanned into an empty heap: the
k-th smallest minimum of short runs of its values bounds its k best, and the values at or
below it are pushed (:func:`_scan_block_seeded`).

With ``nprobe >= nlist`` every list is scanned and the results are exact (as the
``gemm`` backend, up to float32 rounding). Ties at equal distance are broken by the
smaller position in list order, then the output is ordered by (distance, id).
"""

from __future__ import annotations

import math
import os
from typing import IO

import faiss
import numpy as np
from numba import njit

from cellquery.errors import InputError
from cellquery.index.base import Index, check_int, restore_common
from cellquery.index.gemm_backend import _W, _heap_replace_top, _sift_down, run_threads
from cellquery.index.leaf_search import _heap_of, _kth_bound, leaf_heaps, leaf_kth_distances, leaf_probes, split_lists

# queries searched per call of _search (the base class's batch_size is raised to this):
# large batches give each list many queries, so its GEMMs are large
MIN_BATCH = 200_000

_RUN = 8  # at most this many columns per run whose minima bound an empty heap's first block


# fastmath as in gemm_backend._scan_block (the values pushed are computed exactly as there)
@njit(nogil=True, cache=True, fastmath={"nnan", "nsz", "reassoc"})
def _scan_block_seeded(S, norms, base, heap_d, heap_i, rows):  # pragma: no cover - compiled
    """:func:`cellquery.index.gemm_backend._scan_block` that first bounds a not yet full heap.

    Row r of ``S`` is pushed into heap row ``rows[r]`` of ``heap_d`` / ``heap_i``.

    A row whose heap is not full (root +inf: its first list) would push most of the block's
    first values and sift them down. Instead the block's columns are cut into runs of
    ``nb / 4k`` (at most ``_RUN``, at least 1); a bound at or above the k-th smallest run
    minimum is a value that at least k values of the block reach, so no value above it
    can end among the row's k best, and only values at or below it are pushed (a few k
    instead of k (1 + ln(n / k))). Into an empty heap they are collected and made the heap
    of their k smallest by (value, column) at once. Both steps are the leaf search's
    helpers (:func:`cellquery.index.leaf_search._kth_bound`, bisection with counts, and
    ``_heap_of``) on buffers allocated once per call. With numba's ``np.partition`` and a
    sort per row (each allocating), the first lists of 10^4 queries at 10^6 references
    (2,000 lists) took 0.060-0.065 s and the scan with nprobe 8 0.141-0.153 s; with an
    in-place quickselect of the run minima and the heap built at once, 0.047-0.052 s and
    0.117-0.134 s (best three of six runs of each, alternating in one process); the
    bisection instead of the quickselect took the first lists' selection from 25 to 11 ms
    on one thread. The k best found are the same (up to the order in which exactly equal
    distances are admitted).
    """
    nq, nb = S.shape
    k = heap_d.shape[1]
    nfull = nb - nb % _W
    run = max(1, min(_RUN, nb // (4 * k)))
    n_runs = nb // run
    mins = np.empty(max(n_runs, 1), dtype=np.float32)
    vals = np.empty(nb, dtype=np.float32)
    cols = np.empty(nb, dtype=np.int64)
    for r in range(nq):
        hd = heap_d[rows[r]]
        hi = heap_i[rows[r]]
        row = S[r]
        bound = np.float32(np.inf)
        if hd[0] == np.inf and n_runs >= k:
            for g in range(n_runs):
                m = norms[g * run] + row[g * run]
                for jj in range(1, run):
                    v = norms[g * run + jj] + row[g * run + jj]
                    m = v if v < m else m
                mins[g] = m
            bound = _kth_bound(mins, n_runs, k)
            empty = True
            for t in range(k):
                if hi[t] >= 0:
                    empty = False
                    break
            if empty:  # the k smallest of the values at or below the bound, by (value, column), as a max-heap
                m = 0
                for j in range(nb):
                    v = norms[j] + row[j]
                    if v <= bound:
                        vals[m] = v
                        cols[m] = base + j
                        m += 1
                _heap_of(vals, cols, m, hd, hi)
                continue
        thr = min(hd[0], bound)
        for j0 in range(0, nfull, _W):
            c = 0
            for jj in range(_W):
                c += (norms[j0 + jj] + row[j0 + jj]) <= thr
            if c > 0:
                for j in range(j0, j0 + _W):
                    v = norms[j] + row[j]
                    if v < hd[0] and v <= bound:
                        _heap_replace_top(hd, hi, v, base + j)
                        thr = min(hd[0], bound)
        for j in range(nfull, nb):
            v = norms[j] + row[j]
            if v < hd[0] and v <= bound:
                _heap_replace_top(hd, hi, v, base + j)
                thr = min(hd[0], bound)


@njit(nogil=True, cache=True)
def _scan_group(Qm, rows, probes, offsets, Xg, norms, heap_d, heap_i, qb, rb):  # pragma: no cover - compiled
    """The list scans of the queries ``rows`` (module doc), compiled: heaps read and written in place.

    Every query's nearest list is scanned in a first pass and its other probed lists in a
    second; in each pass the (query, list) pairs are grouped by list (a counting sort that
    keeps the queries' order), and a list's queries are scored in blocks of ``qb``
    gathered queries x ``rb`` list rows by one BLAS sgemm (numba ``np.dot``) and pushed by
    :func:`_scan_block_seeded`. The same blocks as the Python loop this replaced, without
    its per-block overhead and its gathering and scattering of heap rows: 10^4 queries at
    10^6 references took 0.23 s instead of 0.64 s with 4,000 lists (nprobe 16), and the
    same 0.38 s with 500 lists (nprobe 12), where the blocks are large.
    """
    nlist = offsets.shape[0] - 1
    nprobe = probes.shape[1]
    d = Qm.shape[1]
    n = rows.shape[0]
    longest = 0
    for lst in range(nlist):
        longest = max(longest, offsets[lst + 1] - offsets[lst])
    # the largest block a pass scores (fresh pages are faulted in on first use: qb x rb
    # is 8 MiB per call, where 10^4 queries x 2,000 lists need 2 MiB at most)
    buf = np.empty(0, dtype=np.float32)
    Qb_buf = np.empty(qb * d, dtype=np.float32)
    count = np.empty(nlist + 1, dtype=np.int64)
    for first, last in ((0, min(1, nprobe)), (1, nprobe)):
        width = last - first
        if width <= 0:
            continue
        count[:] = 0
        for a in range(n):
            for p in range(first, last):
                count[probes[rows[a], p] + 1] += 1
        most = 0
        for lst in range(nlist):
            most = max(most, count[lst + 1])
            count[lst + 1] += count[lst]
        if min(qb, most) * min(rb, longest) > buf.shape[0]:
            buf = np.empty(min(qb, most) * min(rb, longest), dtype=np.float32)
        start = count[:nlist].copy()
        owner = np.empty(n * width, dtype=np.int64)
        for a in range(n):
            for p in range(first, last):
                lst = probes[rows[a], p]
                owner[start[lst]] = rows[a]
                start[lst] += 1
        for lst in range(nlist):
            q0, q1 = count[lst], count[lst + 1]
            lo, hi = offsets[lst], offsets[lst + 1]
            if q0 == q1 or lo == hi:
                continue
            for qs in range(q0, q1, qb):
                q = owner[qs : min(qs + qb, q1)]
                nq = q.shape[0]
                Qb = Qb_buf[: nq * d].reshape(nq, d)
                for t in range(nq):
                    Qb[t] = Qm[q[t]]
                for rs in range(lo, hi, rb):
                    re = min(rs + rb, hi)
                    S = buf[: nq * (re - rs)].reshape(nq, re - rs)
                    np.dot(Qb, Xg[rs:re].T, S)
                    _scan_block_seeded(S, norms[rs:re], rs, heap_d, heap_i, q)


@njit(nogil=True, cache=True, fastmath={"nnan", "nsz", "reassoc"})
def _nearest_centroids(Q, Cg, Sg, rho, members, goff, out):  # pragma: no cover - compiled
    """``out[r]``: the ``out.shape[1]`` centroids nearest to query row r, by (float64 squared distance, index).

    The centroids are grouped: group g has centre ``Sg[g]`` and radius ``rho[g]`` (its
    farthest member's distance to the centre), and its members are the rows
    ``goff[g]:goff[g + 1]`` of ``Cg`` (float64), centroid indices ``members[...]`` of the
    same rows. No member of group g is nearer than ``||q - centre|| - rho[g]`` (triangle
    inequality), so the groups are visited in increasing order of that bound (the least
    unvisited one found by a scan: few groups are visited) and the visit stops at the first
    whose bound is past the current nprobe-th distance: the centroids that computing all of
    them would give (rounding of bounds and distances, ~1e-15 relative, is covered by a
    relative slack of 1e-9). Squares are summed over the dimensions in SIMD lanes
    (``reassoc``): each distance is the same wherever it is computed.
    """
    n, d = Q.shape
    G = Sg.shape[0]
    nprobe = out.shape[1]
    lb = np.empty(G)
    done = np.empty(G, dtype=np.bool_)
    best_d = np.empty(nprobe)
    best_i = np.empty(nprobe, dtype=np.int64)
    qd = np.empty(d)
    for r in range(n):
        for j in range(d):
            qd[j] = Q[r, j]
        for g in range(G):
            s = 0.0
            for j in range(d):
                u = qd[j] - Sg[g, j]
                s += u * u
            lb[g] = np.sqrt(s) - rho[g]
            done[g] = False
        m = 0
        while True:
            g, v = -1, np.inf
            for h in range(G):
                if not done[h] and lb[h] < v:
                    g, v = h, lb[h]
            if g < 0 or (m == nprobe and v > np.sqrt(best_d[m - 1]) * (1.0 + 1e-9) + 1e-12):
                break
            done[g] = True
            for t in range(goff[g], goff[g + 1]):
                s = 0.0
                for j in range(d):
                    u = qd[j] - Cg[t, j]
                    s += u * u
                c = members[t]
                if m == nprobe and (s > best_d[m - 1] or (s == best_d[m - 1] and c > best_i[m - 1])):
                    continue
                pos = m if m < nprobe else nprobe - 1
                while pos > 0 and (best_d[pos - 1] > s or (best_d[pos - 1] == s and best_i[pos - 1] > c)):
                    best_d[pos] = best_d[pos - 1]
                    best_i[pos] = best_i[pos - 1]
                    pos -= 1
                best_d[pos] = s
                best_i[pos] = c
                if m < nprobe:
                    m += 1
        for j in range(nprobe):
            out[r, j] = best_i[j]


def centroid_groups(centroids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Groups of the centroids for :func:`_nearest_centroids`: (the centroids in group order, the group centres,
    radii, members, offsets), float64.

    About ``sqrt(nlist)`` groups by faiss k-means of the centroids (seeded); any grouping
    gives the same probes, a tight one only visits fewer groups. Radii are the maxima of
    the members' distances to their centre.
    """
    nlist, dim = centroids.shape
    n_groups = max(1, min(nlist, int(round(math.sqrt(nlist)))))
    if n_groups > 1:
        km = faiss.Kmeans(dim, n_groups, niter=10, seed=seed, verbose=False, min_points_per_centroid=1)
        km.train(np.ascontiguousarray(centroids, dtype=np.float32))
        _, group = km.index.search(np.ascontiguousarray(centroids, dtype=np.float32), 1)
        group = group[:, 0].astype(np.int64)
    else:
        group = np.zeros(nlist, dtype=np.int64)
    members = np.argsort(group, kind="stable").astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=n_groups))]).astype(np.int64)
    C = centroids.astype(np.float64)
    centres = np.zeros((n_groups, dim))
    radii = np.zeros(n_groups)
    for g in range(n_groups):
        rows = members[offsets[g] : offsets[g + 1]]
        if len(rows):
            centres[g] = C[rows].mean(axis=0)
            radii[g] = np.sqrt(((C[rows] - centres[g]) ** 2).sum(axis=1)).max()
    return np.ascontiguousarray(C[members]), centres, radii, members, offsets


@njit(nogil=True, cache=True)
def _sorted_hits(heap_d, heap_i, ids, qn):  # pragma: no cover - compiled
    """Heaps (squared distances without ``||q||^2``, list positions) to the common output.

    Row by row: the max-heap ordered by (distance, position) is emptied from its root
    (heapsort, ascending), the positions become ids and a last insertion pass orders
    equal distances by id (the heap order already sorts the rest, so the pass is linear
    but for ties); then ``sqrt(max(d + qn, 0))`` in float32 and -1 / inf where a heap is
    short: the same values as ``np.lexsort`` + :func:`cellquery.index.base.finalize` of
    ``D + qn``, without their (n, k) temporaries.
    """
    n, k = heap_d.shape
    D = np.empty((n, k), dtype=np.float32)
    I = np.empty((n, k), dtype=np.int64)
    hd = np.empty(k, dtype=np.float32)
    hi = np.empty(k, dtype=np.int64)
    for r in range(n):
        hd[:] = heap_d[r]
        hi[:] = heap_i[r]
        d = D[r]
        i = I[r]
        for size in range(k, 0, -1):  # the root is the largest of the heap's first `size`
            d[size - 1] = hd[0]
            i[size - 1] = hi[0]
            if size > 1:  # the last entry moves to the root of the heap of the first size - 1
                _sift_down(hd, hi, hd[size - 1], hi[size - 1], size - 1)
        for j in range(k):
            i[j] = ids[i[j]] if i[j] >= 0 else np.int64(-1)
        for j in range(1, k):  # equal distances by id (-1 entries are inf and last)
            v, idx = d[j], i[j]
            pos = j
            while pos > 0 and d[pos - 1] == v and i[pos - 1] > idx:
                d[pos] = d[pos - 1]
                i[pos] = i[pos - 1]
                pos -= 1
            d[pos] = v
            i[pos] = idx
        for j in range(k):
            if i[j] < 0:
                d[j] = np.inf
            else:
                d[j] = np.sqrt(max(d[j] + qn[r], np.float32(0.0)))
    return D, I


def _row_slices(n: int, threads: int) -> list[slice]:
    """``range(n)`` cut into up to ``threads`` non-empty slices of near-equal size."""
    cuts = np.linspace(0, n, threads + 1).astype(np.int64)
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _hits_of_heaps(heap_d, heap_i, ids, qn, threads: int, out_rows: np.ndarray | None = None):
    """:func:`_sorted_hits` of every heap row on ``threads`` workers (row blocks); row r of the result is heap row r, or ``out_rows[r]``."""
    n, k = heap_d.shape
    D = np.empty((n, k), dtype=np.float32)
    I = np.empty((n, k), dtype=np.int64)

    def finish(rows: slice) -> None:
        d, i = _sorted_hits(heap_d[rows], heap_i[rows], ids, qn[rows])
        at = rows if out_rows is None else out_rows[rows]
        D[at], I[at] = d, i

    run_threads(finish, _row_slices(n, threads), threads)
    return D, I


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
    self_search : "rows" or "leaves", default "rows"
        How the workflow's index stage searches the reference against an unsharded index
        for its calibration (:func:`cellquery.index.sharded.search_shard`): as queries
        (``search``), or in leaves of the lists (:meth:`leaf_reference_search`, approximate:
        at 10^6 rows with the default lists 9.5 s instead of 19.1 s, local scales 0.44 % too
        large on average instead of 0.16 %).
    leaf_size, leaf_nprobe : int, default 256, 16
        The leaves of ``self_search: leaves``: rows per leaf, leaves scanned per row.
    """

    backend = "ivf_gemm"
    DEFAULTS = {
        "nlist": "auto", "nprobe": 8, "points_per_list": 50, "niter": 10, "n_total": None,
        "threads": None, "query_block": 512, "ref_block": 4096,
        "self_search": "rows", "leaf_size": 256, "leaf_nprobe": 16,
    }

    def __init__(self, dim: int, params: dict | None = None, seed: int = 0):
        super().__init__(dim, params, seed)
        p = self.params
        if p["nlist"] != "auto":
            check_int(p["nlist"], "index: ivf_gemm param 'nlist'", alternative="'auto'")
        for key in ("nprobe", "points_per_list", "niter", "query_block", "ref_block", "leaf_size", "leaf_nprobe"):
            _int(key, p[key])
        if p["self_search"] not in ("rows", "leaves"):
            raise InputError(f"index: ivf_gemm param 'self_search' must be rows or leaves, got {p['self_search']!r}")
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
        self._leaf_cache = None  # leaves of the rows before this merge
        self._offsets = np.concatenate([[0], np.cumsum(np.bincount(lists, minlength=len(self._centroids)))]).astype(np.int64)
        self._norms = np.einsum("ij,ij->i", self._X, self._X)
        self._pending = []

    # -- search -----------------------------------------------------------------------
    def search(self, Q: np.ndarray, k: int, batch_size: int = 10000) -> tuple[np.ndarray, np.ndarray]:
        check_int(batch_size, "index: batch_size")
        return super().search(Q, k, batch_size=max(int(batch_size), MIN_BATCH))

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        return self._scan(Q, k, int(p["nprobe"]), int(p["query_block"]), int(p["ref_block"]))

    def reference_search(self, k: int, nprobe: int | None = None, *, chunk: int = MIN_BATCH,
                         query_block: int = 256, ref_block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest reference rows of every reference row (itself included; row r is id r).

        The same search as ``search(X, k)`` of the reference X with ``nprobe`` lists per row
        (default: the index's ``nprobe``): every row probes its own ``nprobe`` nearest
        centroids. The rows are taken in list order, so the queries that probe their own
        list first are one contiguous block of the list-grouped vectors (no gathering);
        GEMM blocks of ``query_block x ref_block`` (1 MiB) stay in a core's L2 cache while
        the scan reads them. ``nprobe`` below the index's trades accuracy for time (a row's
        true neighbours in lists it does not probe are missed), which makes the scales and
        candidate lists of the calibration (:mod:`cellquery.index.calibration`,
        :mod:`cellquery.transfer.conformal`) approximate; ``nprobe >= nlist`` is exact.
        Unlike ``search``, a row whose probed lists hold fewer than k rows is searched
        again with twice the lists (until it has k hits or every list is scanned), so
        that no local scale is read from padding.
        """
        k = check_int(k, "index: k")
        nprobe = _int("nprobe", self.params["nprobe"] if nprobe is None else nprobe)
        if not self.is_trained:
            raise InputError("index: backend 'ivf_gemm' is not trained")
        self._group()
        D = np.empty((self.n, k), dtype=np.float32)
        I = np.empty((self.n, k), dtype=np.int64)
        qb, rb = _int("query_block", query_block), _int("ref_block", ref_block)
        for start in range(0, self.n, chunk):
            stop = min(start + chunk, self.n)
            d, i = self._scan(self._X[start:stop], k, nprobe, qb, rb)
            rows = self._ids[start:stop]
            D[rows], I[rows] = d, i
        short = np.flatnonzero(I[:, -1] < 0)  # rows whose lists hold fewer than k rows: twice the lists, and so on
        if short.size and k <= self.n and nprobe < len(self._centroids):
            D[short], I[short] = self._search_ids(short, k, 2 * nprobe, qb, rb)
        return D, I

    def _search_ids(self, ids: np.ndarray, k: int, nprobe: int, qb: int = 256, rb: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """The reference rows ``ids`` searched as queries with ``nprobe`` lists, and again with twice the lists while short of k hits."""
        position = np.argsort(self._ids)  # grouped position of every id
        probes = min(nprobe, len(self._centroids))
        D, I = self._scan(self._X[position[ids]], k, probes, qb, rb)
        while probes < len(self._centroids) and k <= self.n:
            short = np.flatnonzero(I[:, -1] < 0)
            if short.size == 0:
                break
            probes = min(2 * probes, len(self._centroids))
            D[short], I[short] = self._scan(self._X[position[ids[short]]], k, probes, qb, rb)
        return D, I

    def _leaves(self, leaf_size: int, nprobe: int, candidates: int | None):
        """Rows leaf by leaf (:mod:`cellquery.index.leaf_search`): (rows, ids, leaf offsets, centroids, candidate leaves, nprobe)."""
        leaf_size, nprobe = _int("leaf_size", leaf_size), _int("nprobe", nprobe)
        candidates = _int("candidates", 3 * nprobe if candidates is None else candidates)
        if not self.is_trained:
            raise InputError("index: backend 'ivf_gemm' is not trained")
        Xl, ids, leaf_off, centroids = self._split(leaf_size)
        cand = leaf_probes(centroids, max(candidates, nprobe), self._threads())
        return Xl, ids, leaf_off, centroids, cand, min(nprobe, cand.shape[1])

    def _split(self, leaf_size: int):
        """The rows leaf by leaf (rows, ids, leaf offsets, centroids), kept for the next call with the same ``leaf_size``.

        Kept until rows are added: a copy of the vectors (4 * dim bytes per row) and an id per row.
        """
        self._group()
        cached = getattr(self, "_leaf_cache", None)
        if cached is None or cached[0] != leaf_size:
            order, leaf_off, centroids = split_lists(self._X, self._offsets, leaf_size, seed=self.seed, threads=self._threads())
            self._leaf_cache = (leaf_size, np.ascontiguousarray(self._X[order]), self._ids[order], leaf_off, centroids)
        return self._leaf_cache[1:]

    def leaf_reference_search(self, k: int, *, leaf_size: int = 256, nprobe: int = 16,
                              candidates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest reference rows of every reference row, searched in leaves of the lists.

        Every list is split into leaves of about ``leaf_size`` rows and each row scans its
        ``nprobe`` nearest leaves (its own first) among its leaf's ``candidates`` nearest
        (default 3 * nprobe) (:mod:`cellquery.index.leaf_search`): approximate, an IVF of
        about ``n / leaf_size`` lists searched with ``nprobe``, much faster than
        :meth:`reference_search`. Output as :meth:`reference_search` (row r is id r,
        itself included); a row whose leaves hold fewer than k rows is searched again row
        by row with the index's ``nprobe`` doubled until it has k hits.
        """
        k = check_int(k, "index: k")
        Xl, ids, leaf_off, centroids, cand, nprobe = self._leaves(leaf_size, nprobe, candidates)
        heap_d, heap_i = leaf_heaps(Xl, leaf_off, centroids, cand, nprobe, k, self._threads())
        # rows by id (the sort: 3.8 s on one thread at 10^6 x 65)
        D, I = _hits_of_heaps(heap_d, heap_i, ids, np.einsum("ij,ij->i", Xl, Xl), self._threads(), out_rows=ids)
        del heap_d, heap_i
        short = np.flatnonzero(I[:, -1] < 0)
        if short.size and self.n > k:  # leaves too short: the row-by-row scan, with more lists where needed
            D[short], I[short] = self._search_ids(short, k, int(self.params["nprobe"]))
        return D, I

    def leaf_local_scales(self, k: int, *, leaf_size: int = 256, nprobe: int = 16, candidates: int | None = None) -> np.ndarray:
        """Every reference row's distance to its k-th nearest *other* row (row r is id r), searched in leaves.

        The local scales of :mod:`cellquery.index.calibration` from the same candidates as
        :meth:`leaf_reference_search`, without keeping any ids: per row only the
        (k + 1)-th smallest distance of its candidates (itself, at distance 0, is the
        first), which takes no heap. A row whose leaves hold at most k rows is searched
        by the index's row-by-row scan.
        """
        from cellquery.index.calibration import scales_from_hits

        k = check_int(k, "index: k")
        Xl, ids, leaf_off, centroids, cand, nprobe = self._leaves(leaf_size, nprobe, candidates)
        scale = np.empty(self.n, dtype=np.float32)
        scale[ids] = leaf_kth_distances(Xl, leaf_off, centroids, cand, nprobe, k, self._threads())
        short = np.flatnonzero(~np.isfinite(scale))
        if short.size and self.n > k:
            D, I = self._search_ids(short, k + 1, int(self.params["nprobe"]))
            scale[short] = scales_from_hits(D, I, short, k)
        return scale

    def probes(self, Q: np.ndarray, nprobe: int) -> np.ndarray:
        """Each query's ``nprobe`` nearest lists, by (float64 centroid distance, list), nearest first.

        Searched through groups of centroids (:func:`centroid_groups`, kept until the next
        training) whose radii bound their members' distances (:func:`_nearest_centroids`):
        exact, where the GEMM of every query against every centroid computed 12 x as many
        distances (at 10^6 references, 2,000 lists, 10^4 queries: 45 group centres and about
        121 members per query instead of 2,000 centroids).
        """
        nprobe = min(int(nprobe), len(self._centroids))
        groups = getattr(self, "_probe_groups", None)
        if groups is None or groups[0] is not self._centroids:
            groups = (self._centroids, *centroid_groups(self._centroids, self.seed))
            self._probe_groups = groups
        Cg, centres, radii, members, offsets = groups[1:]
        Q = np.ascontiguousarray(Q, dtype=np.float32)
        out = np.empty((Q.shape[0], nprobe), dtype=np.int64)
        if nprobe and Q.shape[0]:
            threads = self._threads()
            run_threads(lambda rows: _nearest_centroids(Q[rows], Cg, centres, radii, members, offsets, out[rows]),
                        _row_slices(Q.shape[0], threads), threads)
        return out

    def list_order(self) -> np.ndarray:
        """The reference row ids in list order (rows of one list together): an order that keeps near rows near."""
        self._group()
        return self._ids.copy()

    def _scan(self, Q: np.ndarray, k: int, nprobe: int, qb: int, rb: int) -> tuple[np.ndarray, np.ndarray]:
        """Heaps of the k best of every query over its ``nprobe`` nearest lists (module doc)."""
        self._group()
        nlist = len(self._centroids)
        nprobe = min(nprobe, nlist)
        threads = self._threads()
        probes = self.probes(Q, nprobe)
        n_q = Q.shape[0]
        heap_d = np.full((n_q, k), np.inf, dtype=np.float32)
        heap_i = np.full((n_q, k), -1, dtype=np.int64)  # positions in list order
        Qm = np.ascontiguousarray(-2.0 * Q, dtype=np.float32)
        offsets, Xg, norms = self._offsets, self._X, self._norms

        def run(rows: np.ndarray) -> None:
            _scan_group(Qm, rows, probes, offsets, Xg, norms, heap_d, heap_i, qb, rb)

        run_threads(run, [g for g in np.array_split(np.arange(n_q), threads) if len(g)], threads)
        # the sort on the same threads (10^4 x 30: 14 ms on one)
        return _hits_of_heaps(heap_d, heap_i, self._ids, np.einsum("ij,ij->i", Q, Q), threads)

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
