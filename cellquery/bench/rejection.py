"""Throughput and rejection of calibrated transfer against plain voting, on synthetic embeddings.

``python -m cellquery.bench.rejection --n-ref 100000 --n-query 10000`` prints
one JSON line: the time to calibrate the index (local scales + null), query
throughput (cells/s) of plain majority voting with the distance cut-off and of
the calibrated P-value rule (search + exact hit distances + significance mask (P < cut-off) + vote),
both on the same index, and the MBA each gets on positive (seen) and negative
(unseen) query types. Timings are wall seconds in this process.
"""

from __future__ import annotations

import argparse
import json
import time

from cellquery.bench.memory import peak_rss_mb
from cellquery.bench.synthetic import make_queries, make_world, reference_sample
from cellquery.index import build_index
from cellquery.metrics import mean_balanced_accuracy
from cellquery.index.calibration import calibrate, reference_self_distances
from cellquery.transfer import transfer_labels
from cellquery.transfer.acceptance import distance_cutoff, exact_distances, significant

INDEXES = {
    "flat": ("faiss", {"factory": "Flat"}),
    "ivfflat": ("faiss", {"factory": "IVF{nlist},Flat", "nlist": "auto", "nprobe": 16}),
}


def run(n_ref: int, n_query: int, dim: int = 32, k: int = 10, index: str = "flat", p_cutoff: float = 0.05, shrinkage: float = 0.0, seed: int = 0) -> dict:
    world = make_world(dim, seed)
    reference, ref_types = reference_sample(n_ref, dim, seed, world=world)
    query, query_types = make_queries(n_query, dim, seed, world=world)
    ref_labels, query_labels = ref_types.astype(str), query_types.astype(str)
    backend, params = INDEXES[index]

    t0 = time.perf_counter()
    idx = build_index(backend, reference, params, seed=seed)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cutoff = distance_cutoff(reference_self_distances(idx, reference, k=k, seed=seed), 0.95)
    cutoff_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    calibration = calibrate(idx, reference, k=k, seed=seed)
    calibrate_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    d, i = idx.search(query, k)
    plain = transfer_labels(ref_labels, d, i, max_distance=cutoff)
    plain_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    calibration = calibration.shrunk(shrinkage)  # part of every transfer job, so it is timed with the query
    d, i = idx.search(query, k)
    exact = exact_distances(query, reference, i)
    mask = significant(exact, i, calibration, p_cutoff)
    calibrated = transfer_labels(ref_labels, exact, i, mask=mask)
    calibrated_s = time.perf_counter() - t0

    seen = sorted(set(ref_labels))
    plain_mba = mean_balanced_accuracy(query_labels, plain.prediction.to_numpy(), seen)
    calibrated_mba = mean_balanced_accuracy(query_labels, calibrated.prediction.to_numpy(), seen)
    return {
        "index": index, "n_ref": n_ref, "n_query": n_query, "dim": dim, "k": k,
        "build_s": round(build_s, 3), "cutoff_s": round(cutoff_s, 3), "calibrate_s": round(calibrate_s, 3),
        "plain_query_s": round(plain_s, 3), "calibrated_query_s": round(calibrated_s, 3),
        "plain_cells_per_s": round(n_query / plain_s), "calibrated_cells_per_s": round(n_query / calibrated_s),
        "plain_mba_positive": round(plain_mba["positive"], 4), "plain_mba_negative": round(plain_mba["negative"], 4),
        "calibrated_mba_positive": round(calibrated_mba["positive"], 4),
        "calibrated_mba_negative": round(calibrated_mba["negative"], 4),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ref", type=int, required=True)
    parser.add_argument("--n-query", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--index", choices=sorted(INDEXES), default="flat")
    parser.add_argument("--p-cutoff", type=float, default=0.05)
    parser.add_argument("--shrinkage", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.n_ref, args.n_query, args.dim, args.k, args.index, args.p_cutoff, args.shrinkage, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
