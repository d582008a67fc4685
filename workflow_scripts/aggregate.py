"""Concatenate every run's metrics into results/summary.tsv."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import write_table
from cellquery.summary import combine_metrics

write_table(combine_metrics(snakemake.input), snakemake.output[0])
