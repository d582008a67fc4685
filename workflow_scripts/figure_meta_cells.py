"""Meta-cell figure: MBA+/- against bytes per reference cell."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.bench.meta_cells import COLUMNS, plot_meta_cells
from cellquery.io import read_table

plot_meta_cells(read_table(snakemake.input[0], required=COLUMNS), snakemake.output[0])
