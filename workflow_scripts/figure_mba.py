"""Figure: MBA on positive vs negative query types, one point per run (method, index, transfer, seed)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.plots.mba import plot_mba_pos_neg

plot_mba_pos_neg(read_table(snakemake.input[0]), snakemake.output[0])
