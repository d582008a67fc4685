"""Conformal calibration of a reference index: every reference cell's distances to its nearest own-type cells outside its batch."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.index import load_index
from cellquery.index.sharded import shard_rows, sharded_search
from cellquery.io import atomic_path, read_embedding, read_obs
from cellquery.settings import GroupSettings
from cellquery.transfer.conformal import HeldOutFold, calibrate, calibrate_held_out, in_sample_rows

group = GroupSettings.from_config(snakemake.params.group)
reference = read_embedding(snakemake.input.reference)
obs = read_obs(snakemake.input.reference)
labels = obs[group.label_key].to_numpy()
n_shards = len(snakemake.input.indexes)
offsets = [shard_rows(len(reference), n_shards, s)[0] for s in range(n_shards)]
# held-out folds through the refitted embedding (config conformal_folds) replace the in-sample
# rows, so only the rows no fold replaces are searched
folds = [HeldOutFold.load(path) for path in snakemake.input.get("folds", [])]
calibration = calibrate(
    reference,
    labels,
    obs[group.batch_key].to_numpy() if group.batch_key else None,
    search=sharded_search([load_index(path) for path in snakemake.input.indexes], offsets),
    k=snakemake.params.k,
    rows=in_sample_rows(labels, folds),
)
calibration = calibrate_held_out(calibration, folds, snakemake.params.k)
with atomic_path(snakemake.output.conformal) as tmp:
    calibration.save(tmp)
