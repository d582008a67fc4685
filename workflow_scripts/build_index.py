"""Scatter: index one shard of the reference embedding (the whole reference when the index has one shard)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.device import request_gpu

# the job's GPU request (config gpu) for faiss: used, or a one-line error when no GPU is visible
request_gpu(snakemake.resources.get("gpu", 0), snakemake.rule, "faiss")

from cellquery.index.sharded import build_shard
from cellquery.io import atomic_path, read_embedding

spec = snakemake.params.index
if str(snakemake.input.reference).endswith(".npz"):  # a reduced index: its meta cells' vectors
    from cellquery.index.reduce import load_meta_cells

    vectors = load_meta_cells(snakemake.input.reference)[0].vectors
else:
    vectors = read_embedding(snakemake.input.reference)
index = build_shard(
    vectors,
    snakemake.params.shards,
    int(snakemake.wildcards.shard),
    spec["backend"],
    spec.get("params", {}),
    seed=snakemake.params.random_seed,
)
with atomic_path(snakemake.output.index) as tmp:
    index.save(tmp)
