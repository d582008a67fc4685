"""Embed reference and query with one method; write embeddings with the cells' obs.

Files written in chunks (preprocess.backed_above_cells) are read by rows for methods with a chunked
path (pca, pca_subsample, pearson_pca, scvi: cellquery.embed.embed_group_backed); other methods read them whole.
"""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.device import request_gpu

# the job's GPU request (config gpu) for torch: used, or a one-line error when no GPU is visible
request_gpu(snakemake.resources.get("gpu", 0), snakemake.rule, "torch")

from cellquery.backed import is_chunked, read_backed
from cellquery.embed import embed_group, embed_group_backed
from cellquery.io import read_h5ad, read_table, write_h5ad

method = snakemake.params.method
genes = read_table(snakemake.input.hvg, required=["gene"])["gene"].tolist()
backed = read_backed(snakemake.input.reference)
result = None
if is_chunked(backed):
    result = embed_group_backed(  # closes both files
        backed,
        read_backed(snakemake.input.query),
        genes,
        embedding=method["embedding"],
        params=method.get("params", {}),
        seed=snakemake.params.random_seed,
    )
    if result is None:
        print(f"embedding {method['embedding']}: no chunked path; reading {snakemake.input.reference} whole", file=sys.stderr)
else:
    backed.close()
if result is not None:
    reference, query = result
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
