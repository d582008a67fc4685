"""Seed {seed} of a group: its split/exclude of each dataset, combined, QC'd, normalised and resampled.

A group with more cells than preprocess.backed_above_cells is read backed and written in chunks
(cellquery.backed); smaller groups are read whole.
"""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.backed import BACKED_ABOVE_CELLS, CHUNK_CELLS, count_cells, prepare_group_backed, read_backed
from cellquery.data.sources import describe_source, select_cells, selected_rows
from cellquery.io import read_h5ad, write_h5ad
from cellquery.preprocess import prepare_group
from cellquery.resample import resample_group
from cellquery.settings import GroupSettings
from cellquery.spatial.settings import SpatialSettings

spec = snakemake.params.group
specs = snakemake.params.datasets
seed = int(snakemake.wildcards.seed)
group = GroupSettings.from_config(spec)


def side(paths, names):
    """The cells seed `seed` uses of each dataset of one side, and how messages name the datasets."""
    wheres = [describe_source(name, specs[name]) for name in names]
    cells = [select_cells(read_h5ad(path), specs[name], seed=seed, where=where) for path, name, where in zip(paths, names, wheres)]
    return cells, wheres


settings = dict(snakemake.params.settings)
backed_above_cells = settings.pop("backed_above_cells", BACKED_ABOVE_CELLS)
chunk_cells = settings.pop("chunk_cells", CHUNK_CELLS)
spatial = SpatialSettings.from_config(spec.get("spatial"))
keys = dict(
    label_key=group.label_key,
    batch_keys=list(group.batch_keys),
    ontology_key=group.ontology_key,
    continuous_keys=list(group.continuous_keys),
)


def backed_side(paths, names):
    """Each dataset of one side opened backed, with the mask of the cells seed `seed` uses."""
    wheres = [describe_source(name, specs[name]) for name in names]
    parts = []
    for path, name, where in zip(paths, names, wheres):
        adata = read_backed(path, obsm=True)
        parts.append((adata, selected_rows(adata.obs, specs[name], seed=seed, where=where)))
    return parts, wheres


if sum(count_cells(p) for p in [*snakemake.input.reference, *snakemake.input.query]) > backed_above_cells:
    reference, reference_sources = backed_side(snakemake.input.reference, spec["reference"])
    query, query_sources = backed_side(snakemake.input.query, spec["query"])
    prepare_group_backed(
        reference,
        query,
        out_reference=snakemake.output.reference,
        out_query=snakemake.output.query,
        reference_sources=reference_sources,
        query_sources=query_sources,
        seed=seed,
        reference_fraction=group.reference_fraction,
        query_fraction=group.query_fraction,
        uns={"spatial": spatial.as_uns()} if spatial is not None else None,
        chunk_cells=chunk_cells,
        **keys,
        **settings,
    )
else:
    reference, reference_sources = side(snakemake.input.reference, spec["reference"])
    query, query_sources = side(snakemake.input.query, spec["query"])
    reference, query = prepare_group(
        reference,
        query,
        reference_sources=reference_sources,
        query_sources=query_sources,
        **keys,
        **settings,
    )
    reference, query = resample_group(
        reference,
        query,
        label_key=group.label_key,
        seed=seed,
        reference_fraction=group.reference_fraction,
        query_fraction=group.query_fraction,
    )
    if spatial is not None:  # a spatial group: its settings travel with the data (cellquery.spatial.settings)
        for part in (reference, query):
            part.uns["spatial"] = spatial.as_uns()
    write_h5ad(reference, snakemake.output.reference)
    write_h5ad(query, snakemake.output.query)
