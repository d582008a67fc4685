"""Transfer annotations from reference hits to query cells (labels, CL ids, fates)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np

from cellquery.io import read_obs, write_table
from cellquery.transfer import predict_table

hits = np.load(snakemake.input.hits)
table = predict_table(
    reference_obs=read_obs(snakemake.input.reference),
    query_obs=read_obs(snakemake.input.query),
    distances=hits["distances"],
    indices=hits["indices"],
    self_distances=np.load(snakemake.input.self_distances),
    group=snakemake.params.group,
    settings=snakemake.params.transfer,
)
write_table(table, snakemake.output.predictions)
