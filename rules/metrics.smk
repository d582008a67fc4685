rule embedding_metrics:
    input:
        unpack(run_embeddings),
    output:
        "results/{group}/{kind}/{method}/seed{seed}/embedding_metrics.tsv",
    log:
        "results/logs/embedding_metrics/{group}/{kind}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/embedding_metrics/{group}/{kind}/{method}/seed{seed}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: 1
    resources:
        mem_mb=measured("embedding_metrics", "mem_mb"),
        runtime=measured("embedding_metrics", "runtime"),
    params:
        group=lookup(dpath="groups/{group}", within=config),
        integration=config.get("integration_metrics", True),
        # MAP and Seurat alignment above this many cells: on a seeded subsample (cellquery.metrics.at_scale)
        max_cells=config.get("metrics_max_cells", 50000),
        # JAX's compiled metric kernels, shared by all embedding_metrics jobs
        jax_cache="results/cache/jax",
    script:
        "../workflow_scripts/embedding_metrics.py"


# One job per run scores it and analyses its rejections (one job rather than two: most of a
# small job is its start-up).
rule metrics:
    input:
        # the tuning file of a transfer with `auto` settings: rows tuned_<setting>, validation_mba
        unpack(tuning_inputs),
        # a transfer's mapping matrix and the expression of its held-out genes (cellquery.transfer.expression)
        unpack(expression_inputs),
        # the model-0 index files of an embedding method's run: its bytes per reference cell
        unpack(index_size_inputs),
        # predictions, model-0 reference and query embeddings and (embedding methods) hits and local scales
        unpack(novelty_inputs),
        # MAP, Seurat alignment and scib-metrics of the run's embedding (none for a control)
        unpack(embedding_score_inputs),
    output:
        metrics="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/metrics.tsv",
        sweep="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/sweep.tsv",
        # the rejection analyses (rules/novelty.smk gathers and draws them)
        novel_types="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/novel_types.tsv",
        rejected_cells="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/rejected_cells.tsv",
        distance_roc="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/distance_roc.tsv",
        distance_roc_curves="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/distance_roc_curves.tsv",
        hit_datasets="results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/hit_datasets.tsv",
    log:
        "results/logs/metrics/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}.log",
    benchmark:
        "results/benchmarks/metrics/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: 1
    resources:
        mem_mb=measured("metrics", "mem_mb"),
        runtime=measured("metrics", "runtime"),
    params:
        group=lookup(dpath="groups/{group}", within=config),
        reported_as=reported_name,
        expression=config.get("expression_transfer", {}),
        k=config["k"],
    script:
        "../workflow_scripts/metrics.py"


rule record_skip:
    output:
        "results/skipped/{group}/{method}/seed{seed}/{index}/{transfer}.tsv",
    log:
        "results/logs/record_skip/{group}/{method}/seed{seed}/{index}/{transfer}.log",
    benchmark:
        "results/benchmarks/record_skip/{group}/{method}/seed{seed}/{index}/{transfer}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("record_skip", "mem_mb"),
        runtime=measured("record_skip", "runtime"),
    params:
        reason=lambda wildcards: skip_reason(dict(wildcards)),
        reported_as=reported_name,
    script:
        "../workflow_scripts/record_skip.py"


rule aggregate:
    input:
        metrics_files,
        # distance ROC AUCs of every run with an embedding (rules/novelty.smk)
        novelty_files("distance_roc"),
        # niche_ari of every run of a spatial group (rules/niches.smk)
        niche_files,
    output:
        "results/summary.tsv",
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("aggregate", "mem_mb"),
        runtime=measured("aggregate", "runtime"),
    script:
        "../workflow_scripts/aggregate.py"


rule aggregate_sweep:
    input:
        sweep_files,
    output:
        "results/rejection_sweep.tsv",
    log:
        "results/logs/aggregate_sweep.log",
    benchmark:
        "results/benchmarks/aggregate_sweep.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("aggregate_sweep", "mem_mb"),
        runtime=measured("aggregate_sweep", "runtime"),
    script:
        "../workflow_scripts/aggregate_sweep.py"


rule gather_benchmarks:
    input:
        benchmark_files,
    output:
        report(
            "results/benchmarks.tsv",
            caption="../report/benchmarks.rst",
            category="Tables",
        ),
    log:
        "results/logs/gather_benchmarks.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("gather_benchmarks", "mem_mb"),
        runtime=measured("gather_benchmarks", "runtime"),
    script:
        "../workflow_scripts/gather_benchmarks.py"


rule summary_table:
    input:
        summary="results/summary.tsv",
        benchmarks="results/benchmarks.tsv",
    output:
        table=report(
            "results/summary_table.tsv",
            caption="../report/summary_table.rst",
            category="Tables",
        ),
        markdown="results/summary_table.md",
    log:
        "results/logs/summary_table.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("summary_table", "mem_mb"),
        runtime=measured("summary_table", "runtime"),
    params:
        transfers=config["transfers"],
    script:
        "../workflow_scripts/summary_table.py"
