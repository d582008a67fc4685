"""Choose highly variable genes on the reference only (per batch, >= 50 % of batches)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.hvg import select_hvg
from cellquery.io import read_h5ad, write_table
from cellquery.settings import GroupSettings

table = select_hvg(
    read_h5ad(snakemake.input.reference),
    batch_key=GroupSettings.from_config(snakemake.params.group).batch_key,
    **snakemake.params.settings,
)
write_table(table, snakemake.output[0])
