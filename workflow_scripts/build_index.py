"""Build a nearest-neighbour index of the reference; sample its self-distances; calibrate P-values."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np

from cellquery.index import build_index
from cellquery.io import atomic_path, read_embedding
from cellquery.transfer.calibration import calibrate
from cellquery.transfer.cutoff import reference_self_distances

spec = snakemake.params.index
seed = int(snakemake.wildcards.seed)
embedding = read_embedding(snakemake.input.reference)
index = build_index(spec["backend"], embedding, spec.get("params", {}), seed=seed)
self_distances = reference_self_distances(index, embedding, k=snakemake.params.k, seed=seed)
calibration = calibrate(index, embedding, k=snakemake.params.k, seed=seed)
with atomic_path(snakemake.output.index) as tmp:
    index.save(tmp)
with atomic_path(snakemake.output.self_distances) as tmp:
    np.save(tmp, self_distances)
with atomic_path(snakemake.output.calibration) as tmp:
    calibration.save(tmp)
