"""Query time of one run of the project's own path against reference size: one row per (reference size, repeat)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.bench.methods_scale import measure_method_to_file, run_own

measure_method_to_file(snakemake.params.scale, snakemake.wildcards.scale_method, snakemake.input.atlas,
                       snakemake.input.query, snakemake.input.genes, snakemake.output[0], runner=run_own, log=sys.stderr)
