"""Seed {seed} of an embedding-only group: its split/exclude of each dataset, stacked and resampled, as embeddings."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.data.sources import describe_source, select_cells
from cellquery.given import given_embeddings
from cellquery.io import read_h5ad, write_h5ad
from cellquery.settings import GroupSettings

spec = snakemake.params.group
specs = snakemake.params.datasets
seed = int(snakemake.wildcards.seed)
group = GroupSettings.from_config(spec)


def side(paths, names):
    """The cells seed `seed` uses of each dataset of one side."""
    return [
        select_cells(read_h5ad(path), specs[name], seed=seed, where=describe_source(name, specs[name]))
        for path, name in zip(paths, names)
    ]


reference, query = given_embeddings(
    side(snakemake.input.reference, spec["reference"]),
    side(snakemake.input.query, spec["query"]),
    key=snakemake.wildcards.key,
    label_key=group.label_key,
    batch_keys=group.batch_keys,
    ontology_key=group.ontology_key,
    continuous_keys=group.continuous_keys,
    seed=seed,
    reference_fraction=group.reference_fraction,
    query_fraction=group.query_fraction,
)
write_h5ad(reference, snakemake.output.reference)
write_h5ad(query, snakemake.output.query)
