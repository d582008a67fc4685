"""Score one embedding (reference + query): MAP, Seurat alignment, scib-metrics."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from cellquery.io import read_embedding, read_obs, write_table
from cellquery.metrics.integration import use_compilation_cache
from cellquery.scoring import score_embedding
from cellquery.settings import GroupSettings

if snakemake.params.integration:
    use_compilation_cache(snakemake.params.jax_cache)

scores = score_embedding(
    read_embedding(snakemake.input.reference),
    read_embedding(snakemake.input.query),
    reference_obs=read_obs(snakemake.input.reference),
    query_obs=read_obs(snakemake.input.query),
    group=GroupSettings.from_config(snakemake.params.group),
    integration=snakemake.params.integration,
)
write_table(pd.DataFrame({"metric": list(scores), "value": list(scores.values())}), snakemake.output[0])
