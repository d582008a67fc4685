"""Scale benchmark: build, search and score one index preset at one reference size."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from cellquery.bench.knn import run_benchmark
from cellquery.io import write_table

scale = snakemake.params.scale
spec = snakemake.params.spec
rows = run_benchmark(
    spec["preset"],
    int(snakemake.wildcards.n_ref),
    n_query=scale.get("n_query", 10000),
    dim=scale.get("dim", 32),
    k=scale.get("k", 50),
    seed=scale.get("seed", 0),
    params=spec.get("params"),
    threads=snakemake.threads,
    chunk=scale.get("chunk", 1_000_000),
    exact_queries=spec.get("exact_queries", scale.get("exact_queries", 1000)),
    batch_size=scale.get("batch_size", 10000),
    max_train=spec.get("max_train", scale.get("max_train", 1_000_000)),
    tmpdir=snakemake.resources.get("tmpdir"),
    search_sweep=spec.get("search_sweep"),
)
table = pd.DataFrame(rows)
table.insert(0, "name", snakemake.wildcards.scale_index)
write_table(table, snakemake.output[0])
