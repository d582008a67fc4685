"""Seed {seed} of a group: its split/exclude of each dataset, combined, QC'd, normalised and resampled."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.data.sources import describe_source, select_cells
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


reference, reference_sources = side(snakemake.input.reference, spec["reference"])
query, query_sources = side(snakemake.input.query, spec["query"])
reference, query = prepare_group(
    reference,
    query,
    reference_sources=reference_sources,
    query_sources=query_sources,
    label_key=group.label_key,
    batch_keys=list(group.batch_keys),
    ontology_key=group.ontology_key,
    continuous_keys=list(group.continuous_keys),
    **snakemake.params.settings,
)
reference, query = resample_group(
    reference,
    query,
    label_key=group.label_key,
    seed=seed,
    reference_fraction=group.reference_fraction,
    query_fraction=group.query_fraction,
)
spatial = SpatialSettings.from_config(spec.get("spatial"))
if spatial is not None:  # a spatial group: its settings travel with the data (cellquery.spatial.settings)
    for part in (reference, query):
        part.uns["spatial"] = spatial.as_uns()
write_h5ad(reference, snakemake.output.reference)
write_h5ad(query, snakemake.output.query)
