"""Figure: MBA on positive types, negative types and both, one box per method (Fig. 2c of the Cell BLAST paper)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.plots.mba_box import plot_mba_box

plot_mba_box(read_table(snakemake.input[0]), snakemake.output[0], controls=snakemake.params.controls)
