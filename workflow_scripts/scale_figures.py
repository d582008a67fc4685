"""Scale benchmark figures: query time vs reference size; recall vs queries/s."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.bench.figures import check_scale_table, plot_query_time_vs_size, plot_recall_vs_qps
from cellquery.io import read_table

table = read_table(snakemake.input[0])
check_scale_table(table, snakemake.input[0])
plot_query_time_vs_size(table, snakemake.output.time)
plot_recall_vs_qps(table, snakemake.output.pareto)
