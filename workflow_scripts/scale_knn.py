"""Scale benchmark: build, search and score one index preset at one reference size."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from cellquery.bench.knn import run_benchmark
from cellquery.bench.scale import ScaleSettings
from cellquery.io import write_table

name = snakemake.wildcards.scale_index
settings = ScaleSettings.from_config(snakemake.params.scale)
rows = run_benchmark(
    **settings.benchmark_args(name, int(snakemake.wildcards.n_ref)),
    threads=snakemake.threads,
    tmpdir=snakemake.resources.get("tmpdir"),
)
table = pd.DataFrame(rows)
table.insert(0, "name", name)
write_table(table, snakemake.output[0])
