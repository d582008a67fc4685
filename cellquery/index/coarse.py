"""Coarse quantisers for atlas-sized IVF indexes: two-level k-means and two-level list assignment.

An IVF index of ``nlist`` lists (seed 000: 16,384 lists for 4 x 10^7 cells) pays
``nlist`` distances per row twice in its build with a flat quantiser: in the k-means
of its centroids and when every row is assigned to its nearest centroid. Measured at
10^6 rows, 32-d, 16,384 lists, 2 cores: the assignment took 8.6 s with faiss's flat
quantiser and 8.4 s with its HNSW32 graph (efSearch 16, 98.4 % of rows on their nearest
list), i.e. about 340 s for 4 x 10^7 rows, and the k-means on 20 rows per list (10
iterations) 35 s.

Here both go through a first level of ``n_coarse`` (about ``sqrt(nlist)``) groups:

* :func:`two_level_kmeans`: k-means of ``n_coarse`` groups on the training rows, then,
  in each group, k-means of as many centroids as the group's share of the rows (at least
  one), ``nlist`` in all (2.9 s instead of 35 s on the rows above). faiss ships the same
  idea (``faiss.contrib.clustering.two_level_clustering``), which failed here on a group
  that was given no centroid; it is written again with every group of rows given one
  while ``nlist`` allows (:func:`allocate`).
* :class:`TwoLevelAssigner`: the centroids grouped by their nearest coarse centroid; a
  row's ``nprobe`` nearest groups are found by the exact search of the coarse centroids
  (:func:`cellquery.index.gemm_backend.knn_gemm`),
  and its nearest centroid among those groups' centroids with one GEMM per group and
  a compiled arg-min. With ``nprobe >= n_coarse`` every centroid is compared and the
  result is the exact nearest centroid (ties to the lower id); with fewer, a row whose
  nearest centroid lies in a group it did not probe gets its best centroid in the
  probed ones (its list is near-nearest, as with faiss's HNSW quantiser).

Searching stays the index's own (a query's ``nprobe`` nearest lists from the flat
quantiser: 10^4 queries x 16,384 centroids is one small GEMM).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cellquery.errors import InputError
from cellquery.index.gemm_backend import knn_gemm, run_threads

BLOCK = 65_536  # rows per worker call of the assignment
_FINE_BLOCK = 512  # rows per GEMM inside one group


def _kmeans(X: np.ndarray, k: int, niter: int, seed: int, max_points_per_centroid: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(X.shape[1], int(k), niter=int(niter), seed=int(seed), verbose=False,
                      max_points_per_centroid=int(max_points_per_centroid), min_points_per_centroid=1)
    km.train(np.ascontiguousarray(X, dtype=np.float32))
    return np.asarray(km.centroids, dtype=np.float32)


def _groups(X: np.ndarray, n_groups: int, niter: int, seed: int, max_points_per_centroid: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means of ``X`` into ``n_groups`` groups: (centroids, each row's nearest centroid)."""
    import faiss

    centroids = _kmeans(X, n_groups, niter, seed, max_points_per_centroid)
    flat = faiss.IndexFlatL2(X.shape[1])
    flat.add(centroids)
    return centroids, flat.assign(np.ascontiguousarray(X, dtype=np.float32), 1)[:, 0]


def default_coarse(nlist: int) -> int:
    """Groups of the first level: about ``sqrt(nlist)``, at least 1."""
    return max(1, int(round(np.sqrt(nlist))))


def two_level_kmeans(X: np.ndarray, nlist: int, n_coarse: int | None = None, niter: int = 10, seed: int = 0,
                     max_points_per_centroid: int = 256) -> np.ndarray:
    """``nlist`` centroids (float32, ``(nlist, d)``) by k-means within the k-means groups of ``X``.

    Group g of the ``n_coarse`` groups (default :func:`default_coarse`) gets
    ``max(1, floor(nlist * n_g / n))`` centroids, then one more at a time to the group with
    the most rows per centroid until there are ``nlist`` (:func:`allocate`); a group with
    no more rows than centroids keeps its rows as centroids. Seeded: the same
    ``X`` and ``seed`` give the same centroids.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    nlist = int(nlist)
    if nlist > n:
        raise InputError(f"index: two-level k-means of {nlist} centroids needs >= {nlist} training rows, got {n}")
    n_coarse = min(int(n_coarse or default_coarse(nlist)), nlist)
    if n_coarse <= 1:
        return _kmeans(X, nlist, niter, seed, max_points_per_centroid)
    _, group = _groups(X, n_coarse, niter, seed, max_points_per_centroid)
    alloc = allocate(np.bincount(group, minlength=n_coarse), nlist)
    parts = []
    for g in range(n_coarse):
        if alloc[g] == 0:
            continue
        rows = X[group == g]
        if alloc[g] >= len(rows):
            parts.append(rows[: alloc[g]])
        else:
            parts.append(_kmeans(rows, alloc[g], niter, seed + 1 + g, max_points_per_centroid))
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def allocate(sizes: np.ndarray, nlist: int) -> np.ndarray:
    """Centroids per group (:func:`two_level_kmeans`): ``max(1, floor(nlist n_g / n))``, at most
    ``n_g``; then one more at a time to the group with the most rows per centroid that has
    room, or one fewer at a time from the group with the fewest rows per centroid, until they sum to ``nlist``
    (``nlist <= sum(sizes)``)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    alloc = np.minimum(np.maximum(1, np.floor(nlist * sizes / sizes.sum())).astype(np.int64), sizes)
    while alloc.sum() < nlist:
        room = np.where(alloc < sizes, sizes / np.maximum(alloc, 1), -1.0)
        alloc[int(np.argmax(room))] += 1
    while alloc.sum() > nlist:
        crowded = np.where(alloc > 0, sizes / np.maximum(alloc, 1), np.inf)
        alloc[int(np.argmin(crowded))] -= 1
    return alloc


