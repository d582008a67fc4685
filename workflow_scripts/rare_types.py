"""Per-type accuracy on rare types (under 1 % of the reference) of every voter run: table and figure."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from cellquery.io import read_obs, read_table, write_table
from cellquery.metrics.rare_types import rare_type_table
from cellquery.plots.rare_types import plot_rare_types
from cellquery.summary import RUN_COLUMNS

parts = []
for run, predictions, reference in zip(snakemake.params.runs, snakemake.input.predictions, snakemake.input.references):
    table = read_table(predictions, required=["true_label", "prediction"])
    labels = read_obs(reference)[snakemake.params.label_keys[run["group"]]]
    rare = rare_type_table(table["true_label"], table["prediction"], labels)
    parts.append(rare.assign(**{c: run[c] for c in RUN_COLUMNS}, voter=run["voter"]))
columns = RUN_COLUMNS + ["voter", "cell_type", "reference_fraction", "n_query", "accuracy"]
table = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
write_table(table, snakemake.output.table)
plot_rare_types(table, snakemake.output.figure)
