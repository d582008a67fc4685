"""Meta cells at scale: MBA+/- and bytes per reference cell of the whole and each reduced reference."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.bench.meta_cells import MetaCellSettings, measure
from cellquery.io import write_table

table = measure(MetaCellSettings.from_config(snakemake.params.scale))
print(table.to_string(), file=sys.stderr)
write_table(table, snakemake.output[0])
