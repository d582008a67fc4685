"""One held-out fold of a conformal calibration: the embedding refitted without the fold, the fold embedded as its query."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.device import request_gpu

request_gpu(snakemake.resources.get("gpu", 0), snakemake.rule, "torch")

from cellquery.io import atomic_path, read_h5ad, read_table
from cellquery.settings import GroupSettings
from cellquery.transfer.conformal import embed_fold

group = GroupSettings.from_config(snakemake.params.group)
method = snakemake.params.method
reference = read_h5ad(snakemake.input.reference)
fold = embed_fold(
    reference,
    read_table(snakemake.input.hvg, required=["gene"])["gene"].tolist(),
    label_key=group.label_key,
    batch_key=group.batch_key,
    n_folds=snakemake.params.n_folds,
    fold=int(snakemake.wildcards.fold),
    embedding=method["embedding"],
    params=method.get("params", {}),
    seed=snakemake.params.random_seed,
)
with atomic_path(snakemake.output.fold) as tmp:
    fold.save(tmp)
