"""One-shot label transfer (index build + search + vote) against CellMapper, in one process.

``python -m cellquery.bench.transfer --n-ref 1000000 --n-query 10000 --k 30 --against cellmapper``
generates one synthetic world (:mod:`cellquery.bench.synthetic`: 32-d, seen and unseen
types), and on the same reference and query cells runs

* ``cellmapper``: CellMapper's fastest path (``compute_neighbors`` with ``knn_method``
  "faiss-cpu", an exact faiss ``IndexFlatL2``, ``only_yx=True``; ``compute_mapping_matrix``
  with the gauss kernel; ``map_obs`` of the label). Timed from ``CellMapper(query,
  reference)`` to the predicted labels; building the two AnnData objects it reads (the
  embeddings in ``obsm``, the labels as a categorical obs column) is input preparation and
  not timed, as the generation of the cells is not;
* ``cellquery``: the project's fastest one-shot path: the ``ivf_gemm`` index
  (:mod:`cellquery.index.ivf_gemm_backend`: k-means on a seeded subsample, GEMM-batched
  list scans) + a vote (:func:`cellquery.transfer.transfer_labels`, no rejection) whose
  voter is chosen inside the reference (``--voter auto``, default): 2,000 seeded reference
  rows are searched against the index, their own hit dropped, and the voter with the
  largest MBA on them wins (:func:`choose_voter_in_reference`; timed as ``voter_choice_s``
  within ``wall_s``; ``--voter NAME`` fixes it);
* ``cellquery_exact``: the exact ``gemm`` backend (blocked GEMM + fused top-k) + the same voter;
* with ``--faiss gpu`` (or ``cpu``): ``cellquery_faiss_gpu`` and ``cellquery_faiss_gpu_exact``:
  the same path and voter on faiss indexes on a GPU (``index_cpu_to_gpu``,
  :mod:`cellquery.index.faiss_backend`): ``IVF{nlist},Flat`` with the one-shot index's
  lists and nprobe (k-means on the GPU), and the exact ``Flat``; after one untimed
  build and search of a small index on the same device (CUDA context, faiss's GPU
  memory). A machine whose faiss sees no GPU gets the two rows with ``"gpu": false`` and
  the reason. ``cpu`` runs them on faiss's CPU indexes (rows ``cellquery_faiss_cpu``...);
* ``gemm_bound``: the machine's GEMM bound measured in the same run: the float32 matmul of
  the exact search's shape, ``(n_query x d) @ (d x n_ref)``, computed in output tiles
  that stay in cache (best of two tile shapes, same threads, no top-k), against the exact
  search's wall time;
* ``ratio``: CellMapper's wall time over the project's, and the accuracies (the
  ``cellquery`` row also gives the accuracy of the project's other voters on the same hits,
  ``accuracy_seen_by_voter``; ``balanced`` divides each vote by its label's reference
  frequency, which helps where the query's type mix differs from the reference's, as in
  the synthetic world);
* with ``--calibration``: ``calibration``: local scales + the significance null
  (:func:`cellquery.index.calibration.calibrate`) and the conformal calibration
  (:func:`cellquery.transfer.conformal.calibrate`) of the reference with the one-shot
  index. By default (``--calibration-search leaves``) the reference is searched against
  itself in leaves of the index's lists
  (:mod:`cellquery.index.leaf_search`: each row scans its ``--leaf-nprobe`` nearest
  leaves of about ``--leaf-size`` rows): once for the local scales, keeping no hits
  (``calibration_s``), once keeping 65 hits per row for the conformal candidates
  (``conformal_s``); ``--calibration-search rows`` searches it row by row over the
  index's lists (``IvfGemmIndex.reference_search``, ``--calibration-nprobe``), once for
  both; ``both`` runs the two in turn (rows first, row ``calibration_rows``) and gives the
  ratios of their local scales + null and of their totals with the conformal calibration
  (``calibration_ratio``; the rows search is counted once, under the scales). Wall and CPU
  seconds per stage; the local scales' relative error against exact ones on a sample of
  rows (``--scale-sample``); query throughput (cells/s) of the calibrated P-value rule
  (search + exact hit distances + significance mask + vote, as :mod:`cellquery.bench.rejection`;
  a first pass over the queries is timed apart (``rejection_query_first_s``: it loads
  compiled kernels and faults in buffers once per process), then the median of seven
  passes over the same queries, ``rejection_query_runs_s`` all seven) and its MBA on
  seen and unseen query types.

Each prints one JSON line. Accuracy: the share of seen-type query cells (types with
reference cells, trajectories included) whose predicted label is their type. Memory:
``peak_rss_delta_mb`` is the peak resident set size sampled every 10 ms (psutil, in a
thread) during the run minus the RSS when it started (``rss_method`` says so); it counts
faiss's and BLAS's allocations, which tracemalloc would miss. With ``--sizes`` the runs
repeat per reference size and ``--figure`` writes wall time against reference size
for each. Timings are wall seconds; ``loadavg`` records the machine's load (other
processes slow every run alike; the ratios in one process are what compare).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pandas as pd
import psutil
from threadpoolctl import threadpool_limits

from cellquery.bench.synthetic import make_queries, make_world, reference_sample
from cellquery.errors import InputError
from cellquery.index import build_index
from cellquery.index.base import check_int
from cellquery.transfer import transfer_labels

RSS_METHOD = "psutil RSS sampled every 10 ms, peak minus RSS at the start of the run"
ONE_SHOT_INDEX = "ivf_gemm"
NPROBE = 12


def one_shot_nlist(n_ref: int) -> int:
    """Lists of the one-shot index: ``sqrt(n_ref) / 2``, half the backend's own default.

    A one-shot mapping searches few queries once, so the build (k-means, then assigning
    every reference row: cost ~ n_ref * nlist) weighs more than the list scans (~ n_query
    * nprobe * n_ref / nlist). Measured at 10^6 references, 10^4 queries: 400-500 lists
    with nprobe 12 had the shortest build + search and the exact search's accuracy.
    """
    return max(1, int(round(np.sqrt(n_ref) / 2)))
FAISS_ONE_SHOT = (("", "IVF{nlist},Flat"), ("_exact", "Flat"))  # faiss rows: (run name suffix, factory)
VOTERS_COMPARED = ("majority", "distance_weighted", "kernel", "balanced")
VOTER_ROWS = 2_000  # reference rows the one-shot path's voter is chosen on
QUERY_REPEATS = 7  # timed passes of the calibrated query after a first one; the median is reported (passes varied 0.16-0.26 s at 10^6 in one process)


class RssPeak:
    """Peak RSS (MiB) above the RSS at entry, sampled in a background thread."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> "RssPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def delta_mb(self) -> float:
        return round((self.peak - self.start) / 2**20, 1)


