"""Gather: exact top-k merge of the shards' hits; the reference's calibration and leave-one-out distances."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np

from cellquery.index.sharded import merge_shards, shard_rows
from cellquery.io import atomic_path, read_embedding

reference = read_embedding(snakemake.input.reference)
n_shards = len(snakemake.input.hits)
offsets = [shard_rows(len(reference), n_shards, s)[0] for s in range(n_shards)]
parts = [dict(np.load(path)) for path in snakemake.input.hits]
distances, indices, self_distances, calibration = merge_shards(
    parts, offsets, reference, k=snakemake.params.k, seed=snakemake.params.random_seed
)
if snakemake.params.reduced:
    # hits are meta cells: the self distances are reference cells' distances to their nearest meta cells
    from cellquery.index.reduce import reduced_self_distances

    k = distances.shape[1]
    self_distances = reduced_self_distances(parts[0]["reference_distances"], k, seed=snakemake.params.random_seed)
with atomic_path(snakemake.output.hits) as tmp:
    np.savez(tmp, distances=distances, indices=indices)
with atomic_path(snakemake.output.self_distances) as tmp:
    np.save(tmp, self_distances)
with atomic_path(snakemake.output.calibration) as tmp:
    calibration.save(tmp)
