"""Scatter: search one shard with the query cells (k hits) and the reference cells (k + 1 hits)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.device import request_gpu

# the job's GPU request (config gpu) for faiss: used, or a one-line error when no GPU is visible
request_gpu(snakemake.resources.get("gpu", 0), snakemake.rule, "faiss")

import numpy as np

from cellquery.index import load_index
from cellquery.index.sharded import search_shard
from cellquery.io import atomic_path, read_embedding

hits = search_shard(
    load_index(snakemake.input.index),
    read_embedding(snakemake.input.query),
    read_embedding(snakemake.input.reference),
    snakemake.params.k,
)
with atomic_path(snakemake.output.hits) as tmp:
    np.savez(tmp, **hits)
