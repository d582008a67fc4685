"""Record that a method was skipped on a group, with the reason, as a summary row."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import write_table
from cellquery.summary import skipped_rows

run = {**dict(snakemake.wildcards), "reported_as": snakemake.params.reported_as}
write_table(skipped_rows(run, snakemake.params.reason), snakemake.output[0])
