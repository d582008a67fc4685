"""The reference's own k nearest rows, searched in leaves of the index's lists (the calibration's self-search).

:meth:`cellquery.index.ivf_gemm_backend.IvfGemmIndex.reference_search` treats every
reference row as a query of the index: it finds the row's ``nprobe`` nearest lists,
gathers the rows that probe each list and scans the list for them. At 10^6 rows with the
one-shot index (500 lists of ~2,000 rows, nprobe 12) that is 24,000 candidates per row
and took 52 s on 2 cores, for a neighbourhood of 31 (local scales) or 65 rows (conformal
candidates).

Here the rows of every list are split into *leaves* of about ``leaf_size`` rows (k-means
inside the list, :func:`split_lists`), an IVF of ~n / leaf_size small lists whose rows
are already grouped. Every row scans its ``nprobe`` nearest leaves by centroid: its own
leaf and the nearest ``nprobe - 1`` among its leaf's ``candidates`` nearest leaves (the
candidates are shared by the leaf's rows, so a row's probes cost ``candidates``
distances, not ``n / leaf_size``). The rows of a leaf that probe the same leaf are
gathered into one GEMM block, so every candidate distance is computed once, by BLAS
sgemm called from compiled code (numba ``np.dot``), and each row then keeps its k
smallest candidates without pushing them one by one into a heap (:func:`_collect`).
Choosing leaves per row and not per leaf matters: per leaf (every row of a leaf scanning
the leaf's 16 nearest), the local scales at 10^6 rows erred by 1.3 % on average against
0.4 % per row, for the same 4,000 candidates.

A row's neighbours in leaves it does not probe are missed, so its local scale can only
come out too large; :func:`cellquery.bench.transfer.scale_error` measures that against
exact scales, and probing every leaf is exact. Written here because faiss builds no k-NN
graph of an index's own rows (its IVF search takes every row as an independent query,
as ``reference_search`` does).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cellquery.index.gemm_backend import _W, _heap_replace_top, _sift_down, knn_gemm, run_threads


@njit(nogil=True, cache=True)
def _kmeans_lists(X, offsets, first, last, leaf_size, init, niter, order, leaf_of, centres):  # pragma: no cover - compiled
    """Lists ``first:last``: Lloyd's k-means of each list's rows into m = ceil(n / leaf_size) leaves.

    ``init[offsets[l]:][:m]`` holds the list's seeded initial centroid rows (positions in
    the list); ``niter`` iterations, then a last assignment (an emptied leaf keeps its
    centroid). Writes every row's leaf (0-based within its list) to ``leaf_of``, the
    list's positions ordered by leaf (ascending within a leaf) to ``order``, and the m
    centroids to ``centres[offsets[l]:][:m]``. Written here because faiss's ``Kmeans`` is
    one Python call per list (2.4 ms each: 1.2 s for the 500 lists of 10^6 rows, against
    0.44 s for this on 2 threads) and has no batched form.
    """
    d = X.shape[1]
    for lst in range(first, last):
        lo, hi = offsets[lst], offsets[lst + 1]
        n = hi - lo
        m = (n + leaf_size - 1) // leaf_size
        if n == 0:
            continue
        C = centres[lo : lo + m]
        for c in range(m):
            C[c] = X[lo + init[lo + c]]
        sums = np.zeros((m, d), dtype=np.float64)
        counts = np.zeros(m, dtype=np.int64)
        cn = np.empty(m, dtype=np.float32)
        S = np.empty((n, m), dtype=np.float32)
        for it in range(niter + 1):
            for c in range(m):  # assign: argmin over c of |c|^2 - 2 x.c (one GEMM)
                cn[c] = np.dot(C[c], C[c])
            np.dot(X[lo:hi], C.T, S)
            for r in range(n):
                best, best_c = np.inf, 0
                for c in range(m):
                    v = cn[c] - 2.0 * S[r, c]
                    if v < best:
                        best, best_c = v, c
                leaf_of[lo + r] = best_c
            if it == niter:
                break
            sums[:] = 0.0
            counts[:] = 0
            for r in range(lo, hi):  # update; an empty leaf keeps its centroid
                c = leaf_of[r]
                counts[c] += 1
                for j in range(d):
                    sums[c, j] += X[r, j]
            for c in range(m):
                if counts[c] > 0:
                    for j in range(d):
                        C[c, j] = sums[c, j] / counts[c]
        counts[:] = 0
        for r in range(lo, hi):
            counts[leaf_of[r]] += 1
        start = np.empty(m, dtype=np.int64)
        acc = lo
        for c in range(m):
            start[c] = acc
            acc += counts[c]
        for r in range(lo, hi):  # positions by leaf, ascending within a leaf
            c = leaf_of[r]
            order[start[c]] = r
            start[c] += 1


def split_lists(X: np.ndarray, offsets: np.ndarray, leaf_size: int, seed: int = 0, niter: int = 10,
                threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leaves of every list: (``order``, ``leaf_offsets``, ``centroids``).

    ``X`` holds the rows grouped by list (list l is ``offsets[l]:offsets[l + 1]``). A list
    of n rows becomes ``ceil(n / leaf_size)`` leaves by ``niter`` Lloyd iterations of
    k-means of its rows (:func:`_kmeans_lists`, initial centroids a seeded draw of the
    list's rows); ``order`` gives the list-order positions leaf by leaf (the rows of one
    list stay inside that list's range, in ascending position within a leaf), and leaf j
    holds ``order[leaf_offsets[j]:leaf_offsets[j + 1]]`` around ``centroids[j]``.
    Empty leaves are dropped.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_list = len(offsets) - 1
    sizes = np.diff(offsets)
    m = -(-sizes // leaf_size)
    rng = np.random.default_rng(seed)
    init = np.zeros(len(X), dtype=np.int64)
    for lst in np.flatnonzero(m > 0):
        init[offsets[lst] : offsets[lst] + m[lst]] = rng.choice(sizes[lst], size=m[lst], replace=False)
    order = np.empty(len(X), dtype=np.int64)
    leaf_of = np.empty(len(X), dtype=np.int64)
    centres = np.zeros_like(X)
    cuts = np.unique(np.concatenate([[0], np.searchsorted(offsets, np.linspace(0, len(X), threads + 1)[1:-1]), [n_list]]))
    parts = [(int(cuts[i]), int(cuts[i + 1])) for i in range(len(cuts) - 1)]

    def run(part):
        _kmeans_lists(X, offsets, part[0], part[1], int(leaf_size), init, int(niter), order, leaf_of, centres)

    run_threads(run, parts, threads)
    # leaves in list order; the j-th leaf of list l is at slot offsets[l] + j of centres
    leaf_counts = np.zeros(int(m.sum()), dtype=np.int64)
    first_leaf = np.concatenate([[0], np.cumsum(m)])
    list_of_row = np.repeat(np.arange(n_list), sizes)
    np.add.at(leaf_counts, first_leaf[list_of_row] + leaf_of, 1)
    slots = np.concatenate([offsets[lst] + np.arange(m[lst]) for lst in range(n_list)]) if n_list else np.zeros(0, np.int64)
    keep = leaf_counts > 0
    leaf_off = np.concatenate([[0], np.cumsum(leaf_counts[keep])]).astype(np.int64)
    return order, leaf_off, np.ascontiguousarray(centres[slots[keep]])


def leaf_probes(centroids: np.ndarray, probes: int, threads: int) -> np.ndarray:
    """Every leaf's ``probes`` nearest leaves by centroid distance, the leaf itself first (a row's candidate leaves)."""
    n = len(centroids)
    probes = min(probes, n)
    _, P = knn_gemm(centroids, [centroids], probes, threads=threads)
    own = np.arange(n)
    missing = ~(P == own[:, None]).any(axis=1)  # duplicated centroids: the leaf itself may fall off
    P[missing, -1] = own[missing]
    first = np.argsort(P != own[:, None], axis=1, kind="stable")  # itself first, the rest in distance order
    return np.ascontiguousarray(np.take_along_axis(P, first, axis=1))


_BISECT = 10  # bisection steps toward the k-th smallest group minimum


@njit(inline="always")
def _kth_smallest(a, n, kth):  # pragma: no cover - compiled
    """The ``kth`` smallest (0-based) of ``a[:n]``, by quickselect in place (numba's np.partition copies: 4.5 us for 256 values)."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2  # median of three as pivot
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            break
    return a[kth]


@njit(inline="always")
def _kth_bound(mins, n, k):  # pragma: no cover - compiled
    """A value at or above the k-th smallest of ``mins[:n]`` (k >= 1); inf when fewer than k are finite.

    ``_BISECT`` bisection steps between the smallest and largest finite value, each
    counting the values at or below the midpoint (a vectorised loop): at least k values
    stay at or below the upper end. A selection (quickselect) finds the k-th smallest
    exactly but its branches mispredict: for the 125 run minima of each of 10^4 queries'
    first lists it took 25 ms on one thread, these counts 11 ms.
    """
    lo = np.float32(np.inf)
    hi = np.float32(-np.inf)
    finite = 0
    for g in range(n):
        v = mins[g]
        if v < np.inf:
            finite += 1
            lo = min(lo, v)
            hi = max(hi, v)
    if finite < k:
        return np.float32(np.inf)
    for _ in range(_BISECT):
        mid = np.float32(lo + (hi - lo) * np.float32(0.5))
        if not (lo < mid < hi):
            break
        c = 0
        for g in range(n):
            c += mins[g] <= mid
        if c >= k:
            hi = mid
        else:
            lo = mid
    return hi


@njit(inline="always")
def _collect(norms, buf, seg_start, seg_len, seg_base, n_seg, k, mins, vals, cols):  # pragma: no cover - compiled
    """One row's candidates at or below a bound of their k-th smallest: ``m`` of them into vals/cols; returns m.

    The row's candidates are ``n_seg`` segments: segment p is ``buf[seg_start[p]:][:seg_len[p]]``
    plus ``norms[seg_base[p]:]`` (squared distances without the row's own norm), at
    positions ``seg_base[p] + j``. They are dealt into ``len(mins)`` groups (a multiple of
    ``_W``; segment p folds into the ``_W`` groups at p * _W: a vertical minimum); k groups
    have a minimum at or below the k-th smallest group minimum, so at least k candidates
    reach it and none above it is among the k smallest. That minimum is bracketed by
    ``_BISECT`` bisection steps with counts (the bound only needs to be at or above it; a
    looser one only collects a few more candidates) instead of a selection whose branches
    mispredict; then runs of ``_W`` candidates are screened by a count and only runs that
    hold one are read again. The loops run over fixed-length slices, which is what lets
    numba/LLVM vectorise them (indexing the buffer with a computed offset instead measured
    7-16x slower per candidate).
    """
    G = mins.shape[0]
    mins[:] = np.inf
    for p in range(n_seg):
        nb = seg_len[p]
        row = buf[seg_start[p] : seg_start[p] + nb]
        nn = norms[seg_base[p] : seg_base[p] + nb]
        lane = mins[(p * _W) % G : (p * _W) % G + _W]
        full = nb - nb % _W
        for j0 in range(0, full, _W):
            a = row[j0 : j0 + _W]
            c = nn[j0 : j0 + _W]
            for g in range(_W):
                v = c[g] + a[g]
                if v < lane[g]:
                    lane[g] = v
        if full < nb and nb >= _W:  # the tail: the last _W values, those before `full` masked (each value in one group)
            a = row[nb - _W : nb]
            c = nn[nb - _W : nb]
            skip = _W - (nb - full)
            for g in range(_W):
                v = c[g] + a[g] if g >= skip else np.float32(np.inf)
                if v < lane[g]:
                    lane[g] = v
        elif full < nb:
            for j in range(nb):
                v = nn[j] + row[j]
                if v < lane[j]:
                    lane[j] = v
    bound = _kth_bound(mins, G, k)
    m = 0
    for p in range(n_seg):
        nb = seg_len[p]
        base = seg_base[p]
        row = buf[seg_start[p] : seg_start[p] + nb]
        nn = norms[base : base + nb]
        full = nb - nb % _W
        for j0 in range(0, full, _W):
            a = row[j0 : j0 + _W]
            c = nn[j0 : j0 + _W]
            n_in = 0
            for jj in range(_W):
                n_in += (c[jj] + a[jj]) <= bound
            if n_in > 0:
                for jj in range(_W):
                    v = c[jj] + a[jj]
                    if v <= bound:
                        vals[m] = v
                        cols[m] = base + j0 + jj
                        m += 1
        if full < nb:
            n_in = 0
            if nb >= _W:  # screen the tail as the last _W values, collect only those past `full`
                a = row[nb - _W : nb]
                c = nn[nb - _W : nb]
                for jj in range(_W):
                    n_in += (c[jj] + a[jj]) <= bound
            if n_in > 0 or nb < _W:
                for j in range(full, nb):
                    v = nn[j] + row[j]
                    if v <= bound:
                        vals[m] = v
                        cols[m] = base + j
                        m += 1
    return m


@njit(inline="always")
def _heap_of(vals, cols, m, hd, hi):  # pragma: no cover - compiled
    """The k = len(hd) smallest of ``vals[:m]`` by (value, column) as a max-heap (padded with inf / -1)."""
    k = hd.shape[0]
    first_k = min(m, k)
    for t in range(first_k):
        hd[t] = vals[t]
        hi[t] = cols[t]
    for t in range(first_k, k):
        hd[t] = np.inf
        hi[t] = -1
    for t in range(k // 2 - 1, -1, -1):  # heapify (Floyd)
        _sift_down(hd, hi, hd[t], hi[t], k, t)
    for t in range(first_k, m):
        v = vals[t]
        if v < hd[0] or (v == hd[0] and cols[t] < hi[0]):
            _heap_replace_top(hd, hi, v, cols[t])


# fastmath as in gemm_backend._scan_block: a value is one float32 add, computed alike in both passes
@njit(nogil=True, cache=True, fastmath={"nnan", "nsz", "reassoc"})
def _leaf_rows_scan(Xl, Qm, norms, leaf_off, centroids, cand, nprobe, first, last, k, kth_out, heap_d, heap_i, max_leaf):  # pragma: no cover - compiled
    """Leaves ``first:last``: every row's k best among the rows of its ``nprobe`` nearest leaves.

    A row's leaves are its own and the ``nprobe - 1`` nearest to it (by centroid) among
    the other candidate leaves of its leaf (``cand[s]``, the leaf itself first). Rows of
    the leaf that probe the same leaf are gathered into one block and scored against that
    leaf's rows by one GEMM, so every candidate distance is computed once; each row then
    keeps its k smallest (:func:`_collect`): as max-heaps ordered by (distance, position)
    when ``heap_d`` has k columns, else only its k-th smallest value in ``kth_out``.
    """
    d = Xl.shape[1]
    n_cand = cand.shape[1]
    want_heaps = heap_d.shape[1] == k
    cnorm = np.empty(n_cand, dtype=np.float32)
    Cc = np.empty((n_cand, d), dtype=np.float32)
    Dc = np.empty(max_leaf * n_cand, dtype=np.float32)
    best_d = np.empty(nprobe, dtype=np.float32)
    row_slot = np.empty((max_leaf, nprobe), dtype=np.int64)
    count = np.empty(n_cand, dtype=np.int64)
    block_start = np.empty(n_cand + 1, dtype=np.int64)
    members = np.empty(max_leaf * nprobe, dtype=np.int64)
    fill = np.empty(n_cand, dtype=np.int64)
    Qg = np.empty(max_leaf * d, dtype=np.float32)
    buf = np.empty(max_leaf * nprobe * max_leaf, dtype=np.float32)
    seg_start = np.empty((max_leaf, nprobe), dtype=np.int64)
    seg_len = np.empty(nprobe, dtype=np.int64)
    seg_base = np.empty(nprobe, dtype=np.int64)
    mins = np.empty(_W * -(-4 * k // _W), dtype=np.float32)
    vals = np.empty(nprobe * max_leaf + 1, dtype=np.float32)
    cols = np.empty(nprobe * max_leaf + 1, dtype=np.int64)
    for s in range(first, last):
        lo, hi = leaf_off[s], leaf_off[s + 1]
        nr = hi - lo
        if nr == 0:
            continue
        # 1. each row's nprobe leaves: slot 0 (its own) and the nearest nprobe - 1 of the others
        for c in range(n_cand):
            Cc[c] = centroids[cand[s, c]]
            cnorm[c] = np.dot(Cc[c], Cc[c])
        D = Dc[: nr * n_cand].reshape(nr, n_cand)
        np.dot(Qm[lo:hi], Cc.T, D)
        for r in range(nr):
            row_slot[r, 0] = 0
            filled = 0
            for c in range(1, n_cand if nprobe > 1 else 1):
                v = D[r, c] + cnorm[c]
                if filled < nprobe - 1:  # insertion into the sorted best nprobe - 1
                    pos = filled
                    filled += 1
                elif v < best_d[nprobe - 2]:
                    pos = nprobe - 2
                else:
                    continue
                while pos > 0 and best_d[pos - 1] > v:
                    best_d[pos] = best_d[pos - 1]
                    row_slot[r, pos + 1] = row_slot[r, pos]
                    pos -= 1
                best_d[pos] = v
                row_slot[r, pos + 1] = c
        n_probe_rows = min(nprobe, n_cand)
        # 2. rows grouped by probed slot
        count[:] = 0
        for r in range(nr):
            for p in range(n_probe_rows):
                count[row_slot[r, p]] += 1
        block_start[0] = 0
        for c in range(n_cand):
            block_start[c + 1] = block_start[c] + count[c]
            fill[c] = block_start[c]
        for r in range(nr):
            for p in range(n_probe_rows):
                c = row_slot[r, p]
                members[fill[c]] = r
                fill[c] += 1
        # 3. one GEMM per probed slot: its rows (gathered) against the slot's leaf
        pos = 0
        for c in range(n_cand):
            cnt = count[c]
            if cnt == 0:
                continue
            t = cand[s, c]
            nb = leaf_off[t + 1] - leaf_off[t]
            G = Qg[: cnt * d].reshape(cnt, d)
            for e in range(cnt):
                G[e] = Qm[lo + members[block_start[c] + e]]
            S = buf[pos : pos + cnt * nb].reshape(cnt, nb)
            np.dot(G, Xl[leaf_off[t] : leaf_off[t + 1]].T, S)
            for e in range(cnt):
                r = members[block_start[c] + e]
                for p in range(n_probe_rows):
                    if row_slot[r, p] == c:
                        seg_start[r, p] = pos + e * nb
            pos += cnt * nb
        # 4. each row's k smallest of its segments
        for r in range(nr):
            for p in range(n_probe_rows):
                t = cand[s, row_slot[r, p]]
                seg_base[p] = leaf_off[t]
                seg_len[p] = leaf_off[t + 1] - leaf_off[t]
            m = _collect(norms, buf, seg_start[r], seg_len, seg_base, n_probe_rows, k, mins, vals, cols)
            if not want_heaps:
                kth_out[lo + r] = _kth_smallest(vals, m, k - 1) if m >= k else np.inf
                continue
            _heap_of(vals, cols, m, heap_d[lo + r], heap_i[lo + r])


def _run_leaves(Xl: np.ndarray, leaf_off: np.ndarray, centroids: np.ndarray, cand: np.ndarray, nprobe: int, k: int,
                threads: int, kth_out: np.ndarray, heap_d: np.ndarray, heap_i: np.ndarray) -> None:
    """:func:`_leaf_rows_scan` over all leaves; worker threads take contiguous runs of leaves with about equal numbers of rows."""
    n = len(Xl)
    Qm = np.ascontiguousarray(-2.0 * Xl, dtype=np.float32)
    norms = np.einsum("ij,ij->i", Xl, Xl)
    max_leaf = int(np.max(np.diff(leaf_off))) if len(leaf_off) > 1 else 1
    cuts = np.searchsorted(leaf_off, np.linspace(0, n, threads + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], cuts, [len(leaf_off) - 1]]))
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)

    def run(part: int) -> None:
        _leaf_rows_scan(Xl, Qm, norms, leaf_off, centroids, cand, nprobe, int(bounds[part]), int(bounds[part + 1]),
                        k, kth_out, heap_d, heap_i, max_leaf)

    run_threads(run, range(len(bounds) - 1), threads)


def leaf_heaps(Xl, leaf_off, centroids, cand, nprobe: int, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Max-heaps of every row's k best (squared distance without its own norm, position in ``Xl``).

    ``Xl`` holds the rows leaf by leaf (leaf j is ``leaf_off[j]:leaf_off[j + 1]``, centroid
    ``centroids[j]``), ``cand`` every leaf's candidate leaves (:func:`leaf_probes`), of
    which each row scans ``nprobe``.
    """
    heap_d = np.empty((len(Xl), k), dtype=np.float32)  # every row's heap is written whole (padded where short)
    heap_i = np.empty((len(Xl), k), dtype=np.int64)
    _run_leaves(Xl, leaf_off, centroids, cand, nprobe, k, threads, np.empty(0, np.float32), heap_d, heap_i)
    return heap_d, heap_i


def leaf_kth_distances(Xl, leaf_off, centroids, cand, nprobe: int, kth: int, threads: int) -> np.ndarray:
    """Every row's Euclidean distance to its ``kth`` nearest candidate (0-based, itself included: 0 is itself).

    The local scale of :mod:`cellquery.index.calibration` (distance to the k-th nearest other
    row) is ``kth = k``; no ids are kept. inf where the probed leaves hold at most ``kth`` rows.
    """
    out = np.empty(len(Xl), dtype=np.float32)
    none = np.empty((0, 0), np.float32)
    _run_leaves(Xl, leaf_off, centroids, cand, nprobe, int(kth) + 1, threads, out, none, none.astype(np.int64))
    norms = np.einsum("ij,ij->i", Xl, Xl)
    return np.sqrt(np.maximum(out + norms, np.float32(0.0)))

