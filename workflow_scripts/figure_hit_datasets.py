"""Figure: how evenly each method's hits spread over the reference's datasets or batches (Supp. Fig. 9e)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.novelty import TABLES
from cellquery.plots.hit_datasets import plot_hit_datasets

table = read_table(snakemake.input[0], required=TABLES["hit_datasets"])
plot_hit_datasets(table, snakemake.output[0], controls=snakemake.params.controls, names=snakemake.params.names)
