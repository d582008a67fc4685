"""Load one dataset from its declared source into results/data/{dataset}.h5ad, after checking all of it.

The whole dataset is written (``split`` and ``exclude`` are drawn per seed by
the preprocess step); nothing is written when the check finds a problem.
"""
import sys

sys.stderr = open(snakemake.log[0], "w")

import scipy.sparse as sp

from cellquery.io import write_h5ad
from cellquery.settings import GroupSettings
from cellquery.validate import Usage, load_checked_dataset

adata = load_checked_dataset(
    snakemake.wildcards.dataset,
    snakemake.params.spec,
    [Usage(group, GroupSettings.from_config(spec)) for group, spec in snakemake.params.groups.items()],
    cache_dir="resources",
    log=sys.stderr,
)
if sp.issparse(adata.X) and adata.X.format == "csc":  # later steps read rows in chunks
    adata.X = adata.X.tocsr()
write_h5ad(adata, snakemake.output[0])
