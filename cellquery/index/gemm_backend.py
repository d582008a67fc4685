"""Exact L2 search by blocked GEMM with a fused top-k scan (a brute-force backend).

For a query block ``Q_b`` and a reference block ``X_b`` the squared distances are
``||q||^2 + ||x||^2 - 2 q.x``; the inner products come from one BLAS ``sgemm`` per block
pair (``(-2 Q_b) @ X_b^T``, both blocks small enough to stay in cache), and one pass over
the block adds ``||x||^2`` and keeps every row's k best in a bounded max-heap
(``||q||^2`` is constant per row, added at the end). This is the faiss ``IndexFlatL2``
algorithm (``knn_L2sqr`` with BLAS); it is written here because, for k = 50 and d = 32,
faiss's heap pass costs about four times the GEMM on the machines this benchmark runs on,
while this scan (compiled with numba, in the environment as a dependency of pynndescent)
costs under half of it. Threads work on separate query blocks (BLAS single-threaded
inside), so no thread waits on another.

Results are exact up to float32 rounding; ties are broken by the smaller reference id.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import IO

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from cellquery.errors import InputError
from cellquery.index.base import Index, as_matrix, check_int, check_k, finalize, restore_common


@njit(inline="always")
def _sift_down(hd, hi, v, idx, size, pos=0):  # pragma: no cover - compiled
    """Put (v, idx) at entry ``pos`` (the root by default) of the max-heap held by the first ``size`` entries (ordered by (distance, id)) and sift it down."""
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        if c + 1 < size and (hd[c + 1] > hd[c] or (hd[c + 1] == hd[c] and hi[c + 1] > hi[c])):
            c += 1
        if hd[c] > v or (hd[c] == v and hi[c] > idx):
            hd[pos] = hd[c]
            hi[pos] = hi[c]
            pos = c
        else:
            break
    hd[pos] = v
    hi[pos] = idx


@njit(inline="always")
def _heap_replace_top(hd, hi, v, idx):  # pragma: no cover - compiled
    """Replace the root of a max-heap ordered by (distance, id) and sift it down."""
    _sift_down(hd, hi, v, idx, hd.shape[0])


_W = 64  # reference rows screened together by one vectorised count


# fastmath without "ninf": the heaps start at +inf; "nnan"/"reassoc" let LLVM vectorise the
# screening count (inputs are checked finite). Values pushed are computed exactly as
# without fastmath (one float32 add).
@njit(nogil=True, cache=True, fastmath={"nnan", "nsz", "reassoc"})
def _scan_block(S, norms, base, heap_d, heap_i):  # pragma: no cover - compiled
    """Push ``norms[j] + S[r, j]`` (ids ``base + j``) into row r's heap of the k best.

    Runs of ``_W`` columns are screened first by counting the values below the row's
    current k-th best (a branch-free loop that LLVM turns into SIMD compares): after the
    first blocks almost no value beats it, so most runs cost one vectorised pass. A count
    over 64 columns vectorises and predicts better than a running minimum over 32 (about
    2.5x faster per element on AVX-512, measured with ``cellquery.bench.transfer``).
    """
    nq, nb = S.shape
    nfull = nb - nb % _W
    for r in range(nq):
        hd = heap_d[r]
        hi = heap_i[r]
        thr = hd[0]
        row = S[r]
        for j0 in range(0, nfull, _W):
            c = 0
            for jj in range(_W):
                c += (norms[j0 + jj] + row[j0 + jj]) < thr
            if c > 0:
                for j in range(j0, j0 + _W):
                    v = norms[j] + row[j]
                    if v < thr:  # strict: a later (larger) id never displaces an equal distance
                        _heap_replace_top(hd, hi, v, base + j)
                        thr = hd[0]
        for j in range(nfull, nb):
            v = norms[j] + row[j]
            if v < thr:
                _heap_replace_top(hd, hi, v, base + j)
                thr = hd[0]


def run_threads(func, parts, threads: int) -> None:
    """``func(part)`` for every part, on up to ``threads`` worker threads with one BLAS thread each.

    The compiled kernels release the GIL (numba ``nogil``), so the workers run in parallel;
    one BLAS thread per worker keeps their GEMMs from competing for the same cores.
    """
    parts = list(parts)
    with threadpool_limits(limits=1, user_api="blas"):
        if threads <= 1 or len(parts) <= 1:
            for part in parts:
                func(part)
        else:
            with ThreadPoolExecutor(max_workers=min(threads, len(parts))) as pool:
                list(pool.map(func, parts))


def _check_int(name: str, v) -> int:
    return check_int(v, f"index: gemm param '{name}'")


def knn_gemm(
    Q: np.ndarray,
    chunks: list[np.ndarray],
    k: int,
    norms: list[np.ndarray] | None = None,
    threads: int | None = None,
    query_block: int = 256,
    ref_block: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest reference rows of every query row (L2), by blocked GEMM.

    Parameters
    ----------
    Q
        Queries (n_q, d) float32.
    chunks
        Reference rows as a list of (n_i, d) float32 arrays; ids run over the chunks in order.
    k
        Neighbours per query.
    norms
        Squared norms of each chunk's rows (computed when None).
    threads
        Worker threads (each takes whole query blocks); None = ``os.cpu_count()``.
    query_block, ref_block
        Block shape of one GEMM (256 x 1024 float32 = 1 MiB: written by the GEMM and read
        by the scan while still in a core's L2 cache).

    Returns
    -------
    distances, indices
        Euclidean float32 distances ascending (ties by smaller id) and int64 ids, (n_q, k);
        ``inf`` / ``-1`` where fewer than k reference rows exist.
    """
    k = check_k(k)
    threads = _check_int("threads", threads if threads is not None else (os.cpu_count() or 1))
    query_block = _check_int("query_block", query_block)
    ref_block = _check_int("ref_block", ref_block)
    Q = as_matrix(Q, "query Q", allow_empty=True)
    chunks = [as_matrix(c, "reference X", Q.shape[1], allow_empty=True) for c in chunks]
    if norms is None:
        norms = [np.einsum("ij,ij->i", c, c) for c in chunks]
    n_q = Q.shape[0]
    heap_d = np.full((n_q, k), np.inf, dtype=np.float32)
    heap_i = np.full((n_q, k), -1, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([c.shape[0] for c in chunks])]).astype(np.int64)

    def run(starts: range) -> None:
        # one score buffer per worker for all its query blocks: a fresh buffer per block is
        # fresh pages to fault in each time (10^4 queries x 2,000 centroids: 20 blocks of 4 MiB)
        buf = np.empty(min(query_block, n_q) * min(ref_block, max(offsets[-1], 1)), dtype=np.float32)
        for start in starts:
            stop = min(start + query_block, n_q)
            Qm = np.ascontiguousarray(-2.0 * Q[start:stop], dtype=np.float32)
            hd, hi = heap_d[start:stop], heap_i[start:stop]
            for c, nrm, off in zip(chunks, norms, offsets):
                for rs in range(0, c.shape[0], ref_block):
                    re = min(rs + ref_block, c.shape[0])
                    S = buf[: Qm.shape[0] * (re - rs)].reshape(Qm.shape[0], re - rs)
                    np.matmul(Qm, c[rs:re].T, out=S)
                    _scan_block(S, nrm[rs:re], int(off + rs), hd, hi)

    blocks = range(0, n_q, query_block)
    run_threads(run, [blocks[t::threads] for t in range(min(threads, len(blocks)))], threads)
    order = np.lexsort((heap_i, heap_d), axis=1)
    D = np.take_along_axis(heap_d, order, axis=1)
    I = np.take_along_axis(heap_i, order, axis=1)
    qn = np.einsum("ij,ij->i", Q, Q)[:, None]
    return finalize(D + qn, I, squared=True)


