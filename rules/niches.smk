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
