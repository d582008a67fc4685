"""Embed reference and query with one method; write embeddings with the cells' obs.

Method pca on files written in chunks (preprocess.backed_above_cells) reads them backed (cellquery.backed).
"""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.device import request_gpu

# the job's GPU request (config gpu) for torch: used, or a one-line error when no GPU is visible
request_gpu(snakemake.resources.get("gpu", 0), snakemake.rule, "torch")

from cellquery.backed import embed_pca_backed, is_chunked, read_backed
from cellquery.embed import embed_group
from cellquery.io import read_h5ad, read_table, write_h5ad

method = snakemake.params.method
genes = read_table(snakemake.input.hvg, required=["gene"])["gene"].tolist()
backed = read_backed(snakemake.input.reference)
if is_chunked(backed) and method["embedding"] == "pca":
    reference, query = embed_pca_backed(
        backed,
        read_backed(snakemake.input.query),
        genes,
        params=method.get("params", {}),
        seed=snakemake.params.random_seed,
    )
else:
    reference, query = embed_group(
        read_h5ad(snakemake.input.reference),
        read_h5ad(snakemake.input.query),
        genes,
        embedding=method["embedding"],
        params=method.get("params", {}),
        seed=snakemake.params.random_seed,
    )
write_h5ad(reference, snakemake.output.reference)
write_h5ad(query, snakemake.output.query)
