"""Query time of each method against reference size: one row per (method, reference size, repeat)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from cellquery.bench.methods_scale import MethodsScaleSettings, measure
from cellquery.io import write_table

out = Path(snakemake.output[0])
out.parent.mkdir(parents=True, exist_ok=True)
table = measure(MethodsScaleSettings.from_config(snakemake.params.scale), workdir=out.parent, log=sys.stderr,
                partial=out.with_suffix(".partial.tsv"))
write_table(table, out)
out.with_suffix(".partial.tsv").unlink(missing_ok=True)
