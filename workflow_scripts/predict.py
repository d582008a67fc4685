"""Run one predictor method on a group: predictions, embeddings and its own timings."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.device import request_gpu

# the job's GPU request (config gpu) for torch: used, or a one-line error when no GPU is visible
request_gpu(snakemake.resources.get("gpu", 0), snakemake.rule, "torch")

from cellquery.io import read_h5ad, read_table, write_h5ad, write_table
from cellquery.settings import GroupSettings
from cellquery.predictors import run_predictor

method = snakemake.params.method
predictions, reference, query, timings = run_predictor(
    read_h5ad(snakemake.input.reference),
    read_h5ad(snakemake.input.query),
    read_table(snakemake.input.hvg, required=["gene"])["gene"].tolist(),
    predictor=method["predictor"],
    params=method.get("params", {}),
    group=GroupSettings.from_config(snakemake.params.group),
    seed=int(snakemake.wildcards.seed),
    sweep=snakemake.params.sweep,
)
write_table(predictions, snakemake.output.predictions)
write_table(timings, snakemake.output.timings)
write_h5ad(reference, snakemake.output.reference)
write_h5ad(query, snakemake.output.query)
