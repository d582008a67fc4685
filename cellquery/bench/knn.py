"""Time one nearest-neighbour index on synthetic atlas-scale embeddings; score it against exact search.

``python -m cellquery.bench.knn --n-ref N --n-query Q --dim D --k K --index NAME
[--nprobe P] [--seed S] ...`` prints ONE JSON line (fields: :data:`FIELDS`).

Steps: generate queries; stream the reference in chunks (:mod:`cellquery.bench.synthetic`,
never the whole matrix at once); train the index on the first ``max_train`` rows, add
chunk by chunk, and, in the same pass, keep the exact top-k of the first
``exact_queries`` queries (blocked GEMM, :func:`cellquery.index.gemm_backend.knn_gemm`,
merged over chunks with :func:`cellquery.index.merge_topk`); save the index (its file
size gives bytes per cell); time the search of all queries; compare with the exact
neighbours (recall@k, majority-vote labels).

Run each measurement in its own process: ``peak_rss_mb`` is the process's peak
(``ru_maxrss``) and covers generation, build, search and scoring.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

from cellquery.bench.synthetic import World, iter_reference_chunks, make_queries, make_world
from cellquery.errors import InputError
from cellquery.index import BACKENDS, Index, make_index, merge_topk
from cellquery.index.gemm_backend import GemmIndex, knn_gemm

# Named index presets: (backend, params). Tuned values are set on the command line or
# in the sweep config; "{nlist}" with nlist "auto" is about 4 sqrt(n_ref) lists.
PRESETS: dict[str, tuple[str, dict]] = {
    "flat": ("faiss", {"factory": "Flat"}),
    "gemm": ("gemm", {}),
    "ivfflat": ("faiss", {"factory": "IVF{nlist},Flat", "nprobe": 8}),
    "ivfsq8": ("faiss", {"factory": "IVF{nlist},SQ8", "nprobe": 8}),
    "ivfpq16": ("faiss", {"factory": "IVF{nlist},PQ16", "nprobe": 16}),
    "ivfpq16_refine": ("faiss", {"factory": "IVF{nlist},PQ16", "nprobe": 16, "refine": True, "k_factor": 4}),
    # coarse quantizer searched with an HNSW graph: assigning 10^7 cells to 16k lists costs
    # a few graph hops each instead of 16k distances (flat quantizer)
    "ivfpq16_hnswq": ("faiss", {"factory": "IVF{nlist}_HNSW32,PQ16", "nlist": 16384, "nprobe": 32}),
    # 32 sub-quantizers x 4 bits = 16 bytes per code, scanned with SIMD (faiss "fast scan")
    "ivfpq32fs": ("faiss", {"factory": "IVF{nlist},PQ32x4fs", "nprobe": 16}),
    "ivfpq32fs_refine": ("faiss", {"factory": "IVF{nlist},PQ32x4fs", "nprobe": 16, "refine": True, "k_factor": 4}),
    "hnsw32": ("faiss", {"factory": "HNSW32", "efSearch": 64}),
    "hnswlib": ("hnswlib", {"M": 16, "ef_construction": 200, "ef": 100}),
    "pynndescent": ("pynndescent", {}),
}
EXACT_PRESETS = ("flat", "gemm")  # presets whose search is exhaustive

# Every field of the JSON line (and of the sweep's TSV rows), in order.
FIELDS = [
    "index", "backend", "n_ref", "n_query", "dim", "k", "seed", "threads", "nprobe",
    "k_factor", "nlist", "ef", "exact_queries", "gen_s", "train_s", "add_s", "build_s",
    "save_s", "query_s", "query_cpu_s", "qps", "recall_at_k", "label_accuracy",
    "label_accuracy_exact", "label_accuracy_vs_exact", "bytes_per_cell", "index_bytes",
    "peak_rss_mb", "gemm_gflops", "exact_gemm_bound_s", "gemm_gflops_cpu",
    "exact_gemm_bound_cpu_s", "exact_s", "loadavg_start",
    "loadavg_end", "params",
]

# Params that may change between searches of one built index.
SEARCH_KEYS = ("nprobe", "efSearch", "k_factor", "ef", "epsilon", "threads", "num_threads",
               "n_jobs", "query_block", "ref_block", "batch_size")

# Relative slack for ties at the k-th exact distance (float32 rounding differs between
# an index and the GEMM reference).
TIE_RTOL = 1e-5


def _int(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise InputError(f"bench: {name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def preset_spec(name: str, overrides: dict | None = None) -> tuple[str, dict]:
    """Backend and params of a preset with ``overrides`` merged over its params."""
    if name not in PRESETS:
        raise InputError(f"bench: unknown index preset '{name}'; known: {sorted(PRESETS)}")
    backend, params = PRESETS[name]
    return backend, {**params, **(overrides or {})}


def new_index(backend: str, dim: int, params: dict, seed: int) -> Index:
    """Empty index of a backend; ``gemm`` works before it is registered in ``BACKENDS``."""
    if backend == "gemm" and backend not in BACKENDS:
        return GemmIndex(dim, params, seed)
    return make_index(backend, dim, params, seed)


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

    The plain majority vote of the notebook's atlas query (``scipy.stats.mode`` of the
    neighbours' labels); ``-1`` ids are ignored.
    """
    I = np.asarray(I)
    lab = np.where(I >= 0, labels[np.maximum(I, 0)], n_labels)
    counts = np.zeros((I.shape[0], n_labels + 1), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(I.shape[0]), I.shape[1]), lab.ravel()), 1)
    counts = counts[:, :n_labels]
    out = counts.argmax(axis=1)
    return np.where(counts.max(axis=1) > 0, out, -1)


