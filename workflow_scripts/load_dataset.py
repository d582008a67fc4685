"""Load one dataset from its declared source into results/data/{dataset}.h5ad (the whole source).

``split`` and ``exclude`` are drawn per seed by the preprocess step.
"""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.data import load_dataset
from cellquery.io import write_h5ad

adata = load_dataset(snakemake.wildcards.dataset, snakemake.params.spec, cache_dir="resources")
write_h5ad(adata, snakemake.output[0])
