"""Time spatial graph construction (radius graph, 2-hop reach) on one synthetic section of N cells.

``python -m cellquery.bench.spatial_graph --n 10000 100000 1000000 [--neighbours 10]
[--k-hop 2] [--chunk-size 65536] [--threads 1]`` runs each N in its own process and
prints one JSON line per N (fields: :data:`FIELDS`); ``peak_rss_mb`` is that process's
peak resident memory (``ru_maxrss``: points, KD-tree, chunk and output graphs).

Cells are uniform on a square of area N (one cell per unit area), so the radius
``sqrt(neighbours / pi)`` gives ``neighbours`` edges per cell on average at every N
(fewer at the border): time per cell, not graph density, changes with N.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from cellquery.spatial.graph import CHUNK_CELLS, k_hop_reach, radius_graph

FIELDS = ("n_cells", "radius", "chunk_size", "radius_graph_s", "edges", "edges_per_cell", "k_hop", "k_hop_s",
          "k_hop_pairs_per_cell", "graph_mb", "peak_rss_mb")


def measure(n_cells: int, *, neighbours: float = 10.0, k_hop: int = 2, chunk_size: int = CHUNK_CELLS, seed: int = 0) -> dict:
    """Build the radius graph and the k-hop reach of one synthetic section; time, size and peak memory."""
    rng = np.random.default_rng(seed)
    side = math.sqrt(n_cells)
    coords = rng.uniform(0.0, side, (n_cells, 2))
    radius = math.sqrt(neighbours / math.pi)
    start = time.perf_counter()
    graph = radius_graph(coords, radius, chunk_size=chunk_size)
    graph_s = time.perf_counter() - start
    start = time.perf_counter()
    reach = k_hop_reach(graph, k_hop, chunk_size=chunk_size) if k_hop > 0 else None
    k_hop_s = time.perf_counter() - start
    graph_bytes = graph.data.nbytes + graph.indices.nbytes + graph.indptr.nbytes
    return {
        "n_cells": n_cells,
        "radius": round(radius, 4),
        "chunk_size": chunk_size,
        "radius_graph_s": round(graph_s, 3),
        "edges": int(graph.nnz),
        "edges_per_cell": round(graph.nnz / n_cells, 3),
        "k_hop": k_hop,
        "k_hop_s": round(k_hop_s, 3),
        "k_hop_pairs_per_cell": round(reach.nnz / n_cells, 3) if reach is not None else None,
        "graph_mb": round(graph_bytes / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--neighbours", type=float, default=10.0)
    parser.add_argument("--k-hop", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=CHUNK_CELLS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", action="store_true", help="measure the single N in this process")
    args = parser.parse_args(argv)
    if args.one:
        with threadpool_limits(args.threads):
            print(json.dumps(measure(args.n[0], neighbours=args.neighbours, k_hop=args.k_hop, chunk_size=args.chunk_size)))
        return
    for n in args.n:  # one process per N, so peak_rss_mb is that N's own
        cmd = [sys.executable, "-m", "cellquery.bench.spatial_graph", "--one", "--n", str(n), "--neighbours", str(args.neighbours),
               "--k-hop", str(args.k_hop), "--chunk-size", str(args.chunk_size), "--threads", str(args.threads)]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