def gemm_gflops(dim: int, threads: int, m: int = 1024, n: int = 16384, repeats: int = 5) -> float:
    """Best-of-``repeats`` GFLOP/s (wall clock) of a numpy float32 matmul (m x dim) @ (dim x n).

    The shape of a block of the exact search's GEMM (inner dimension = embedding dim),
    run by BLAS with ``threads`` threads; the output is preallocated so page faults are
    not timed.
    """
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, dim), dtype=np.float32)
    B = rng.standard_normal((n, dim), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
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
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, dim), dtype=np.float32)
    B = rng.standard_normal((n, dim), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
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
    elif backend == "gemm":
        params.setdefault("threads", threads)
    elif backend == "hnswlib":
        params.setdefault("num_threads", threads)
    elif backend == "pynndescent":
        params.setdefault("n_jobs", threads)
    return params


def run_benchmark(
    index: str,
    n_ref: int,
    n_query: int = 10000,
    dim: int = 32,
    k: int = 50,
    seed: int = 0,
    params: dict | None = None,
    threads: int = 2,
    chunk: int = 1_000_000,
    exact_queries: int = 1000,
    batch_size: int = 10000,
    max_train: int = 1_000_000,
    tmpdir: str | None = None,
    world: World | None = None,
    search_sweep: list[dict] | None = None,
) -> list[dict]:
    """Build, save, search and score one index preset; return result rows (:data:`FIELDS`).

    One row per search setting: ``search_sweep`` lists dicts of search-time params
    (:data:`SEARCH_KEYS`) applied in turn to the same built index (default: one search
    with the preset's params). Build fields and ``peak_rss_mb`` are shared by the rows.

    Parameters
    ----------
    index
        Preset name in :data:`PRESETS`.
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
        may be one of the keys.
    """
    for name, v in (("n_ref", n_ref), ("n_query", n_query), ("dim", dim), ("k", k), ("threads", threads),
                    ("chunk", chunk), ("exact_queries", exact_queries), ("batch_size", batch_size),
                    ("max_train", max_train)):
        _int(name, v)
    _int("seed", seed, 0)
    sweep = [dict(x) for x in (search_sweep or [{}])]
    for setting in sweep:
        bad = sorted(set(setting) - set(SEARCH_KEYS))
        if bad:
            raise InputError(f"bench: search_sweep keys {bad} are not search-time params; known: {list(SEARCH_KEYS)}")
    backend, params = preset_spec(index, params)
    params = _set_threads(backend, params, threads)
    if backend in ("faiss", "hnswlib"):
        params.setdefault("n_total", n_ref)
    load_start = os.getloadavg()[0]
    world = world or make_world(dim, seed)
    t = time.perf_counter()
    Q, q_labels = make_queries(n_query, dim, seed, world=world)
    gen_s = time.perf_counter() - t
    n_exact = min(exact_queries, n_query)
    Qe = Q[:n_exact]
    k_gt = min(n_ref, k + max(10, k // 2))  # extra exact candidates for tie-tolerant recall
    gt_D = np.full((n_exact, k_gt), np.inf, np.float32)
    gt_I = np.full((n_exact, k_gt), -1, np.int64)
    ref_labels = np.empty(n_ref, dtype=np.int16 if world.n_labels < 2**15 else np.int32)
    idx = new_index(backend, dim, params, seed)
    train_s = add_s = exact_s = 0.0
    chunks = iter_reference_chunks(n_ref, dim, seed, chunk=chunk, world=world)
    with threadpool_limits(limits=threads, user_api="blas"):
        pending, got = [], 0
        n_train = min(max_train, n_ref)
        while got < n_train:  # the first rows are an i.i.d. sample of the reference
            t = time.perf_counter()
            X, L = next(chunks)
            gen_s += time.perf_counter() - t
            pending.append((X, L))
            got += X.shape[0]
        t = time.perf_counter()
        train_X = pending[0][0] if len(pending) == 1 else np.concatenate([p[0] for p in pending])
        idx.train(train_X[:n_train])
        del train_X
        train_s = time.perf_counter() - t

        def consume(X: np.ndarray, L: np.ndarray, offset: int) -> None:
            nonlocal add_s, exact_s, gt_D, gt_I
            t = time.perf_counter()
            idx.add(X)
            add_s += time.perf_counter() - t
            ref_labels[offset : offset + X.shape[0]] = L
            t = time.perf_counter()
            D, I = knn_gemm(Qe, [X], min(k_gt, X.shape[0]), threads=threads)
            gt_D, gt_I = merge_topk([(gt_D, gt_I), (D, I)], [0, offset], k_gt)
            exact_s += time.perf_counter() - t

        offset = 0
        for X, L in pending:
            consume(X, L, offset)
            offset += X.shape[0]
        del pending, X, L
        while offset < n_ref:
            t = time.perf_counter()
            X, L = next(chunks)
            gen_s += time.perf_counter() - t
            consume(X, L, offset)
            offset += X.shape[0]
            del X, L
        t = time.perf_counter()
        idx.search(Q[:1], k)  # lazy work (pynndescent builds its graph here) counts as build
        warm_s = time.perf_counter() - t
        build_s = train_s + add_s + warm_s

        with tempfile.TemporaryDirectory(dir=tmpdir) as d:
            path = os.path.join(d, "index.cqindex")
            t = time.perf_counter()
            idx.save(path)
            save_s = time.perf_counter() - t
            index_bytes = os.path.getsize(path)

        results = []
        for setting in sweep:
            setting = dict(setting)
            bs = _int("batch_size", setting.pop("batch_size", batch_size))
            check = new_index(backend, dim, {**params, **setting}, seed)  # validates values
            del check
            idx.params.update(setting)
            t, c = time.perf_counter(), time.process_time()
            D, I = idx.search(Q, k, batch_size=bs)
            results.append((dict(idx.params), bs, time.perf_counter() - t, time.process_time() - c, I[:n_exact].copy()))
            del D, I

    rate = gemm_gflops(dim, threads)
    rate_cpu = gemm_gflops_cpu(dim)
    exact_I = gt_I[:, :k]
    maj_e = majority_vote(exact_I, ref_labels, world.n_labels)
    truth = q_labels[:n_exact]
    seen = ~np.isin(truth, world.unseen)  # unseen types have no correct label to find
    rows = []
    for p, bs, query_s, query_cpu_s, I in results:
        recall = recall_at_k(I, gt_I, gt_D, k)
        maj_a = majority_vote(I, ref_labels, world.n_labels)
        row = {
            "index": index,
            "backend": backend,
            "n_ref": int(n_ref),
            "n_query": int(n_query),
            "dim": int(dim),
            "k": int(k),
            "seed": int(seed),
            "threads": int(threads),
            "nprobe": p.get("nprobe"),
            "k_factor": p.get("k_factor") if p.get("refine") else None,
            "nlist": p.get("nlist") if "{nlist}" in str(p.get("factory", "")) else None,
            "ef": p.get("efSearch", p.get("ef")),
            "exact_queries": int(n_exact),
            "gen_s": round(gen_s, 3),
            "train_s": round(train_s, 3),
            "add_s": round(add_s, 3),
            "build_s": round(build_s, 3),
            "save_s": round(save_s, 3),
            "query_s": round(query_s, 4),
            "query_cpu_s": round(query_cpu_s, 3),
            "qps": round(n_query / query_s, 1),
            "recall_at_k": round(recall, 5),
            "label_accuracy": round(float(np.mean(maj_a[seen] == truth[seen])), 5) if seen.any() else None,
            "label_accuracy_exact": round(float(np.mean(maj_e[seen] == truth[seen])), 5) if seen.any() else None,
            "label_accuracy_vs_exact": round(float(np.mean(maj_a == maj_e)), 5),
            "bytes_per_cell": round(index_bytes / n_ref, 3),
            "index_bytes": int(index_bytes),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "gemm_gflops": round(rate, 2),
            "exact_gemm_bound_s": round(2.0 * n_ref * n_query * dim / (rate * 1e9), 4),
            "gemm_gflops_cpu": round(rate_cpu, 2),
            "exact_gemm_bound_cpu_s": round(2.0 * n_ref * n_query * dim / (rate_cpu * 1e9), 4),
            "exact_s": round(exact_s, 3),
            "loadavg_start": round(load_start, 2),
            "loadavg_end": round(os.getloadavg()[0], 2),
            "params": json.dumps({**p, "batch_size": bs}, sort_keys=True),
        }
        rows.append({f: row[f] for f in FIELDS})
    return rows


# Bytes per reference cell held in memory by each backend, beyond the float32 chunks
# being generated (vectors 4*dim, ids 8, graph links); used for Snakemake mem_mb.
def _index_bytes_per_cell(backend: str, params: dict, dim: int) -> float:
    if backend == "gemm":
        return 4 * dim + 4
    if backend == "faiss":
        f = str(params.get("factory", "Flat"))
        vec = 4 * dim
        if "PQ" in f:
            m = int("".join(ch for ch in f.split("PQ")[1].split("x")[0].split(",")[0] if ch.isdigit()) or 16)
            vec = m
        elif "SQ8" in f:
            vec = dim
        per = vec + (8 if "IVF" in f else 0)
        if "HNSW" in f and "IVF" not in f:
            M = int("".join(ch for ch in f.split("HNSW")[1].split(",")[0] if ch.isdigit()) or 32)
            per += 2 * M * 4 + 16
        if params.get("refine"):
            per += 4 * dim
        return per
    if backend == "hnswlib":
        return 4 * dim + 2 * int(params.get("M", 16)) * 4 + 16
    if backend == "pynndescent":
        return 4 * dim + 2000  # NN-descent build peak, about 2 GB per 10^6 cells
    return 4 * dim


def estimate_mem_mb(index: str, n_ref: int, dim: int = 32, n_query: int = 10000, k: int = 50,
                    chunk: int = 1_000_000, params: dict | None = None) -> int:
    """Peak memory (MB) to request for one measurement.

    Interpreter + libraries (~700 MB), a few generated chunks and the training copy,
    the index twice (saving may serialise a copy: hnswlib/pynndescent pickles, the gemm
    concatenation), labels, and the search results; plus 30 %.
    """
    backend, p = preset_spec(index, params)
    chunk_b = min(chunk, n_ref) * (dim * 4 + 4) * 4
    index_b = _index_bytes_per_cell(backend, p, dim) * n_ref * 2
    query_b = n_query * (dim * 4 + k * 12 * 3)
    total = 700e6 + chunk_b + index_b + query_b + n_ref * 2
    return int(math.ceil(total * 1.3 / 1e6))


# Rough CPU-seconds per 10^6 reference cells on one core (measured on 2-core machines):
# generation + exact ground truth + build + search of 10^4 queries.
_CPU_S_PER_MILLION = {"flat": 130, "gemm": 60, "ivfflat": 40, "ivfsq8": 40, "ivfpq16": 40,
                      "ivfpq16_refine": 45, "ivfpq32fs": 40, "ivfpq32fs_refine": 45, "ivfpq16_hnswq": 25, "hnsw32": 400, "hnswlib": 500, "pynndescent": 600}


def estimate_runtime_min(index: str, n_ref: int, threads: int = 2, search_settings: int = 1) -> int:
    """Minutes to request for one measurement: fixed training cost + per-cell work, tripled."""
    preset_spec(index)
    per_m = _CPU_S_PER_MILLION.get(index, 600) * (1 + 0.3 * (search_settings - 1))
    cpu_s = 300 + per_m * n_ref / 1e6
    return int(math.ceil(3 * cpu_s / max(1, threads) / 60)) + 5


def check_scale_config(scale: dict) -> None:
    """Raise :class:`InputError` naming the first bad key of the ``scale`` config section.

    Checks what the schema cannot: preset names, param names of the preset's backend,
    and that ``search_sweep`` holds search-time params only.
    """
    for name, spec in (scale.get("indexes") or {}).items():
        where = f"config: scale.indexes.{name}"
        if spec.get("preset") not in PRESETS:
            raise InputError(f"{where}.preset: unknown {spec.get('preset')!r} (known: {', '.join(PRESETS)})")
        backend, params = preset_spec(spec["preset"], spec.get("params"))
        try:
            new_index(backend, int(scale.get("dim", 32)), params, 0)
        except InputError as exc:
            raise InputError(f"{where}.params: {exc}") from exc
        for setting in spec.get("search_sweep") or []:
            bad = sorted(set(setting) - set(SEARCH_KEYS))
            if bad:
                raise InputError(f"{where}.search_sweep: {bad} are not search-time params (known: {', '.join(SEARCH_KEYS)})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellquery.bench.knn", description=__doc__.splitlines()[0])
    ap.add_argument("--n-ref", type=int, required=True)
    ap.add_argument("--n-query", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--index", required=True, help=f"preset: {', '.join(PRESETS)}")
    ap.add_argument("--nprobe", type=int, help="IVF lists visited per query")
    ap.add_argument("--nlist", type=int, help="IVF lists (default: the preset's, 'auto')")
    ap.add_argument("--k-factor", type=float, help="refine: candidates re-ranked per neighbour")
    ap.add_argument("--ef", type=int, help="HNSW search beam (faiss efSearch / hnswlib ef)")
    ap.add_argument("--params", default="{}", help="JSON object of further preset param overrides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--exact-queries", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=10000)
    ap.add_argument("--max-train", type=int, default=1_000_000)
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--search-sweep", default=None,
                    help='JSON list of search-time settings on one build, e.g. \'[{"nprobe": 8}, {"nprobe": 32}]\'; one JSON line each')
    a = ap.parse_args(argv)
    try:
        try:
            over = json.loads(a.params)
        except json.JSONDecodeError as exc:
            raise InputError(f"bench: --params is not valid JSON ({exc})") from exc
        if not isinstance(over, dict):
            raise InputError("bench: --params must be a JSON object")
        backend = preset_spec(a.index)[0]
        if a.nprobe is not None:
            over["nprobe"] = a.nprobe
        if a.nlist is not None:
            over["nlist"] = a.nlist
        if a.k_factor is not None:
            over["k_factor"] = a.k_factor
        if a.ef is not None:
            over["efSearch" if backend == "faiss" else "ef"] = a.ef
        sweep = None
        if a.search_sweep:
            try:
                sweep = json.loads(a.search_sweep)
            except json.JSONDecodeError as exc:
                raise InputError(f"bench: --search-sweep is not valid JSON ({exc})") from exc
            if not isinstance(sweep, list) or not all(isinstance(x, dict) for x in sweep):
                raise InputError("bench: --search-sweep must be a JSON list of objects")
        rows = run_benchmark(
            a.index, a.n_ref, a.n_query, a.dim, a.k, a.seed, over, a.threads, a.chunk,
            a.exact_queries, a.batch_size, a.max_train, a.tmpdir, search_sweep=sweep,
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
