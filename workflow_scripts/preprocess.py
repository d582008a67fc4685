"""Combine a group's datasets, QC and normalise them (reference and query)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_h5ad, write_h5ad
from cellquery.preprocess import prepare_group
from cellquery.resample import resample_group
from cellquery.settings import GroupSettings

group = GroupSettings.from_config(snakemake.params.group)
reference, query = prepare_group(
    [read_h5ad(p) for p in snakemake.input.reference],
    [read_h5ad(p) for p in snakemake.input.query],
    reference_sources=list(snakemake.input.reference),
    query_sources=list(snakemake.input.query),
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
    seed=int(snakemake.wildcards.seed),
    reference_fraction=group.reference_fraction,
    query_fraction=group.query_fraction,
)
write_h5ad(reference, snakemake.output.reference)
write_h5ad(query, snakemake.output.query)
