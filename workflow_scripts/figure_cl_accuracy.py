"""Figure: CL accuracy and CL MBA per method."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.plots.cl_accuracy import plot_cl_accuracy

plot_cl_accuracy(read_table(snakemake.input[0]), snakemake.output[0])
