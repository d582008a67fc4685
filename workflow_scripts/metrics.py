"""Score one run's predictions (one tidy metrics file per combination) and analyse its rejected cells."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np
import pandas as pd

from cellquery.index.calibration import Calibration
from cellquery.io import read_embedding, read_h5ad, read_obs, read_table, write_table
from cellquery.metrics.rare_types import rare_type_accuracy
from cellquery.novelty import analyse_run, run_hits
from cellquery.scoring import score_predictions, sweep_scores
from cellquery.settings import GroupSettings
from cellquery.summary import metric_rows
from cellquery.transfer.embedding_transfer import score_embedding_transfer
from cellquery.transfer.expression import ExpressionSettings, load_mapping, score_expression_transfer
from cellquery.transfer.presence import presence_auroc
from cellquery.transfer.tuning import read_tuning

predictions = read_table(snakemake.input.predictions, required=["cell", "true_label", "prediction", "score"])
reference_obs = read_obs(snakemake.input.reference)
group = GroupSettings.from_config(snakemake.params.group)
run = {**dict(snakemake.wildcards), "reported_as": snakemake.params.reported_as}
table = score_predictions(
    predictions,
    reference_obs=reference_obs,
    group=group,
    run=run,
    # a control has no embedding and so no embedding scores
    embedding_scores=(
        read_table(snakemake.input.embedding_scores, required=["metric", "value"])
        if hasattr(snakemake.input, "embedding_scores")
        else None
    ),
)
if hasattr(snakemake.input, "tuning"):  # a transfer with `auto` settings: what validation chose, and its score
    chosen, validation_mba = read_tuning(snakemake.input.tuning)
    tuned = {f"tuned_{key}": value for key, value in chosen.items()}
    table = pd.concat([table, metric_rows(run, {**tuned, "validation_mba": validation_mba})], ignore_index=True)
# rare types (under 1 % of the reference) and, where the run writes one, its presence score as a detector of
# negative-type cells (cellquery.transfer.presence)
extra = {
    "rare_type_accuracy": rare_type_accuracy(
        predictions["true_label"], predictions["prediction"], reference_obs[group.label_key]
    )
}
if "presence_score" in predictions:
    extra["presence_auroc"] = presence_auroc(
        predictions["true_label"], set(reference_obs[group.label_key].astype(str)), predictions["presence_score"]
    )
# expression of held-out genes transferred through the run's M (a transfer's, or a predictor's own such as CellMapper's)
M = load_mapping(snakemake.input.mapping) if hasattr(snakemake.input, "mapping") else None
if M is not None:  # ... and the project's PCA of the reference (a second latent) transferred the same way
    reference_expression, query_expression = read_h5ad(snakemake.input.reference_expression), read_h5ad(snakemake.input.query_expression)
    hvg = read_table(snakemake.input.hvg, required=["gene"])["gene"]
    cells = dict(reference_cells=reference_obs.index, query_cells=predictions["cell"].astype(str))
    settings = ExpressionSettings.from_config(snakemake.params.expression)
    extra.update(score_expression_transfer(M, reference_expression, query_expression, hvg, **cells, settings=settings)[0])
    extra.update(score_embedding_transfer(M, reference_expression, query_expression, hvg, **cells))
if hasattr(snakemake.input, "index_files"):  # the index's size per reference cell (cellquery.index.reduce)
    from cellquery.index.reduce import index_bytes_per_cell, load_meta_cells

    meta = load_meta_cells(snakemake.input.meta_cells)[0] if hasattr(snakemake.input, "meta_cells") else None
    extra["bytes_per_cell"] = index_bytes_per_cell(snakemake.input.index_files, len(reference_obs), meta)
table = pd.concat([table, metric_rows(run, extra)], ignore_index=True)
sweep = sweep_scores(predictions, reference_obs=reference_obs, group=group, run=run)  # every sweep_<t> column
write_table(table, snakemake.output.metrics)
write_table(sweep, snakemake.output.sweep)

# the rejection analyses: novel types among rejected cells, distance ROC, hits across reference datasets
inputs = snakemake.input
reference, query = read_embedding(inputs.reference), read_embedding(inputs.query)
index_hits = {}
if hasattr(inputs, "hits"):  # an embedding method: its model-0 hits and the index's local scales
    index_hits = dict(indices=np.load(inputs.hits)["indices"], calibration=Calibration.load(inputs.calibration))
hits = run_hits(reference, query, k=snakemake.params.k, **index_hits)
if hits is None:
    print("no embedding: rejected cells are counted, not clustered; no distance ROC, no hit datasets", file=sys.stderr)
tables = analyse_run(
    predictions.copy(),
    reference_obs=reference_obs,
    query_embedding=query,
    hits=hits,
    group=group,
    run=run,
    seed=int(run["seed"]),
)
for name, analysis in tables.items():
    write_table(analysis, getattr(snakemake.output, name))
