"""Figure: MAP vs Seurat alignment score per method."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.plots.map_alignment import plot_map_vs_alignment

plot_map_vs_alignment(read_table(snakemake.input[0]), snakemake.output[0])