@contextmanager
def timed(times: dict, key: str):
    t = time.perf_counter()
    yield
    times[key] = round(time.perf_counter() - t, 4)


@contextmanager
def timed_cpu(times: dict, key: str):
    """Wall seconds as :func:`timed` under ``key``, and the process's CPU seconds (all threads) under ``key`` with ``_cpu_s``.

    CPU seconds do not grow when other processes take the cores, wall seconds do.
    """
    c = time.process_time()
    with timed(times, key):
        yield
    times[key[: -len("_s")] + "_cpu_s"] = round(time.process_time() - c, 4)


def seen_accuracy(true: np.ndarray, predicted, seen: np.ndarray) -> float:
    """Share of the ``seen`` query cells whose predicted label (str) is their true label."""
    predicted = np.asarray(predicted, dtype=str)
    return float(np.mean(predicted[seen] == np.asarray(true, dtype=str)[seen])) if seen.any() else float("nan")


def gemm_bound(Q: np.ndarray, X: np.ndarray, threads: int, shapes=((256, 1024), (1024, 1024))) -> tuple[float, tuple[int, int]]:
    """Wall seconds of the float32 matmul ``Q @ X.T`` (the exact search's GEMM), best tile shape.

    Computed tile by tile (``query_block x ref_block`` outputs that stay in cache, one
    BLAS thread per worker, ``threads`` workers on separate query blocks), exactly the
    products the exact search computes, without selecting anything; the output is never
    held whole (n_query x n_ref floats would not fit).
    """
    best, best_shape = np.inf, shapes[0]
    for qb, rb in shapes:
        def run(start: int) -> None:
            Qb = Q[start : start + qb]
            buf = np.empty((len(Qb), rb), dtype=np.float32)
            for rs in range(0, len(X), rb):
                re = min(rs + rb, len(X))
                np.matmul(Qb, X[rs:re].T, out=buf[:, : re - rs])

        starts = list(range(0, len(Q), qb))
        with threadpool_limits(limits=1, user_api="blas"):
            t = time.perf_counter()
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(run, starts))
            elapsed = time.perf_counter() - t
        if elapsed < best:
            best, best_shape = elapsed, (qb, rb)
    return best, best_shape


