# Predictor methods (peer tools): embed, search and transfer in one job.
# Their runs have index and transfer "native".


rule predict:
    input:
        reference="results/{group}/seed{seed}/preprocessed/reference.h5ad",
        query="results/{group}/seed{seed}/preprocessed/query.h5ad",
        hvg="results/{group}/seed{seed}/hvg.tsv",
    output:
        predictions="results/{group}/predictors/{method}/seed{seed}/native/native/predictions.tsv",
        timings="results/{group}/predictors/{method}/seed{seed}/native/native/timings.tsv",
        reference="results/{group}/predictors/{method}/seed{seed}/reference_embedding.h5ad",
        query="results/{group}/predictors/{method}/seed{seed}/query_embedding.h5ad",
    log:
        "results/logs/predict/{group}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/predict/{group}/{method}/seed{seed}.tsv"
    conda:
        conda_env(method_env, gpu=True)
    threads: 1
    resources:
        mem_mb=measured("predict", "mem_mb"),
        runtime=measured("predict", "runtime"),
        gpu=gpu_request(),
    params:
        method=lookup(dpath="methods/{method}", within=config),
        group=lookup(dpath="groups/{group}", within=config),
        sweep=config["rejection_sweep"],
    script:
        "../workflow_scripts/predict.py"