class GemmIndex(Index):
    """Exact (brute-force) L2 index searched by blocked GEMM + fused top-k (see module doc).

    Stores the float32 vectors (4 * dim bytes per row) in the chunks they were added in.

    Params
    ------
    threads : int or None, default None
        Worker threads; None = ``os.cpu_count()``.
    query_block : int, default 256
        Queries per GEMM block.
    ref_block : int, default 1024
        Reference rows per GEMM block.
    """

    backend = "gemm"
    DEFAULTS = {"threads": None, "query_block": 256, "ref_block": 1024}

    def __init__(self, dim: int, params: dict | None = None, seed: int = 0):
        super().__init__(dim, params, seed)
        if self.params["threads"] is not None:
            _check_int("threads", self.params["threads"])
        _check_int("query_block", self.params["query_block"])
        _check_int("ref_block", self.params["ref_block"])
        self._chunks: list[np.ndarray] = []
        self._norms: list[np.ndarray] = []

    def _train(self, X: np.ndarray) -> None:
        pass  # nothing learnt

    def _add(self, X: np.ndarray) -> None:
        X = np.array(X, dtype=np.float32, order="C", copy=True)
        self._chunks.append(X)
        self._norms.append(np.einsum("ij,ij->i", X, X))

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        return knn_gemm(Q, self._chunks, k, self._norms, p["threads"], p["query_block"], p["ref_block"])

    def _write_payload(self, f: IO[bytes]) -> None:
        if not self._chunks:
            X = np.zeros((0, self.dim), np.float32)
        else:
            X = self._chunks[0] if len(self._chunks) == 1 else np.concatenate(self._chunks)
        np.save(f, X, allow_pickle=False)

    @classmethod
    def _read_payload(cls, f: IO[bytes], header: dict) -> "GemmIndex":
        obj = cls.__new__(cls)
        restore_common(obj, header)
        obj._chunks, obj._norms = [], []
        if header["is_trained"]:
            X = np.load(f, allow_pickle=False)
            if X.shape != (obj.n, obj.dim):
                raise InputError(f"index: gemm payload has shape {X.shape}, header says ({obj.n}, {obj.dim})")
            if obj.n:
                obj._chunks.append(np.ascontiguousarray(X, dtype=np.float32))
                obj._norms.append(np.einsum("ij,ij->i", obj._chunks[0], obj._chunks[0]))
        return obj