@njit(nogil=True, cache=True, fastmath={"nnan", "nsz"})
def _nearest_in_groups(X, probes, Cs, cn, off, ids, best_d, best_i):  # pragma: no cover - compiled
    """Each row's nearest centroid (its id, ``ids`` of its position in ``Cs``) among the groups it probes; in place.

    The (row, group) pairs are grouped by group (a counting sort); a group's rows are
    gathered transposed in blocks, scored against its centroids ``Cs[off[g]:off[g+1]]``
    by one sgemm (``C_g X_b^T``, numba ``np.dot``), and the arg-min over the centroids runs
    with the rows as the inner, vectorised loop. Ties keep the lower id.
    """
    n, p = probes.shape
    n1 = off.shape[0] - 1
    d = X.shape[1]
    count = np.zeros(n1 + 1, np.int64)
    for r in range(n):
        for s in range(p):
            count[probes[r, s] + 1] += 1
    for g in range(n1):
        count[g + 1] += count[g]
    pos = count[:n1].copy()
    rows = np.empty(n * p, np.int64)
    for r in range(n):
        for s in range(p):
            g = probes[r, s]
            rows[pos[g]] = r
            pos[g] += 1
    for r in range(n):
        best_d[r] = np.inf
        best_i[r] = -1
    B = _FINE_BLOCK
    xbT = np.zeros((d, B), np.float32)
    widest = 0
    for g in range(n1):
        widest = max(widest, off[g + 1] - off[g])
    S = np.empty(widest * B, np.float32)
    bd = np.empty(B, np.float32)
    bi = np.empty(B, np.int64)
    for g in range(n1):
        lo, hi = off[g], off[g + 1]
        if hi == lo or count[g] == count[g + 1]:
            continue
        Sg = S[: (hi - lo) * B].reshape(hi - lo, B)
        for b0 in range(count[g], count[g + 1], B):
            m = min(B, count[g + 1] - b0)
            for t in range(m):
                r = rows[b0 + t]
                for q in range(d):
                    xbT[q, t] = X[r, q]
            np.dot(Cs[lo:hi], xbT, Sg)
            for t in range(m):
                bd[t] = np.inf
                bi[t] = 0
            for j in range(hi - lo):
                cj = cn[lo + j]
                Sj = Sg[j]
                for t in range(m):
                    v = cj - 2 * Sj[t]
                    lt = v < bd[t]
                    bd[t] = v if lt else bd[t]
                    bi[t] = j if lt else bi[t]
            for t in range(m):
                r = rows[b0 + t]
                c = ids[lo + bi[t]]
                if bd[t] < best_d[r] or (bd[t] == best_d[r] and c < best_i[r]):
                    best_d[r] = bd[t]
                    best_i[r] = c


class TwoLevelAssigner:
    """Nearest-centroid assignment through ``n_coarse`` groups of the centroids (module doc).

    Parameters
    ----------
    centroids
        ``(nlist, d)`` float32, the quantiser's centroids; :meth:`assign` returns row
        numbers into them.
    nprobe
        Groups searched per row (clipped to ``n_coarse``).
    n_coarse
        Groups; default :func:`default_coarse` of ``nlist``. The groups are a seeded
        k-means of the centroids themselves.
    """

    def __init__(self, centroids: np.ndarray, nprobe: int = 4, n_coarse: int | None = None, seed: int = 0,
                 niter: int = 20):
        C = np.ascontiguousarray(centroids, dtype=np.float32)
        nlist = C.shape[0]
        if nlist == 0:
            raise InputError("index: two-level assignment needs centroids, got none")
        n_coarse = min(int(n_coarse or default_coarse(nlist)), nlist)
        self.nprobe = max(1, min(int(nprobe), n_coarse))
        if n_coarse > 1:
            coarse, group = _groups(C, n_coarse, niter, seed, max_points_per_centroid=max(256, nlist))
        else:
            coarse, group = C.mean(axis=0, keepdims=True), np.zeros(nlist, np.int64)
        self.order = np.argsort(group, kind="stable").astype(np.int64)  # centroid ids, grouped
        self.offsets = np.searchsorted(group[self.order], np.arange(len(coarse) + 1)).astype(np.int64)
        self.grouped = np.ascontiguousarray(C[self.order])
        self.grouped_norms = np.einsum("ij,ij->i", self.grouped, self.grouped).astype(np.float32)
        self.coarse = np.ascontiguousarray(coarse, dtype=np.float32)

    def _assign_block(self, X: np.ndarray, out: np.ndarray) -> None:
        # each row's nprobe nearest groups: the exact search of the coarse centroids (ties: lower group)
        _, probes = knn_gemm(X, [self.coarse], self.nprobe, threads=1)
        best_d = np.empty(X.shape[0], np.float32)
        best_i = np.empty(X.shape[0], np.int64)
        _nearest_in_groups(X, probes, self.grouped, self.grouped_norms, self.offsets, self.order, best_d, best_i)
        out[:] = best_i

    def assign(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """The list (centroid row) of every row of ``X``: int64 ``(n,)``; ``threads`` workers take row blocks."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        out = np.empty(X.shape[0], np.int64)
        starts = range(0, X.shape[0], BLOCK)
        run_threads(lambda s: self._assign_block(X[s : s + BLOCK], out[s : s + BLOCK]), starts, max(1, int(threads)))
        return out
