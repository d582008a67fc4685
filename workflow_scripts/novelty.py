"""One run's rejection analyses: novel types among rejected cells, distance ROC, hits across reference datasets."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np

from cellquery.index.calibration import Calibration
from cellquery.io import read_embedding, read_obs, read_table, write_table
from cellquery.novelty import analyse_run, run_hits
from cellquery.settings import GroupSettings

inputs = snakemake.input
reference, query = read_embedding(inputs.reference), read_embedding(inputs.query)
index_hits = {}
if hasattr(inputs, "hits"):  # an embedding method: its model-0 hits and the index's local scales
    index_hits = dict(indices=np.load(inputs.hits)["indices"], calibration=Calibration.load(inputs.calibration))
hits = run_hits(reference, query, k=snakemake.params.k, **index_hits)
if hits is None:
    print("no embedding: rejected cells are counted, not clustered; no distance ROC, no hit datasets", file=sys.stderr)
tables = analyse_run(
    read_table(inputs.predictions, required=["cell", "true_label", "prediction"]),
    reference_obs=read_obs(inputs.reference),
    query_embedding=query,
    hits=hits,
    group=GroupSettings.from_config(snakemake.params.group),
    run={**dict(snakemake.wildcards), "reported_as": snakemake.params.reported_as},
    seed=int(snakemake.wildcards.seed),
)
for name, table in tables.items():
    write_table(table, snakemake.output[name])
