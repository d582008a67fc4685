"""Search the query embedding against the reference index: k hits per query cell."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np

from cellquery.index import load_index
from cellquery.io import atomic_path, read_embedding

index = load_index(snakemake.input.index)
distances, indices = index.search(read_embedding(snakemake.input.query), snakemake.params.k)
with atomic_path(snakemake.output.hits) as tmp:
    np.savez(tmp, distances=distances, indices=indices)
