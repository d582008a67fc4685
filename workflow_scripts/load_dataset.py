"""Load one dataset from its declared source into results/data/{dataset}.h5ad, after checking all of it.

The whole dataset is written (``split`` and ``exclude`` are drawn per seed by
the preprocess step); nothing is written when the check finds a problem. An
h5ad file with more cells than preprocess.backed_above_cells is copied with
its matrix untouched (cellquery.data.stream), never read into memory.
"""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.backed import BACKED_ABOVE_CELLS
from cellquery.settings import GroupSettings
from cellquery.validate import Usage, write_checked_dataset

write_checked_dataset(
    snakemake.wildcards.dataset,
    snakemake.params.spec,
    snakemake.output[0],
    [Usage(group, GroupSettings.from_config(spec)) for group, spec in snakemake.params.groups.items()],
    stream_above=BACKED_ABOVE_CELLS if snakemake.params.backed_above_cells is None else snakemake.params.backed_above_cells,
    cache_dir="resources",
    log=sys.stderr,
)
