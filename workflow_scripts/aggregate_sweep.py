"""Concatenate every run's rejection sweep into results/rejection_sweep.tsv."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import write_table
from cellquery.summary import combine_sweeps

write_table(combine_sweeps(snakemake.input), snakemake.output[0])
