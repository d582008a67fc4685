"""Niches of one run of a spatial group: per-cell niches and the niche_ari metric row."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_h5ad, read_table, write_table
from cellquery.spatial.niche_scores import run_niches
from cellquery.spatial.settings import SpatialSettings
from cellquery.summary import metric_rows

run = {**dict(snakemake.wildcards), "reported_as": snakemake.params.reported_as}
table, metrics = run_niches(
    read_table(snakemake.input.predictions, required=["cell", "prediction"]),
    read_h5ad(snakemake.input.query),
    SpatialSettings.from_config(snakemake.params.spatial),
    seed=int(snakemake.wildcards.seed),
)
write_table(table, snakemake.output.niches)
write_table(metric_rows(run, metrics), snakemake.output.metrics)