def run_cellmapper(X, ref_labels, Q, k: int) -> tuple[dict, np.ndarray]:
    """CellMapper's fastest path (module doc): (timings, predicted labels)."""
    import anndata as ad
    from cellmapper import CellMapper

    ref = ad.AnnData(obs=pd.DataFrame({"label": pd.Categorical(np.asarray(ref_labels, dtype=str))},
                                      index=pd.RangeIndex(len(X)).astype(str)), obsm={"X_emb": X})
    qry = ad.AnnData(obs=pd.DataFrame(index=pd.RangeIndex(len(Q)).astype(str)), obsm={"X_emb": Q})
    times: dict = {}
    with RssPeak() as rss, timed(times, "wall_s"):
        with timed(times, "neighbors_s"):
            mapper = CellMapper(qry, ref)
            mapper.compute_neighbors(n_neighbors=k, use_rep="X_emb", knn_method="faiss-cpu", only_yx=True)
        with timed(times, "mapping_s"):
            mapper.compute_mapping_matrix(kernel_method="gauss")
            mapper.map_obs("label")
            predicted = mapper.query.obs["label_pred"].astype(str).to_numpy()
    return {**times, "peak_rss_delta_mb": rss.delta_mb}, predicted


def choose_voter_in_reference(index, X, ref_labels, k: int, n_rows: int, seed: int) -> tuple[str, dict]:
    """The voter of the one-shot path, chosen inside the reference (no query label enters).

    ``n_rows`` seeded reference rows are searched against the index (k + 1 hits, their own
    dropped: :func:`cellquery.index.graph.drop_self_hits`) and each voter of
    :data:`VOTERS_COMPARED` votes for them; the largest MBA wins
    (:func:`cellquery.transfer.tuning.choose_voter`). Returns (voter, {voter: MBA}).
    """
    from cellquery.index.graph import drop_self_hits
    from cellquery.transfer.tuning import choose_voter

    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=min(n_rows, len(X)), replace=False))
    D, I = index.search(X[rows], k + 1)
    D, I = drop_self_hits(D, I, rows)
    return choose_voter(ref_labels, rows, D, I, VOTERS_COMPARED)


def run_cellquery(X, ref_labels, Q, k: int, backend: str, params: dict, seed: int, voter: str = "auto",
                  voter_rows: int = VOTER_ROWS) -> tuple[dict, np.ndarray, object, tuple, str, dict]:
    """Build + (voter choice) + search + vote: (timings, predicted labels, index, (D, I), voter, voter MBAs).

    ``voter="auto"``: :func:`choose_voter_in_reference` on ``voter_rows`` reference rows,
    timed within the wall time (``voter_choice_s``); otherwise the voter named.
    """
    labels = pd.Categorical(np.asarray(ref_labels, dtype=str))
    times: dict = {}
    scores: dict = {}
    with RssPeak() as rss, timed(times, "wall_s"):
        with timed(times, "build_s"):
            index = build_index(backend, X, params, seed=seed)
        if voter == "auto":
            with timed(times, "voter_choice_s"):
                voter, scores = choose_voter_in_reference(index, X, labels, k, voter_rows, seed)
        with timed(times, "search_s"):
            D, I = index.search(Q, k)
        with timed(times, "vote_s"):
            predicted = transfer_labels(labels, D, I, voter=voter, min_fraction=0.0)["prediction"].to_numpy()
    return {**times, "peak_rss_delta_mb": rss.delta_mb}, predicted, index, (D, I), voter, scores


