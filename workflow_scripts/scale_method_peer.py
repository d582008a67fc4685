"""Query time of one peer predictor against reference size: one row per (reference size, repeat)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from cellquery.bench.methods_scale import MethodsScaleSettings, measure_method, run_peer
from cellquery.io import read_table, write_table

out = Path(snakemake.output[0])
settings = MethodsScaleSettings.from_config(snakemake.params.scale)
genes = read_table(snakemake.input.genes, required=["gene"])["gene"].tolist()
table = measure_method(settings, snakemake.wildcards.scale_method, snakemake.input.atlas, snakemake.input.query, genes,
                       runner=run_peer, log=sys.stderr, partial=out.with_suffix(".partial.tsv"))
write_table(table, out)
out.with_suffix(".partial.tsv").unlink(missing_ok=True)
