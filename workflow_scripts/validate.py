"""Check a group once, before any preprocess job: shared genes, and cells left for every seed (k included)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.given import dataset_embedding_key, embedding_group_problems
from cellquery.io import write_table
from cellquery.settings import GroupSettings
from cellquery.spatial.settings import spatial_problems
from cellquery.validate import MIN_SHARED_GENES, group_problems, open_loaded, raise_problems

spec = snakemake.params.group
specs = snakemake.params.datasets
reference = open_loaded(snakemake.input.reference, spec["reference"], specs)
query = open_loaded(snakemake.input.query, spec["query"], specs)
settings = snakemake.params.settings
key = dataset_embedding_key(specs[spec["reference"][0]])
if key:  # an embedding-only group (cellquery.given): no genes, no QC
    problems, table = embedding_group_problems(
        reference,
        query,
        group=snakemake.wildcards.group,
        key=key,
        settings=GroupSettings.from_config(spec),
        seeds=snakemake.params.seeds,
        k=snakemake.params.k,
    )
else:
    problems, table = group_problems(
        reference,
        query,
        group=snakemake.wildcards.group,
        settings=GroupSettings.from_config(spec),
        seeds=snakemake.params.seeds,
        k=snakemake.params.k,
        min_genes=settings.get("min_genes", 20),
        min_shared_genes=settings.get("min_shared_genes", MIN_SHARED_GENES),
    )
# a spatial group's query: coordinates, section and region columns (cellquery.spatial.settings)
problems += spatial_problems(query, spec.get("spatial"))
for dataset in reference + query:
    dataset.adata.file.close()
raise_problems(problems, log=sys.stderr)
write_table(table, snakemake.output[0])
