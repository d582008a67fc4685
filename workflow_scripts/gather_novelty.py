"""Concatenate every run's table of one kind (novel types, distance ROC AUCs, hit datasets) into results/."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import write_table
from cellquery.novelty import gather

write_table(gather(snakemake.input, snakemake.params.table), snakemake.output[0])
