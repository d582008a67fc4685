"""Choose a transfer's `auto` settings by validation inside the reference (its model-0 embedding only)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_embedding, read_obs, write_table
from cellquery.settings import GroupSettings, TransferSettings
from cellquery.transfer.tuning import tune_transfer

group = GroupSettings.from_config(snakemake.params.group)
obs = read_obs(snakemake.input.reference)
result = tune_transfer(
    read_embedding(snakemake.input.reference),
    obs[group.label_key].astype(str).to_numpy(),
    obs[group.batch_key].astype(str).to_numpy() if group.batch_key else None,
    TransferSettings.from_config(snakemake.params.transfer),
    k=snakemake.params.k,
    seed=int(snakemake.wildcards.seed),
)
print(f"{len(result.folds)} folds; chosen {result.chosen}, validation MBA {result.validation_mba:.4f}", file=sys.stderr)
if result.n_tied > 1:
    print(f"{result.n_tied} grid points tie at the best validation MBA; the first in grid order is chosen", file=sys.stderr)
write_table(result.table(), snakemake.output.tuning)
