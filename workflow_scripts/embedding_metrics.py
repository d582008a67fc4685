"""Score one embedding (reference + query): MAP, Seurat alignment, scib-metrics."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from cellquery.io import read_embedding, read_obs, write_table
from cellquery.metrics.integration import use_compilation_cache
from cellquery.scoring import score_embedding
from cellquery.settings import GroupSettings
from cellquery.transfer.presence import presence_auroc, query_presence

if snakemake.params.integration:
    use_compilation_cache(snakemake.params.jax_cache)

reference, query = read_embedding(snakemake.input.reference), read_embedding(snakemake.input.query)
reference_obs, query_obs = read_obs(snakemake.input.reference), read_obs(snakemake.input.query)
group = GroupSettings.from_config(snakemake.params.group)
scores = score_embedding(
    reference,
    query,
    reference_obs=reference_obs,
    query_obs=query_obs,
    group=group,
    integration=snakemake.params.integration,
    max_cells=snakemake.params.max_cells,
)
if reference.shape[1] and len(query):  # the query's presence in the reference, a detector of negative types
    scores["query_presence_auroc"] = presence_auroc(
        query_obs[group.label_key],
        set(reference_obs[group.label_key].astype(str)),
        query_presence(reference, query),
    )
write_table(pd.DataFrame({"metric": list(scores), "value": list(scores.values())}), snakemake.output[0])
