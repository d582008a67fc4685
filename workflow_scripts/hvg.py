"""Choose highly variable genes on the reference only (per batch, >= 50 % of batches).

A reference written in chunks (preprocess.backed_above_cells) is read backed (cellquery.backed).
"""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.backed import is_chunked, read_backed, select_hvg_backed
from cellquery.hvg import select_hvg
from cellquery.io import read_h5ad, write_table
from cellquery.settings import GroupSettings

batch_key = GroupSettings.from_config(snakemake.params.group).batch_key
backed = read_backed(snakemake.input.reference)
if is_chunked(backed):
    table = select_hvg_backed(backed, batch_key=batch_key, chunk_cells=backed.uns["chunked"]["chunk_cells"], **snakemake.params.settings)
else:
    table = select_hvg(read_h5ad(snakemake.input.reference), batch_key=batch_key, **snakemake.params.settings)
write_table(table, snakemake.output[0])
