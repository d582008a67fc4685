# Niches of every run of a spatial group (groups.<name>.spatial): k-means of the
# neighbourhood composition of the predicted types, scored against the known regions.


rule niches:
    input:
        predictions="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/predictions.tsv",
        query="results/{group}/seed{seed}/preprocessed/query.h5ad",
    output:
        niches="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/niches.tsv",
        metrics="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/niche_metrics.tsv",
    log:
        "results/logs/niches/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}.log",
    benchmark:
        "results/benchmarks/niches/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: 1
    resources:
        mem_mb=measured("niches", "mem_mb"),
        runtime=measured("niches", "runtime"),
    params:
        spatial=lookup(dpath="groups/{group}/spatial", within=config),
        reported_as=reported_name,
    script:
        "../workflow_scripts/niches.py"


# The first section of each spatial group (first seed): true type, each run's predicted type, rejected cells.
rule figure_spatial:
    input:
        predictions=spatial_figure_predictions,
        queries=[
            f"results/{group}/seed{config['seeds'][0]}/preprocessed/query.h5ad"
            for group in spatial_groups()
        ],
    output:
        report(
            "results/figures/spatial_sections.png",
            caption="../report/spatial_sections.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_spatial.log",
    benchmark:
        "results/benchmarks/figure_spatial.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_spatial", "mem_mb"),
        runtime=measured("figure_spatial", "runtime"),
    params:
        runs=spatial_figure_runs(),
        groups=spatial_groups(),
        section_keys={
            group: config["groups"][group]["spatial"]["section_key"]
            for group in spatial_groups()
        },
    script:
        "../workflow_scripts/figure_spatial.py"


# Accuracy and MBA of (a) expression PCA, (b) neighbourhood average, (c) GNN pretrained, (d) GNN not pretrained.
rule figure_spatial_methods:
    input:
        "results/summary.tsv",
    output:
        report(
            "results/figures/spatial_methods.png",
            caption="../report/spatial_methods.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_spatial_methods.log",
    benchmark:
        "results/benchmarks/figure_spatial_methods.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_spatial_methods", "mem_mb"),
        runtime=measured("figure_spatial_methods", "runtime"),
    params:
        # each method's plugin name alone (the figure runs none of them)
        plugins={method: plugin_of(config, method) for method in config["methods"]},
        groups=spatial_groups(),
    script:
        "../workflow_scripts/figure_spatial_methods.py"


# Learning curves of the spatial GNN runs: masked pretraining loss, fine-tuning loss pretrained vs not.
rule figure_spatial_pretraining:
    input:
        spatial_gnn_embeddings,
    output:
        report(
            "results/figures/spatial_pretraining.png",
            caption="../report/spatial_pretraining.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_spatial_pretraining.log",
    benchmark:
        "results/benchmarks/figure_spatial_pretraining.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_spatial_pretraining", "mem_mb"),
        runtime=measured("figure_spatial_pretraining", "runtime"),
    params:
        runs=spatial_gnn_runs(),
        groups=spatial_groups(),
    script:
        "../workflow_scripts/figure_spatial_pretraining.py"
