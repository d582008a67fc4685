"""Figures of what M carries: rare-type accuracy per voter (table and figure), held-out genes' transferred expression."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from cellquery.io import read_h5ad, read_obs, read_table, write_table
from cellquery.metrics.rare_types import rare_type_table
from cellquery.plots.expression import plot_expression_transfer
from cellquery.plots.rare_types import plot_rare_types
from cellquery.summary import RUN_COLUMNS
from cellquery.transfer.expression import ExpressionSettings, expression_pairs, load_mapping, scatter_values

inputs, params = snakemake.input, snakemake.params
parts = []
for run, predictions, reference in zip(params.runs, inputs.predictions, inputs.references):
    table = read_table(predictions, required=["true_label", "prediction"])
    labels = read_obs(reference)[params.label_keys[run["group"]]]
    rare = rare_type_table(table["true_label"], table["prediction"], labels)
    parts.append(rare.assign(**{c: run[c] for c in RUN_COLUMNS}, voter=run["voter"]))
columns = RUN_COLUMNS + ["voter", "cell_type", "reference_fraction", "n_query", "accuracy"]
table = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
write_table(table, snakemake.output.table)
plot_rare_types(table, snakemake.output.figure)

panels = []
settings = ExpressionSettings.from_config(params.expression)
for j, run in enumerate(params.scatter_runs):
    reference = read_h5ad(inputs.scatter_reference_expression[j])
    genes, measured, predicted = expression_pairs(
        load_mapping(inputs.scatter_mappings[j]),
        reference,
        read_h5ad(inputs.scatter_query_expression[j]),
        read_table(inputs.scatter_hvg[j], required=["gene"])["gene"],
        reference_cells=read_obs(inputs.scatter_references[j]).index,
        query_cells=read_table(inputs.scatter_predictions[j], required=["cell"])["cell"].astype(str),
        settings=settings,
    )
    panels.append((run["group"], run["reported_as"], scatter_values(genes, measured, predicted, reference)))
plot_expression_transfer(panels, snakemake.output.expression)
