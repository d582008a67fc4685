"""Fig. 2d by method: query time (mean +/- sd over repeats) against reference size, and its summary table."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.bench.methods_scale import COLUMNS, MethodsScaleSettings, plot_query_time, summarise
from cellquery.io import read_table, write_table

n_query = snakemake.params.n_query or MethodsScaleSettings.__dataclass_fields__["n_query"].default
summary = summarise(read_table(snakemake.input[0], required=COLUMNS), n_query)
print(summary.to_string(), file=sys.stderr)
write_table(summary, snakemake.output.summary)
plot_query_time(summary, snakemake.output.figure, n_query)
