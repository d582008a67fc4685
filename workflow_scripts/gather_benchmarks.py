"""Gather every rule's benchmark file (wall time, max RSS) into results/benchmarks.tsv."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import write_table
from cellquery.summary import gather_benchmarks

write_table(gather_benchmarks(snakemake.input, root="results/benchmarks"), snakemake.output[0])
