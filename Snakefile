# cellquery-bench: a benchmark of single-cell cell querying (reference mapping).
#
#   snakemake -c2                                   # default benchmark (config/config.yaml)
#   snakemake -c2 --configfile config/toy.yaml      # CI-sized run
#   snakemake --profile slurm                       # on a Slurm cluster
#   snakemake -c2 scale --configfile config/config.yaml config/scale.yaml   # index scale sweep
#
# One wildcard path runs from config to figure (README: "What comes out where"):
#   datasets -> results/data/{dataset}.h5ad -> results/validation/{group}.tsv (checks, every group before any preprocess)
#   -> results/{group}/seed{seed}/preprocessed/*.h5ad
#   -> results/{group}/seed{seed}/hvg.tsv
#   -> results/{group}/embeddings/{method}/seed{seed}/model{model}/*_embedding.h5ad
#   -> .../model{model}/{index}/shard{shard}/{index.bin,hits.npz} -> .../model{model}/{index}/hits.npz
#   -> results/{group}/embeddings/{method}/seed{seed}/{index}/{transfer}/predictions.tsv
#      (peer tools: results/{group}/predictors/{method}/seed{seed}/native/native/predictions.tsv)
#   -> .../{index}/{transfer}/{metrics,sweep}.tsv -> results/summary.tsv, results/rejection_sweep.tsv
#   -> results/figures/*.png

from snakemake.utils import min_version, validate

min_version("9.0")

# The default config is used only when no --configfile is given, so that a
# config passed on the command line replaces it rather than merging into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


# snakemake --report results/report.html: the workflow description of the report


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/validate.smk"
include: "rules/preprocess.smk"
include: "rules/hvg.smk"
include: "rules/embed.smk"
include: "rules/given.smk"
include: "rules/index.smk"
include: "rules/query.smk"
include: "rules/transfer.smk"
include: "rules/predict.smk"
include: "rules/metrics.smk"
include: "rules/niches.smk"
include: "rules/figures.smk"
include: "rules/novelty.smk"
include: "rules/mapping.smk"
include: "rules/scale.smk"
include: "rules/meta_cells.smk"


rule all:
    default_target: True
    input:
        "results/summary.tsv",
        "results/benchmarks.tsv",
        "results/figures/mba_pos_neg.png",
        "results/figures/map_alignment.png",
        "results/figures/jsd.png",
        "results/figures/cl_accuracy.png",
        "results/rejection_sweep.tsv",
        "results/figures/rejection_sweep.png",
        "results/figures/mba_box.png",
        "results/figures/calibration.png",
        "results/novel_types.tsv",
        "results/figures/novel_types.png",
        "results/distance_roc.tsv",
        "results/figures/distance_roc.png",
        "results/hit_datasets.tsv",
        "results/figures/hit_datasets.png",
        "results/summary_table.tsv",
        "results/rare_types.tsv",
        "results/figures/rare_types.png",
        "results/figures/expression_transfer.png",
        # one section of each spatial group by true and predicted type (rules/niches.smk)
        ["results/figures/spatial_sections.png"] if spatial_groups() else [],
        # accuracy and MBA of the spatial embeddings (a)-(d) over seeds (rules/niches.smk)
        ["results/figures/spatial_methods.png"] if spatial_groups() else [],
        # the spatial GNN's losses per epoch: masked pretraining and fine-tuning (rules/niches.smk)
        ["results/figures/spatial_pretraining.png"] if spatial_groups() else [],
