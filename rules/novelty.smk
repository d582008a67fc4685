# Rejection analyses beyond MBA (the Cell BLAST paper's Fig. 3a-c and Supp. Figs. 8c, 9e, 14g):
# per run, the novel types among its rejected cells (Leiden clusters, enrichment ratios), the
# distance ROC of its nearest hits and the spread of its hits over the reference's datasets
# (written by the run's metrics job, rules/metrics.smk); gathered here into
# results/{novel_types,distance_roc,hit_datasets}.tsv and drawn in three figures.


rule gather_novel_types:
    input:
        novelty_files("novel_types"),
    output:
        "results/novel_types.tsv",
    log:
        "results/logs/gather_novel_types.log",
    benchmark:
        "results/benchmarks/gather_novel_types.tsv"
    conda:
        "../envs/novelty.yaml"
    threads: 1
    resources:
        mem_mb=measured("gather_novel_types", "mem_mb"),
        runtime=measured("gather_novel_types", "runtime"),
    params:
        table="novel_types",
    script:
        "../workflow_scripts/gather_novelty.py"


rule gather_distance_roc:
    input:
        novelty_files("distance_roc"),
    output:
        "results/distance_roc.tsv",
    log:
        "results/logs/gather_distance_roc.log",
    benchmark:
        "results/benchmarks/gather_distance_roc.tsv"
    conda:
        "../envs/novelty.yaml"
    threads: 1
    resources:
        mem_mb=measured("gather_distance_roc", "mem_mb"),
        runtime=measured("gather_distance_roc", "runtime"),
    params:
        table="distance_roc",
    script:
        "../workflow_scripts/gather_novelty.py"


rule gather_hit_datasets:
    input:
        novelty_files("hit_datasets"),
    output:
        "results/hit_datasets.tsv",
    log:
        "results/logs/gather_hit_datasets.log",
    benchmark:
        "results/benchmarks/gather_hit_datasets.tsv"
    conda:
        "../envs/novelty.yaml"
    threads: 1
    resources:
        mem_mb=measured("gather_hit_datasets", "mem_mb"),
        runtime=measured("gather_hit_datasets", "runtime"),
    params:
        table="hit_datasets",
    script:
        "../workflow_scripts/gather_novelty.py"


rule figure_novel_types:
    input:
        # one run per group and method: the first seed, index and transfer of the config
        types=representative_files("novel_types", by="method"),
        cells=representative_files("rejected_cells", by="method"),
    output:
        report(
            "results/figures/novel_types.png",
            caption="../report/novel_types.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_novel_types.log",
    benchmark:
        "results/benchmarks/figure_novel_types.tsv"
    conda:
        "../envs/novelty.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_novel_types", "mem_mb"),
        runtime=measured("figure_novel_types", "runtime"),
    params:
        controls=control_methods(),
    script:
        "../workflow_scripts/figure_novel_types.py"


rule figure_distance_roc:
    input:
        # one run per group and reported name (its own scores), the first seed and index of the config
        representative_files("distance_roc_curves", by="reported_as"),
    output:
        report(
            "results/figures/distance_roc.png",
            caption="../report/distance_roc.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_distance_roc.log",
    benchmark:
        "results/benchmarks/figure_distance_roc.tsv"
    conda:
        "../envs/novelty.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_distance_roc", "mem_mb"),
        runtime=measured("figure_distance_roc", "runtime"),
    params:
        controls=control_methods(),
        names=palette_names(),
    script:
        "../workflow_scripts/figure_distance_roc.py"


rule figure_hit_datasets:
    input:
        "results/hit_datasets.tsv",
    output:
        report(
            "results/figures/hit_datasets.png",
            caption="../report/hit_datasets.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_hit_datasets.log",
    benchmark:
        "results/benchmarks/figure_hit_datasets.tsv"
    conda:
        "../envs/novelty.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_hit_datasets", "mem_mb"),
        runtime=measured("figure_hit_datasets", "runtime"),
    params:
        controls=control_methods(),
        names=palette_names(),
    script:
        "../workflow_scripts/figure_hit_datasets.py"


NOVELTY_RULES = [
    rules.gather_novel_types,
    rules.gather_distance_roc,
    rules.gather_hit_datasets,
    rules.figure_novel_types,
    rules.figure_distance_roc,
    rules.figure_hit_datasets,
]
