"""Gather: the reference's own k-NN graph from every shard's reference hits, merged exactly (cellquery.index.graph)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np

from cellquery.errors import InputError
from cellquery.index.graph import reference_knn_graph
from cellquery.index.sharded import shard_rows
from cellquery.io import atomic_path, read_obs

if snakemake.params.reduced:
    raise InputError(f"reference_graph: index {snakemake.wildcards.index} searches meta cells, not reference cells; use an unreduced index")
n = len(read_obs(snakemake.input.reference))
n_shards = len(snakemake.input.hits)
offsets = [shard_rows(n, n_shards, s)[0] for s in range(n_shards)]
parts = [dict(np.load(path)) for path in snakemake.input.hits]
k = min(snakemake.params.k, n - 1)
distances, indices = reference_knn_graph(parts, offsets, k)
with atomic_path(snakemake.output.graph) as tmp:
    np.savez(tmp, distances=distances, indices=indices)
