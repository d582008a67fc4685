# cellquery-bench: a benchmark of single-cell cell querying (reference mapping).
#
#   snakemake -c2                                   # default benchmark (config/config.yaml)
#   snakemake -c2 --configfile config/toy.yaml      # CI-sized run
#   snakemake --profile slurm                       # on a Slurm cluster
#   snakemake -c2 scale --configfile config/config.yaml config/scale.yaml   # index scale sweep
#
# One wildcard path runs from config to figure:
#   datasets -> results/data/{dataset}.h5ad -> results/{group}/preprocessed/*.h5ad
#   -> results/{group}/hvg.tsv -> results/{group}/{method}/seed{seed}/*_embedding.h5ad
#   -> .../{index}/index.bin -> .../{index}/hits.npz -> .../{index}/{transfer}/predictions.tsv
#   -> .../{transfer}/metrics.tsv -> results/summary.tsv -> results/figures/*.png
#   (and .../{transfer}/sweep.tsv -> results/rejection_sweep.tsv -> results/figures/rejection_sweep.png)

from snakemake.utils import min_version, validate

min_version("9.0")

# The default config is used only when no --configfile is given, so that a
# config passed on the command line replaces it rather than merging into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/preprocess.smk"
include: "rules/hvg.smk"
include: "rules/embed.smk"
include: "rules/index.smk"
include: "rules/query.smk"
include: "rules/transfer.smk"
include: "rules/predict.smk"
include: "rules/metrics.smk"
include: "rules/figures.smk"
include: "rules/scale.smk"


rule all:
    input:
        "results/summary.tsv",
        "results/benchmarks.tsv",
        "results/figures/mba_pos_neg.png",
        "results/figures/map_alignment.png",
        "results/figures/jsd.png",
        "results/figures/cl_accuracy.png",
        "results/rejection_sweep.tsv",
        "results/figures/rejection_sweep.png",
    default_target: True