def run_faiss(where: str, X, ref_labels, Q, k: int, params: dict, seed: int, voter: str, row) -> None:
    """The one-shot path and its exact twin on faiss indexes on ``where`` ("cpu" or "gpu"), one ``row`` each.

    ``IVF{nlist},Flat`` with the one-shot index's ``nlist`` / ``nprobe``, then ``Flat``; the
    voter of the ``cellquery`` row. A GPU where faiss sees none: rows with the reason.
    """
    from cellquery import device

    gpu = where == "gpu"
    names = [f"cellquery_faiss_{where}{suffix}" for suffix, _ in FAISS_ONE_SHOT]
    if gpu and device.faiss_gpus() == 0:
        for name in names:
            row(name, {}, gpu=False, reason="faiss.get_num_gpus() == 0 (a CPU build of faiss, or no GPU visible)")
        return
    ivf = {"nlist": params["nlist"], "nprobe": params["nprobe"]}
    n_warm = min(X.shape[0], 4096)  # CUDA context, faiss's GPU memory and kernels: first-use costs, not the path's
    build_index("faiss", X[:n_warm], {"factory": "IVF{nlist},Flat", "nlist": 4, "nprobe": 2, "gpu": gpu},
                seed=seed).search(Q[:256], k)
    for name, (_, factory) in zip(names, FAISS_ONE_SHOT):
        index_params = {"factory": factory, **(ivf if "IVF" in factory else {}), "gpu": gpu}
        times, predicted, index, _, _, _ = run_cellquery(X, ref_labels, Q, k, "faiss", index_params, seed, voter)
        row(name, times, predicted, index="faiss", gpu=index.on_gpu, params=json.dumps(index.params, sort_keys=True),
            voter=voter)


def scale_error(X: np.ndarray, scale: np.ndarray, k: int, threads: int, n_sample: int = 10_000, seed: int = 0) -> dict:
    """Relative error of local scales against exact ones on a seeded sample of reference rows.

    The exact scales of the sample: its k + 1 nearest reference rows by the exact ``gemm``
    search (:func:`cellquery.index.gemm_backend.knn_gemm`), the k-th that is not the row itself.
    """
    from cellquery.index.calibration import floor_scales, scales_from_hits
    from cellquery.index.gemm_backend import knn_gemm

    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=min(n_sample, len(X)), replace=False))
    d, i = knn_gemm(X[rows], [X], k + 1, threads=threads)
    exact = floor_scales(scales_from_hits(d, i, rows, k))
    rel = scale[rows].astype(np.float64) / exact - 1.0
    return {"scale_relerr_mean": round(float(np.mean(rel)), 5), "scale_relerr_p99": round(float(np.percentile(rel, 99)), 5),
            "scale_relerr_max": round(float(np.max(rel)), 5), "scale_exact_fraction": round(float(np.mean(np.abs(rel) < 1e-6)), 4),
            "scale_sample": int(len(rows))}


