"""Figure: Jensen-Shannon divergence of fate probabilities per method."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.plots.jsd import plot_jsd

plot_jsd(read_table(snakemake.input[0]), snakemake.output[0])
