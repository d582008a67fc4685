"""Scatter: index one shard of the reference embedding."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.index.sharded import build_shard
from cellquery.io import atomic_path, read_embedding

spec = snakemake.params.index
index = build_shard(
    read_embedding(snakemake.input.reference),
    spec["shards"],
    int(snakemake.wildcards.shard),
    spec["backend"],
    spec.get("params", {}),
    seed=int(snakemake.wildcards.seed),
)
with atomic_path(snakemake.output.index) as tmp:
    index.save(tmp)
