"""Scale benchmark: gather the per-job tables into results/scale/scale.tsv."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.bench.figures import gather_scale
from cellquery.io import write_table

write_table(gather_scale(snakemake.input), snakemake.output[0])
