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
