"""Choose highly variable genes on the reference only (per batch, >= 50 % of batches)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.hvg import select_hvg
from cellquery.io import read_h5ad, write_table

batch_keys = snakemake.params.group.get("batch_keys", [])
table = select_hvg(
    read_h5ad(snakemake.input.reference),
    batch_key=batch_keys[0] if batch_keys else None,
    **snakemake.params.settings,
)
write_table(table, snakemake.output[0])
