"""Figure: accuracy and MBA of the spatial comparison's four embeddings (a)-(d) on each spatial group, over seeds."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.plots.spatial_methods import plot_spatial_methods, plugin_arms

plot_spatial_methods(read_table(snakemake.input[0]), snakemake.output[0], plugin_arms(snakemake.params.plugins),
                     snakemake.params.groups)
