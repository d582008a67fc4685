rule embed:
    input:
        reference="results/{group}/seed{seed}/preprocessed/reference.h5ad",
        query="results/{group}/seed{seed}/preprocessed/query.h5ad",
        hvg="results/{group}/seed{seed}/hvg.tsv",
    output:
        reference="results/{group}/embeddings/{method}/seed{seed}/model{model}/reference_embedding.h5ad",
        query="results/{group}/embeddings/{method}/seed{seed}/model{model}/query_embedding.h5ad",
    log:
        "results/logs/embed/{group}/{method}/seed{seed}/model{model}.log",
    benchmark:
        "results/benchmarks/embed/{group}/{method}/seed{seed}/model{model}.tsv"
    conda:
        conda_env(method_env, gpu=True)
    threads: 1
    resources:
        mem_mb=measured("embed", "mem_mb"),
        runtime=measured("embed", "runtime"),
        gpu=gpu_request(),
    params:
        method=lookup(dpath="methods/{method}", within=config),
        random_seed=random_seed,
    script:
        "../workflow_scripts/embed.py"


# Held-out calibration of conformal transfers (cellquery.transfer.conformal): the
# embedding method fitted again on the reference without one fold (whole batches
# of the first batch key), the fold embedded as its query, as new to the model
# as the query is to the run's own model.
rule conformal_embed:
    input:
        reference="results/{group}/seed{seed}/preprocessed/reference.h5ad",
        hvg="results/{group}/seed{seed}/hvg.tsv",
    output:
        fold="results/{group}/embeddings/{method}/seed{seed}/model{model}/conformal_folds/fold{fold}.npz",
    log:
        "results/logs/conformal_embed/{group}/{method}/seed{seed}/model{model}/fold{fold}.log",
    benchmark:
        "results/benchmarks/conformal_embed/{group}/{method}/seed{seed}/model{model}/fold{fold}.tsv"
    conda:
        conda_env(method_env, gpu=True)
    threads: 1
    resources:
        mem_mb=measured("embed", "mem_mb"),
        runtime=measured("embed", "runtime"),
        gpu=gpu_request(),
    params:
        method=lookup(dpath="methods/{method}", within=config),
        group=lookup(dpath="groups/{group}", within=config),
        n_folds=lambda wildcards: n_conformal_folds(wildcards.method),
        random_seed=random_seed,
    script:
        "../workflow_scripts/conformal_embed.py"
