"""Transfer annotations from reference hits to query cells (labels, CL ids, fates)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import numpy as np

from cellquery.index.calibration import Calibration
from cellquery.io import read_embedding, read_obs, write_table
from cellquery.settings import GroupSettings, TransferSettings
from cellquery.transfer import Model, predict_table
from cellquery.transfer.conformal import ConformalCalibration
from cellquery.transfer.expression import save_mapping
from cellquery.transfer.tuning import read_tuning

settings = TransferSettings.from_config(snakemake.params.transfer)
inputs = snakemake.input
if settings.needs_tuning:  # `auto` settings: the values chosen by validation inside the reference
    settings = settings.resolved(read_tuning(inputs.tuning)[0])
models = [
    Model(read_embedding(reference), read_embedding(query), np.load(hits)["indices"], Calibration.load(calibration))
    for reference, query, hits, calibration in zip(
        inputs.model_references, inputs.model_queries, inputs.model_hits, inputs.model_calibrations
    )
] if settings.significance or settings.conformal else None
hits = np.load(inputs.hits)
common = dict(
    reference_obs=read_obs(inputs.reference),
    query_obs=read_obs(inputs.query),
    distances=hits["distances"],
    indices=hits["indices"],
    self_distances=np.load(inputs.self_distances),
    group=GroupSettings.from_config(snakemake.params.group),
    settings=settings,
    sweep=snakemake.params.sweep,
)
if "meta_cells" in inputs.keys():  # a reduced index: its meta cells vote with their label distributions
    from cellquery.index.reduce import load_meta_cells
    from cellquery.transfer.meta import meta_predict_table

    meta, fate_keys = load_meta_cells(inputs.meta_cells)
    table, mapping = meta_predict_table(meta=meta, fate_keys=fate_keys, **common)
else:
    table, mapping = predict_table(
        models=models,
        conformal=ConformalCalibration.load(inputs.conformal) if settings.conformal else None,
        return_mapping=True,
        **common,
    )
write_table(table, snakemake.output.predictions)
save_mapping(snakemake.output.mapping, mapping)
