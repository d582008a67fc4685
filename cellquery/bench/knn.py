"""Time one nearest-neighbour index on synthetic atlas-scale embeddings; score it against exact search.

``python -m cellquery.bench.knn --n-ref N --n-query Q --dim D --k K --index NAME
[--nprobe P] [--seed S] ...`` prints ONE JSON line (fields: :data:`FIELDS`).

Steps: generate queries; stream the reference in chunks (:mod:`cellquery.bench.synthetic`,
never the whole matrix at once); train the index on the first ``max_train`` rows, add
chunk by chunk, and, in the same pass, keep the exact top-k of the first
``exact_queries`` queries (blocked GEMM, :func:`cellquery.index.gemm_backend.knn_gemm`,
merged over chunks with :func:`cellquery.index.merge_topk`); save the index (its file
size gives bytes per cell); time the search of all queries; compare with the exact
neighbours (recall@k, majority-vote labels). A search setting with ``disk_k_factor`` f
re-ranks ``ceil(f k)`` candidates per query by exact distance against the reference,
which the build then also writes to a memory-mapped ``.npy`` in ``tmpdir``
(:func:`cellquery.index.refine.rerank`; ``store_s``; the file is not counted in the
index's bytes per cell, and the re-ranking is timed within ``query_s``, also as
``rerank_s``).

Index presets, defaults and job resources are in :mod:`cellquery.bench.scale`.

Run each measurement in its own process: ``peak_rss_mb`` is the process's peak
(VmHWM, :func:`cellquery.bench.memory.peak_rss_mb`) and covers generation, build,
search and scoring.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from cellquery.bench.memory import peak_rss_mb
from cellquery.bench.scale import DEFAULTS, PRESETS, SEARCH_KEYS, non_search_keys, preset_spec
from cellquery.bench.synthetic import World, iter_reference_chunks, make_queries, make_world
from cellquery.errors import InputError
from cellquery.index import Index, make_index, merge_topk
from cellquery.index.base import check_int
from cellquery.index.gemm_backend import knn_gemm
from cellquery.progress import Progress, progress

# Every field of the JSON line (and of the sweep's TSV rows), in order.
FIELDS = [
    "index", "backend", "n_ref", "n_query", "dim", "k", "seed", "threads", "on_gpu", "nprobe",
    "k_factor", "disk_k_factor", "nlist", "ef", "exact_queries", "gen_s", "train_s", "add_s", "build_s",
    "save_s", "store_s", "query_s", "rerank_s", "query_cpu_s", "qps", "recall_at_k", "label_accuracy",
    "label_accuracy_exact", "label_accuracy_vs_exact", "bytes_per_cell", "index_bytes",
    "peak_rss_mb", "gemm_gflops", "exact_gemm_bound_s", "gemm_gflops_cpu",
    "exact_gemm_bound_cpu_s", "exact_s", "loadavg_start",
    "loadavg_end", "params",
]

# Relative slack for ties at the k-th exact distance (float32 rounding differs between
# an index and the GEMM reference).
TIE_RTOL = 1e-5

# The param that sets a backend's thread count (faiss: OpenMP threads, set process-wide).
THREAD_PARAMS = {"gemm": "threads", "hnswlib": "num_threads", "pynndescent": "n_jobs"}


def _int(name: str, v, lo: int = 1) -> int:
    return check_int(v, f"bench: {name}", lo)


def recall_at_k(approx_I: np.ndarray, exact_I: np.ndarray, exact_D: np.ndarray, k: int) -> float:
    """Mean fraction of the k exact neighbours an approximate search found.

    A returned id counts when it is among the exact candidates ``exact_I`` (ascending
    ``exact_D``, at least k columns) at a distance within ``TIE_RTOL`` of the k-th exact
    distance, so equal distances at the boundary are not counted as misses. The
    denominator per query is ``min(k, number of valid exact neighbours)``.
    """
    approx_I = np.asarray(approx_I)[:, :k]
    exact_I, exact_D = np.asarray(exact_I), np.asarray(exact_D, dtype=np.float64)
    if approx_I.shape[0] != exact_I.shape[0] or exact_I.shape != exact_D.shape:
        raise InputError(f"bench: recall shapes differ: approx {approx_I.shape}, exact {exact_I.shape} / {exact_D.shape}")
    if exact_I.shape[1] < k:
        raise InputError(f"bench: recall needs >= k={k} exact columns, got {exact_I.shape[1]}")
    valid = exact_I[:, :k] >= 0
    n_true = valid.sum(axis=1)
    kth = np.where(n_true > 0, exact_D[np.arange(len(exact_D)), np.maximum(n_true - 1, 0)], -np.inf)
    within = (exact_I >= 0) & (exact_D <= kth[:, None] * (1 + TIE_RTOL) + 1e-12)
    hits = np.zeros(approx_I.shape[0], dtype=np.int64)
    for r in range(approx_I.shape[0]):  # small: exact_queries rows
        good = set(exact_I[r][within[r]].tolist())
        hits[r] = len(good.intersection(approx_I[r][approx_I[r] >= 0].tolist()))
    denom = np.maximum(n_true, 1)
    return float(np.mean(np.minimum(hits, n_true) / denom))


def majority_vote(I: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Most frequent label among each row's neighbours (ties: smallest label; none: -1).

    The plain k-NN majority vote (``scipy.stats.mode`` of the neighbours' labels) on
    integer labels ``0..n_labels-1``; ``-1`` ids are ignored. (The pipeline's label
    transfer, :func:`cellquery.transfer.transfer_labels`, votes over string labels
    with a rejection rule; at atlas size its label table of every reference cell
    would add to the peak memory measured here.)
    """
    I = np.asarray(I)
    lab = np.where(I >= 0, labels[np.maximum(I, 0)], n_labels)
    counts = np.zeros((I.shape[0], n_labels + 1), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(I.shape[0]), I.shape[1]), lab.ravel()), 1)
    counts = counts[:, :n_labels]
    out = counts.argmax(axis=1)
    return np.where(counts.max(axis=1) > 0, out, -1)


