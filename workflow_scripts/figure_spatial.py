"""Figure: the first section of each spatial group by true type, each run's predicted type and rejected cells."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_h5ad, read_table
from cellquery.plots.spatial import plot_spatial_sections

rows = {}
for path, (group, name) in zip(snakemake.input.predictions, snakemake.params.runs):
    if group not in rows:
        query = read_h5ad(snakemake.input.queries[list(snakemake.params.groups).index(group)])
        key = snakemake.params.section_keys[group]
        section = str(query.obs[key].astype(str).iloc[0])
        cells = query.obs_names[query.obs[key].astype(str) == section]
        rows[group] = {"group": group, "section": section, "cells": cells, "coords": query[cells].obsm["spatial"][:, :2],
                       "truth": None, "runs": {}}
    predictions = read_table(path, required=["cell", "true_label", "prediction"]).set_index("cell").loc[rows[group]["cells"]]
    rows[group]["truth"] = predictions["true_label"].to_numpy()
    rows[group]["runs"][name] = predictions["prediction"].to_numpy()
plot_spatial_sections(list(rows.values()), snakemake.output[0])
