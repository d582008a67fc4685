"""Score one run's predictions: one tidy metrics file per combination."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_obs, read_table, write_table
from cellquery.scoring import score_predictions

table = score_predictions(
    read_table(snakemake.input.predictions, required=["cell", "true_label", "prediction"]),
    reference_obs=read_obs(snakemake.input.reference),
    group=snakemake.params.group,
    run={**dict(snakemake.wildcards), "method": snakemake.params.method},
    embedding_scores=read_table(snakemake.input.embedding_scores, required=["metric", "value"]),
)
write_table(table, snakemake.output[0])
