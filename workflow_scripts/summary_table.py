"""Table for people: each run's metrics (mean ± sd over seeds), wall time and peak memory, as TSV and markdown.

Inputs ``summary`` (results/summary.tsv) and ``benchmarks`` (results/benchmarks.tsv);
outputs ``table`` (TSV, numbers) and ``markdown``; params ``transfers`` (the
config's transfers: how many models each combines, for the wall time).
"""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import atomic_path, read_table, write_table
from cellquery.settings import TransferSettings
from cellquery.summary import BENCHMARK_COLUMNS, SUMMARY_COLUMNS, format_summary_table, summary_table

n_models = {name: TransferSettings.from_config(spec).n_models for name, spec in snakemake.params.transfers.items()}
table = summary_table(
    read_table(snakemake.input.summary, required=SUMMARY_COLUMNS),
    read_table(snakemake.input.benchmarks, required=BENCHMARK_COLUMNS),
    n_models=n_models,
)
write_table(table, snakemake.output.table)
with atomic_path(snakemake.output.markdown) as tmp:
    tmp.write_text(format_summary_table(table))