def run_calibration(index, X, ref_labels, Q, query_labels, k: int, seed: int, p_cutoff: float = 0.05,
                    nprobe: int | None = None, conformal_k: int = 5, threads: int | None = None,
                    scale_sample: int = 10_000, search: str = "leaves", leaves: dict | None = None) -> dict:
    """Calibration seconds (local scales + null; conformal) and calibrated-query throughput.

    ``search="leaves"`` (default): the local scales are each row's k-th other hit in a leaf
    search of the reference against itself
    (:meth:`~cellquery.index.ivf_gemm_backend.IvfGemmIndex.leaf_local_scales`, no hits
    kept; ``leaves``: its ``leaf_size``, ``nprobe``, ``candidates``), and the conformal
    calibration's own-type candidates come from a second leaf search that keeps
    ``n_candidates + 1`` hits per row. ``search="rows"``: one row-by-row search of the
    reference against itself (:func:`cellquery.index.calibration.reference_hits`,
    ``nprobe`` lists per row, default the index's) feeds both.
    ``calibration_s`` is the local scales + the significance null (``calibrate_s``, plus
    the shared search with ``rows``); ``conformal_s`` the conformal calibration with its
    search; each ``..._cpu_s`` is the process's CPU seconds of the same stage. The
    calibrated rule's MBA on seen and unseen query types is given, and the local scales'
    relative error against exact ones on ``scale_sample`` rows (not timed).
    """
    from cellquery.index.calibration import calibrate, reference_hits
    from cellquery.metrics import mean_balanced_accuracy
    from cellquery.transfer import conformal
    from cellquery.transfer.acceptance import exact_distances, significant

    if search not in ("leaves", "rows"):
        raise InputError(f"bench: calibration search must be leaves or rows, got {search!r}")
    if search == "leaves" and nprobe is not None:
        raise InputError("bench: --calibration-nprobe applies to the rows search; the leaf search takes --leaf-nprobe")
    times: dict = {}
    ref_str = np.asarray(ref_labels, dtype=str)
    n_hits = max(k + 1, conformal.N_CANDIDATES + 1)
    leaves = dict(leaves or {}) if search == "leaves" else None
    with RssPeak() as rss:
        if search == "rows":
            with timed_cpu(times, "reference_search_s"):
                hits = reference_hits(index, X, n_hits, nprobe=nprobe)
            with timed_cpu(times, "calibrate_s"):
                calibration = calibrate(index, X, k=k, seed=seed, hits=hits)
        else:
            with timed_cpu(times, "calibrate_s"):
                calibration = calibrate(index, X, k=k, seed=seed, leaves=leaves)
            with timed_cpu(times, "reference_search_s"):
                hits = reference_hits(index, X, n_hits, leaves=leaves)
        with timed_cpu(times, "conformal_calibrate_s"):
            order = index.list_order() if hasattr(index, "list_order") else None
            conformal.calibrate(X, ref_str, search=index.search, k=conformal_k, reference_hits=hits, order=order)
        del hits
        labels = pd.Categorical(ref_str)
        runs = []
        for rep in range(QUERY_REPEATS + 1):  # the same query batch again: the first apart, the median of the others
            with timed_cpu(times, "rejection_query_s"):
                d, i = index.search(Q, k)
                exact = exact_distances(Q, X, i)
                mask = significant(exact, i, calibration, p_cutoff)
                predicted = transfer_labels(labels, exact, i, mask=mask, voter="kernel")
            if rep == 0:
                times["rejection_query_first_s"] = times["rejection_query_s"]
            else:
                runs.append((times["rejection_query_s"], times["rejection_query_cpu_s"]))
        times["rejection_query_runs_s"] = [r[0] for r in runs]
        times["rejection_query_s"], times["rejection_query_cpu_s"] = sorted(runs)[len(runs) // 2]
    parts = {"calibration": ("calibrate", "reference_search") if search == "rows" else ("calibrate",),
             "conformal": ("conformal_calibrate",) if search == "rows" else ("reference_search", "conformal_calibrate")}
    for unit in ("s", "cpu_s"):
        for name, stages in parts.items():
            times[f"{name}_{unit}"] = round(sum(times[f"{part}_{unit}"] for part in stages), 4)
    mba = mean_balanced_accuracy(np.asarray(query_labels, dtype=str), predicted["prediction"].to_numpy().astype(str),
                                 sorted(set(ref_str)))
    return {
        **times, "calibration_search": search, "rejection_cells_per_s": round(len(Q) / times["rejection_query_s"]),
        "rejected_fraction": round(float(np.mean(predicted["prediction"].to_numpy() == "rejected")), 4),
        "calibrated_mba_seen": round(float(mba["positive"]), 4), "calibrated_mba_unseen": round(float(mba["negative"]), 4),
        **({"reference_nprobe": int(index.params["nprobe"] if nprobe is None else nprobe)} if search == "rows" else
           {"leaves": json.dumps(leaves, sort_keys=True)}),
        **(scale_error(X, calibration.scale, k, threads or os.cpu_count() or 1, scale_sample, seed) if scale_sample else {}),
        "peak_rss_delta_mb": rss.delta_mb,
    }


def run(n_ref: int, n_query: int = 10_000, k: int = 30, dim: int = 32, seed: int = 0, against: str | None = "cellmapper",
        exact: bool = True, calibration: bool = False, threads: int | None = None,
        index_params: dict | None = None, calibration_nprobe: int | None = None, scale_sample: int = 10_000,
        calibration_search: str = "leaves", leaves: dict | None = None, voter: str = "auto",
        voter_rows: int = VOTER_ROWS, faiss_device: str | None = None) -> list[dict]:
    """All rows of one reference size (module doc), in the order printed."""
    if faiss_device not in (None, "cpu", "gpu"):
        raise InputError(f"bench: --faiss must be cpu or gpu, got {faiss_device!r}")
    if voter != "auto" and voter not in VOTERS_COMPARED:
        raise InputError(f"bench: voter must be auto or one of {', '.join(VOTERS_COMPARED)}, got {voter!r}")
    check_int(voter_rows, "bench: voter_rows")
    n_ref, n_query, k = (check_int(v, f"bench: {name}") for name, v in (("n_ref", n_ref), ("n_query", n_query), ("k", k)))
    if against not in (None, "cellmapper"):
        raise InputError(f"bench: --against must be cellmapper, got {against!r}")
    threads = threads or os.cpu_count() or 1
    world = make_world(dim, seed)
    X, ref_types = reference_sample(n_ref, dim, seed, world=world)
    Q, query_types = make_queries(n_query, dim, seed, world=world)
    seen = ~np.isin(query_types, world.unseen)
    common = {"n_ref": n_ref, "n_query": n_query, "k": k, "dim": dim, "seed": seed, "threads": threads}
    rows = []

    def row(name: str, times: dict, predicted=None, **extra) -> dict:
        out = {"run": name, **common, **times, **extra}
        if predicted is not None:
            out["accuracy_seen"] = round(seen_accuracy(query_types, predicted, seen), 4)
        if "peak_rss_delta_mb" in times:
            out["rss_method"] = RSS_METHOD
        out["loadavg"] = round(os.getloadavg()[0], 2)
        rows.append(out)
        return out

    backend = ONE_SHOT_INDEX
    params = {"nlist": one_shot_nlist(n_ref), "nprobe": NPROBE, "threads": threads, **(index_params or {})}
    # compile the scan and the voters, load the metrics (first-use costs, not the path's)
    small = build_index(backend, X[: min(n_ref, 4096)], {**params, "nlist": 4}, seed=seed)
    choose_voter_in_reference(small, X[: min(n_ref, 4096)], ref_types[: min(n_ref, 4096)], k, 8, seed)
    times, predicted, index, (D, I), voter, voter_mba = run_cellquery(X, ref_types, Q, k, backend, params, seed, voter,
                                                                      voter_rows)
    labels = pd.Categorical(ref_types.astype(str))
    by_voter = {  # the same hits voted by the project's other voters (not timed)
        voter: round(seen_accuracy(query_types, transfer_labels(labels, D, I, voter=voter, min_fraction=0.0)["prediction"], seen), 4)
        for voter in VOTERS_COMPARED
    }
    mine = row("cellquery", times, predicted, index=backend, params=json.dumps(index.params, sort_keys=True), voter=voter,
               **({"voter_mba_in_reference": {v: round(m, 4) for v, m in voter_mba.items()}, "voter_rows": voter_rows}
                  if voter_mba else {}),
               accuracy_seen_by_voter=by_voter)
    if exact:  # the same voter, not chosen again
        times, predicted, _, _, _, _ = run_cellquery(X, ref_types, Q, k, "gemm", {"threads": threads}, seed, voter)
        exact_row = row("cellquery_exact", times, predicted, index="gemm", voter=voter)
        bound_s, shape = gemm_bound(Q, X, threads)
        row("gemm_bound", {"bound_s": round(bound_s, 6), "gflops": round(2.0 * n_query * n_ref * dim / bound_s / 1e9, 1),
                           "tile": list(shape), "exact_search_s": exact_row["search_s"],
                           "exact_search_over_bound": round(exact_row["search_s"] / bound_s, 3)})
    if faiss_device:
        run_faiss(faiss_device, X, ref_types, Q, k, params, seed, voter, row)
    if against == "cellmapper":
        with threadpool_limits(limits=threads):
            times, predicted = run_cellmapper(X, ref_types, Q, k)
        theirs = row("cellmapper", times, predicted, knn_method="faiss-cpu", kernel="gauss", only_yx=True)
        row("ratio", {"speedup": round(theirs["wall_s"] / mine["wall_s"], 2),
                      "accuracy_cellquery": mine["accuracy_seen"], "accuracy_cellmapper": theirs["accuracy_seen"],
                      "accuracy_difference": round(mine["accuracy_seen"] - theirs["accuracy_seen"], 4)})
    if calibration:
        searches = ("rows", "leaves") if calibration_search == "both" else (calibration_search,)
        done = {}
        for search in searches:
            done[search] = row("calibration" if search == searches[-1] else "calibration_rows",
                               run_calibration(index, X, ref_types, Q, query_types, k, seed,
                                               nprobe=calibration_nprobe if search == "rows" else None, threads=threads,
                                               scale_sample=scale_sample, search=search, leaves=leaves), index=backend)
        if len(done) == 2:  # the leaf search against the row-by-row one, in the same process
            total = {search: r["calibration_s"] + r["conformal_s"] for search, r in done.items()}
            row("calibration_ratio", {"calibration_speedup": round(done["rows"]["calibration_s"] / done["leaves"]["calibration_s"], 2),
                                      "total_speedup": round(total["rows"] / total["leaves"], 2)})
    return rows


def plot_sizes(rows: list[dict], path) -> None:
    """Wall time against reference size, one line per run (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cellquery.plots import save_png

    table = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    shown = {
        "cellmapper": ("CellMapper 0.2.5 (faiss-cpu exact, gauss)", "wall_s", "o-"),
        "cellquery": ("cellquery one-shot (ivf_gemm + kernel vote)", "wall_s", "s-"),
        "cellquery_exact": ("cellquery exact (gemm + kernel vote)", "wall_s", "^-"),
        "gemm_bound": ("GEMM bound of the exact search", "bound_s", "k--"),
    }
    for name, (label, column, style) in shown.items():
        part = table[table["run"] == name].sort_values("n_ref")
        if len(part) and column in part:
            ax.plot(part["n_ref"], part[column], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("reference cells")
    ax.set_ylabel("wall time (s): build + search + vote")
    first = table.iloc[0]
    ax.set_title(f"One-shot label transfer, {first['n_query']:,} queries, k = {first['k']}, {first['dim']}-d", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ref", type=int, help="reference cells (or --sizes)")
    parser.add_argument("--sizes", type=int, nargs="+", help="several reference sizes, one set of runs each")
    parser.add_argument("--n-query", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    parser.add_argument("--against", choices=["cellmapper", "none"], default="cellmapper")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact search and the GEMM bound")
    parser.add_argument("--calibration", action="store_true", help="also time calibration and calibrated queries")
    parser.add_argument("--calibration-search", choices=["leaves", "rows", "both"], default="leaves",
                        help="the calibration's search of the reference against itself: in leaves of the lists "
                             "(default), row by row over the index's lists, or both in turn (rows first, then "
                             "a calibration_ratio row)")
    parser.add_argument("--calibration-nprobe", type=int, default=None,
                        help="rows search: lists each reference row scans (default: the index's nprobe; fewer: "
                             "faster, approximate local scales and conformal candidates)")
    parser.add_argument("--leaf-size", type=int, default=None, help="leaves search: rows per leaf (default 256)")
    parser.add_argument("--leaf-nprobe", type=int, default=None, help="leaves search: leaves each row scans (default 16)")
    parser.add_argument("--leaf-candidates", type=int, default=None,
                        help="leaves search: a row's leaves are chosen among its leaf's nearest (default 3 x leaf nprobe)")
    parser.add_argument("--scale-sample", type=int, default=10_000,
                        help="reference rows whose local scales are checked against exact ones (0: none)")
    parser.add_argument("--nlist", type=int, default=None, help="lists of the one-shot index (default: sqrt(n_ref) / 2)")
    parser.add_argument("--nprobe", type=int, default=None, help=f"lists scanned per query (default {NPROBE})")
    parser.add_argument("--voter", choices=["auto", *VOTERS_COMPARED], default="auto",
                        help="the one-shot path's voter; auto (default): the one with the largest MBA on --voter-rows "
                             "reference rows voting with their own leave-self-out hits, timed in the wall time")
    parser.add_argument("--voter-rows", type=int, default=VOTER_ROWS)
    parser.add_argument("--faiss", choices=["cpu", "gpu"], default=None,
                        help="also run the one-shot path and the exact one on faiss indexes on this device")
    parser.add_argument("--figure", help="PNG of wall time against reference size")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([args.n_ref] if args.n_ref else None)
    if not sizes:
        parser.error("give --n-ref or --sizes")
    index_params = {key: v for key, v in (("nlist", args.nlist), ("nprobe", args.nprobe)) if v is not None}
    rows = []
    for n_ref in sizes:
        for r in run(n_ref, args.n_query, args.k, args.dim, args.seed, None if args.against == "none" else args.against,
                     exact=not args.no_exact, calibration=args.calibration, threads=args.threads, index_params=index_params,
                     calibration_nprobe=args.calibration_nprobe, scale_sample=args.scale_sample,
                     calibration_search=args.calibration_search, voter=args.voter, voter_rows=args.voter_rows,
                     faiss_device=args.faiss,
                     leaves={key: v for key, v in (("leaf_size", args.leaf_size), ("nprobe", args.leaf_nprobe),
                                                   ("candidates", args.leaf_candidates)) if v is not None}):
            print(json.dumps(r), flush=True)
            rows.append(r)
    if args.figure:
        plot_sizes(rows, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
