"""Figure: positive vs negative MBA as the rejection threshold is swept (Cell BLAST paper, Supplementary Fig. 9c)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.plots.rejection_sweep import plot_rejection_sweep

plot_rejection_sweep(read_table(snakemake.input[0], required=["group", "method", "index", "transfer", "threshold", "mba_positive", "mba_negative"]), snakemake.output[0], names=snakemake.params.names)