def _gemm_operands(dim: int, m: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (m x dim) and (n x dim) float32 operands and a preallocated (m x n) output."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, dim), dtype=np.float32)
    B = rng.standard_normal((n, dim), dtype=np.float32)
    return A, B, np.empty((m, n), dtype=np.float32)


def gemm_gflops(dim: int, threads: int, m: int = 1024, n: int = 16384, repeats: int = 5) -> float:
    """Best-of-``repeats`` GFLOP/s (wall clock) of a numpy float32 matmul (m x dim) @ (dim x n).

    The shape of a block of the exact search's GEMM (inner dimension = embedding dim),
    run by BLAS with ``threads`` threads; the output is preallocated so page faults are
    not timed.
    """
    A, B, out = _gemm_operands(dim, m, n)
    best = math.inf
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(A, B.T, out=out)
        for _ in range(repeats):
            t = time.perf_counter()
            np.matmul(A, B.T, out=out)
            best = min(best, time.perf_counter() - t)
    return 2.0 * m * n * dim / best / 1e9


def gemm_gflops_cpu(dim: int, m: int = 256, n: int = 4096, repeats: int = 20) -> float:
    """Best-of-``repeats`` GFLOP per CPU-second of a single-threaded (m x dim) @ (dim x n) matmul.

    Measured in process CPU time, so other processes on the machine barely change it;
    ``flops / (this * threads)`` is the GEMM time of an unloaded machine.
    """
    A, B, out = _gemm_operands(dim, m, n)
    best = math.inf
    with threadpool_limits(limits=1, user_api="blas"):
        np.matmul(A, B.T, out=out)
        for _ in range(repeats):
            c = time.process_time()
            for _ in range(5):
                np.matmul(A, B.T, out=out)
            best = min(best, (time.process_time() - c) / 5)
    return 2.0 * m * n * dim / max(best, 1e-9) / 1e9


def _set_threads(backend: str, params: dict, threads: int) -> dict:
    params = dict(params)
    if backend == "faiss":
        import faiss

        faiss.omp_set_num_threads(threads)
        params.setdefault("gpu", False)
    elif backend in THREAD_PARAMS:
        params.setdefault(THREAD_PARAMS[backend], threads)
    return params


@contextmanager
def _timed(times: dict[str, float], key: str):
    """Add the wall time of the block to ``times[key]``."""
    t = time.perf_counter()
    yield
    times[key] += time.perf_counter() - t


class _ExactNeighbours:
    """Running exact k nearest reference rows of a few queries, over reference chunks.

    Each chunk is searched by blocked GEMM (:func:`knn_gemm`) and merged into the top-k
    so far (:func:`merge_topk`, ids offset by the chunk's first row), so the reference
    is never held at once. ``D`` / ``I``: distances ascending and global ids.
    """

    def __init__(self, Q: np.ndarray, k: int, threads: int):
        self.Q, self.k, self.threads = Q, k, threads
        self.D = np.full((Q.shape[0], k), np.inf, np.float32)
        self.I = np.full((Q.shape[0], k), -1, np.int64)

    def add(self, X: np.ndarray, offset: int) -> None:
        D, I = knn_gemm(self.Q, [X], min(self.k, X.shape[0]), threads=self.threads)
        self.D, self.I = merge_topk([(self.D, self.I), (D, I)], [0, offset], self.k)


@dataclass
class _Search:
    """One search setting's result: the index params, batch size, times, first ids."""

    params: dict
    batch_size: int
    query_s: float  # the whole search, the re-ranking included
    query_cpu_s: float
    I: np.ndarray  # (exact_queries, k) ids of the queries scored against exact search
    disk_k_factor: float | None = None
    rerank_s: float | None = None


def _check_args(sizes: dict, seed, search_sweep: list[dict] | None) -> list[dict]:
    """Check the sizes (integers >= 1), the seed and the search settings; return the settings."""
    for name, v in sizes.items():
        _int(name, v)
    _int("seed", seed, 0)
    sweep = [dict(x) for x in (search_sweep or [{}])]
    for setting in sweep:
        bad = non_search_keys(setting)
        if bad:
            raise InputError(f"bench: search_sweep keys {bad} are not search-time params; known: {list(SEARCH_KEYS)}")
        factor = setting.get("disk_k_factor")
        if "disk_k_factor" in setting and (not isinstance(factor, (int, float)) or factor < 1):
            raise InputError(f"bench: disk_k_factor must be a number >= 1, got {factor!r}")
    return sweep


def _index_params(index: str, overrides: dict | None, threads: int, n_ref: int) -> tuple[str, dict]:
    """Backend and params of a preset, with the thread count and the final size filled in."""
    backend, params = preset_spec(index, overrides)
    params = _set_threads(backend, params, threads)
    if backend in ("faiss", "hnswlib"):
        params.setdefault("n_total", n_ref)
    return backend, params


def _build(idx: Index, chunks, n_ref: int, n_train: int, truth: _ExactNeighbours, ref_labels: np.ndarray,
           times: dict, vectors: np.ndarray | None = None) -> None:
    """Train on the first ``n_train`` rows, then add all rows to the index and the exact top-k
    (and write them to ``vectors``, a memory-mapped file, when given)."""
    pending = _train(idx, chunks, n_train, times)
    _add_reference(idx, pending, chunks, n_ref, truth, ref_labels, times, vectors)


def _train(idx: Index, chunks, n_train: int, times: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train ``idx`` on the first ``n_train`` reference rows; return the chunks read for it."""
    pending, got = [], 0
    while got < n_train:  # the first rows are an i.i.d. sample of the reference
        with _timed(times, "gen_s"):
            X, L = next(chunks)
        pending.append((X, L))
        got += X.shape[0]
    with _timed(times, "train_s"):
        train_X = pending[0][0] if len(pending) == 1 else np.concatenate([p[0] for p in pending])
        idx.train(train_X[:n_train])
        del train_X
    return pending


def _add_reference(idx: Index, pending: list, chunks, n_ref: int, truth: _ExactNeighbours,
                   ref_labels: np.ndarray, times: dict, vectors: np.ndarray | None = None) -> None:
    """Add every reference chunk (first those read for training) to the index and the exact top-k.

    Each chunk is released before the next one is generated; ``pending`` is emptied.
    """

    # reference cells added, elapsed, ETA in the job's log
    counter = Progress(f"index build ({idx.backend}, {n_ref} cells)", n_ref, "cells added")

    def consume(X: np.ndarray, L: np.ndarray, offset: int) -> None:
        with _timed(times, "add_s"):
            idx.add(X)
        ref_labels[offset : offset + X.shape[0]] = L
        with _timed(times, "exact_s"):
            truth.add(X, offset)
        if vectors is not None:
            with _timed(times, "store_s"):
                vectors[offset : offset + X.shape[0]] = X
        counter.update(X.shape[0])

    offset = 0
    for X, L in pending:
        consume(X, L, offset)
        offset += X.shape[0]
    pending.clear()
    del X, L
    while offset < n_ref:
        with _timed(times, "gen_s"):
            X, L = next(chunks)
        consume(X, L, offset)
        offset += X.shape[0]
        del X, L


def _saved_size(idx: Index, tmpdir: str | None, times: dict) -> int:
    """Bytes of the index file (written to a temporary folder, then deleted); times the save."""
    with tempfile.TemporaryDirectory(dir=tmpdir) as d:
        path = os.path.join(d, "index.cqindex")
        with _timed(times, "save_s"):
            idx.save(path)
        return os.path.getsize(path)


def _search(idx: Index, params: dict, setting: dict, Q: np.ndarray, k: int, batch_size: int, n_exact: int,
            vectors: np.ndarray | None = None, threads: int = 1) -> _Search:
    """Apply one search setting to the built index and time the search of all queries.

    ``disk_k_factor`` f in the setting: ``ceil(f k)`` candidates from the index, re-ranked
    by exact distance against ``vectors`` (:func:`cellquery.index.refine.rerank`; the
    reference memory-mapped from the file the build wrote), timed within ``query_s``.
    """
    from cellquery.index.refine import rerank

    setting = dict(setting)
    bs = _int("batch_size", setting.pop("batch_size", batch_size))
    factor = setting.pop("disk_k_factor", None)  # checked by _check_args; the build then wrote ``vectors``
    make_index(idx.backend, idx.dim, {**params, **setting}, idx.seed)  # validates values
    idx.params.update(setting)
    t, c = time.perf_counter(), time.process_time()
    D, I = idx.search(Q, k if factor is None else int(math.ceil(factor * k)), batch_size=bs)
    rerank_s = None
    if factor is not None:
        r = time.perf_counter()
        D, I = rerank(Q, vectors, I, k, threads=threads)
        rerank_s = time.perf_counter() - r
    return _Search(dict(idx.params), bs, time.perf_counter() - t, time.process_time() - c, I[:n_exact].copy(),
                   factor, rerank_s)


def _label_scores(I: np.ndarray, truth: _ExactNeighbours, k: int, ref_labels: np.ndarray, world: World,
                  true_labels: np.ndarray, exact_votes: np.ndarray) -> dict:
    """Recall@k and majority-vote label accuracy of one search's first queries."""
    votes = majority_vote(I, ref_labels, world.n_labels)
    seen = ~np.isin(true_labels, world.unseen)  # unseen types have no correct label to find
    return {
        "recall_at_k": round(recall_at_k(I, truth.I, truth.D, k), 5),
        "label_accuracy": round(float(np.mean(votes[seen] == true_labels[seen])), 5) if seen.any() else None,
        "label_accuracy_exact": round(float(np.mean(exact_votes[seen] == true_labels[seen])), 5) if seen.any() else None,
        "label_accuracy_vs_exact": round(float(np.mean(votes == exact_votes)), 5),
    }


def _row(run: dict, times: dict, index_bytes: int, rates: tuple[float, float], search: _Search, scores: dict) -> dict:
    """One result row (:data:`FIELDS`) of one search setting."""
    p, n_ref, n_query, dim = search.params, run["n_ref"], run["n_query"], run["dim"]
    rate, rate_cpu = rates
    row = {
        **run,
        "nprobe": p.get("nprobe"),
        "k_factor": p.get("k_factor") if p.get("refine") else None,
        "disk_k_factor": search.disk_k_factor,
        "nlist": p.get("nlist") if "{nlist}" in str(p.get("factory", "")) else None,
        "ef": p.get("efSearch", p.get("ef")),
        **{key: round(times[key], 3) for key in ("gen_s", "train_s", "add_s", "save_s", "store_s", "exact_s")},
        "build_s": round(times["train_s"] + times["add_s"] + times["warm_s"], 3),
        "query_s": round(search.query_s, 4),
        "rerank_s": None if search.rerank_s is None else round(search.rerank_s, 4),
        "query_cpu_s": round(search.query_cpu_s, 3),
        "qps": round(n_query / search.query_s, 1),
        **scores,
        "bytes_per_cell": round(index_bytes / n_ref, 3),
        "index_bytes": int(index_bytes),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "gemm_gflops": round(rate, 2),
        "exact_gemm_bound_s": round(2.0 * n_ref * n_query * dim / (rate * 1e9), 4),
        "gemm_gflops_cpu": round(rate_cpu, 2),
        "exact_gemm_bound_cpu_s": round(2.0 * n_ref * n_query * dim / (rate_cpu * 1e9), 4),
        "loadavg_end": round(os.getloadavg()[0], 2),
        "params": json.dumps({**p, "batch_size": search.batch_size,
                              **({} if search.disk_k_factor is None else {"disk_k_factor": search.disk_k_factor})},
                             sort_keys=True),
    }
    return {f: row[f] for f in FIELDS}


def run_benchmark(
    index: str,
    n_ref: int,
    n_query: int = DEFAULTS.n_query,
    dim: int = DEFAULTS.dim,
    k: int = DEFAULTS.k,
    seed: int = DEFAULTS.seed,
    params: dict | None = None,
    threads: int = DEFAULTS.threads,
    chunk: int = DEFAULTS.chunk,
    exact_queries: int = DEFAULTS.exact_queries,
    batch_size: int = DEFAULTS.batch_size,
    max_train: int = DEFAULTS.max_train,
    tmpdir: str | None = None,
    world: World | None = None,
    search_sweep: list[dict] | None = None,
) -> list[dict]:
    """Build, save, search and score one index preset; return result rows (:data:`FIELDS`).

    One row per search setting: ``search_sweep`` lists dicts of search-time params
    (:data:`~cellquery.bench.scale.SEARCH_KEYS`) applied in turn to the same built index
    (default: one search with the preset's params). Build fields and ``peak_rss_mb`` are
    shared by the rows. Defaults: :class:`~cellquery.bench.scale.ScaleSettings`.

    Parameters
    ----------
    index
        Preset name in :data:`~cellquery.bench.scale.PRESETS`.
    n_ref, n_query, dim, k, seed
        Reference cells, query cells, embedding dimension, neighbours, seed of data and index.
    params
        Overrides of the preset's params (e.g. ``{"nprobe": 32}``).
    threads
        Threads of faiss (OpenMP), BLAS, and the gemm / hnswlib / pynndescent backends.
    chunk
        Reference rows generated and added at a time.
    exact_queries
        Queries scored against exact search (the first ones; queries are i.i.d.).
    batch_size
        Queries per backend search call.
    max_train
        Rows (the first ones) passed to ``train``; the backend may subsample further.
    tmpdir
        Where the index file is written to measure its size (deleted afterwards).
    search_sweep
        Search-time settings, e.g. ``[{"nprobe": 8}, {"nprobe": 16}]``; ``batch_size``
        and ``disk_k_factor`` (re-ranking from the reference on disk, module doc) may be
        keys.
    """
    sizes = dict(n_ref=n_ref, n_query=n_query, dim=dim, k=k, threads=threads, chunk=chunk,
                 exact_queries=exact_queries, batch_size=batch_size, max_train=max_train)
    sweep = _check_args(sizes, seed, search_sweep)
    backend, params = _index_params(index, params, threads, n_ref)
    load_start = os.getloadavg()[0]
    world = world or make_world(dim, seed)
    times = dict.fromkeys(("gen_s", "train_s", "add_s", "exact_s", "warm_s", "save_s", "store_s"), 0.0)
    with _timed(times, "gen_s"):
        Q, q_labels = make_queries(n_query, dim, seed, world=world)
    n_exact = min(exact_queries, n_query)
    # extra exact candidates for tie-tolerant recall
    truth = _ExactNeighbours(Q[:n_exact], min(n_ref, k + max(10, k // 2)), threads)
    ref_labels = np.empty(n_ref, dtype=np.int16 if world.n_labels < 2**15 else np.int32)
    idx = make_index(backend, dim, params, seed)
    chunks = iter_reference_chunks(n_ref, dim, seed, chunk=chunk, world=world)
    with threadpool_limits(limits=threads, user_api="blas"), tempfile.TemporaryDirectory(dir=tmpdir) as store:
        # the reference on disk for settings that re-rank from it (not counted in the index's bytes)
        vectors = (np.lib.format.open_memmap(os.path.join(store, "reference.npy"), mode="w+", dtype=np.float32,
                                             shape=(n_ref, dim))
                   if any("disk_k_factor" in s for s in sweep) else None)
        _build(idx, chunks, n_ref, min(max_train, n_ref), truth, ref_labels, times, vectors)
        if vectors is not None:
            with _timed(times, "store_s"):
                vectors.flush()
        with _timed(times, "warm_s"):
            idx.search(Q[:1], k)  # lazy work (pynndescent builds its graph here) counts as build
        index_bytes = _saved_size(idx, tmpdir, times)
        searches = [_search(idx, params, setting, Q, k, batch_size, n_exact, vectors, threads)
                    for setting in progress(sweep, f"search settings ({index}, {n_ref} cells)", unit="settings")]
        del vectors

    rates = (gemm_gflops(dim, threads), gemm_gflops_cpu(dim))
    exact_votes = majority_vote(truth.I[:, :k], ref_labels, world.n_labels)
    run = dict(index=index, backend=backend, n_ref=int(n_ref), n_query=int(n_query), dim=int(dim), k=int(k),
               seed=int(seed), threads=int(threads), on_gpu=bool(getattr(idx, "on_gpu", False)),
               exact_queries=int(n_exact), loadavg_start=round(load_start, 2))
    return [
        _row(run, times, index_bytes, rates, s,
             _label_scores(s.I, truth, k, ref_labels, world, q_labels[:n_exact], exact_votes))
        for s in searches
    ]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m cellquery.bench.knn", description=__doc__.splitlines()[0])
    ap.add_argument("--n-ref", type=int, required=True)
    ap.add_argument("--n-query", type=int, default=DEFAULTS.n_query)
    ap.add_argument("--dim", type=int, default=DEFAULTS.dim)
    ap.add_argument("--k", type=int, default=DEFAULTS.k)
    ap.add_argument("--index", required=True, help=f"preset: {', '.join(PRESETS)}")
    ap.add_argument("--nprobe", type=int, help="IVF lists visited per query")
    ap.add_argument("--nlist", type=int, help="IVF lists (default: the preset's, 'auto')")
    ap.add_argument("--k-factor", type=float, help="refine: candidates re-ranked per neighbour")
    ap.add_argument("--ef", type=int, help="HNSW search beam (faiss efSearch / hnswlib ef)")
    ap.add_argument("--params", default="{}", help="JSON object of further preset param overrides")
    ap.add_argument("--seed", type=int, default=DEFAULTS.seed)
    ap.add_argument("--threads", type=int, default=DEFAULTS.threads)
    ap.add_argument("--chunk", type=int, default=DEFAULTS.chunk)
    ap.add_argument("--exact-queries", type=int, default=DEFAULTS.exact_queries)
    ap.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    ap.add_argument("--max-train", type=int, default=DEFAULTS.max_train)
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--search-sweep", default=None,
                    help='JSON list of search-time settings on one build, e.g. \'[{"nprobe": 8}, {"nprobe": 32}]\'; one JSON line each')
    return ap


def _json_arg(text: str, flag: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"bench: {flag} is not valid JSON ({exc})") from exc


def _overrides(a: argparse.Namespace) -> dict:
    """Preset param overrides: ``--params`` with the single-param flags set over it."""
    over = _json_arg(a.params, "--params")
    if not isinstance(over, dict):
        raise InputError("bench: --params must be a JSON object")
    backend = preset_spec(a.index)[0]
    for key, value in (("nprobe", a.nprobe), ("nlist", a.nlist), ("k_factor", a.k_factor),
                       ("efSearch" if backend == "faiss" else "ef", a.ef)):
        if value is not None:
            over[key] = value
    return over


def _search_sweep(a: argparse.Namespace) -> list[dict] | None:
    if not a.search_sweep:
        return None
    sweep = _json_arg(a.search_sweep, "--search-sweep")
    if not isinstance(sweep, list) or not all(isinstance(x, dict) for x in sweep):
        raise InputError("bench: --search-sweep must be a JSON list of objects")
    return sweep


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        rows = run_benchmark(
            a.index, a.n_ref, a.n_query, a.dim, a.k, a.seed, _overrides(a), a.threads, a.chunk,
            a.exact_queries, a.batch_size, a.max_train, a.tmpdir, search_sweep=_search_sweep(a),
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
