"""Transfer annotations from reference hits to query cells (labels, CL ids, fates)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np

from cellquery.io import read_embedding, read_obs, write_table
from cellquery.transfer import predict_table
from cellquery.transfer.calibration import Calibration
from cellquery.transfer.consensus import Model

# models for significance: the run's own, then any consensus models, as (reference, query, hits, calibration)
paths = list(snakemake.input.models)
models = [
    Model(read_embedding(r), read_embedding(q), np.load(h)["indices"], Calibration.load(c))
    for r, q, h, c in zip(paths[0::4], paths[1::4], paths[2::4], paths[3::4])
]
hits = np.load(snakemake.input.hits)
table = predict_table(
    reference_obs=read_obs(snakemake.input.reference),
    query_obs=read_obs(snakemake.input.query),
    distances=hits["distances"],
    indices=hits["indices"],
    self_distances=np.load(snakemake.input.self_distances),
    group=snakemake.params.group,
    settings=snakemake.params.transfer,
    models=models,
    sweep=snakemake.params.sweep,
)
write_table(table, snakemake.output.predictions)
