# Every index is built as `shards` shards (1 by default), one job each (scatter);
# rules/query.smk searches them and merges their hits exactly (gather).


rule build_index:
    input:
        reference="results/{group}/embeddings/{method}/seed{seed}/model{model}/reference_embedding.h5ad",
    output:
        index="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/shard{shard}/index.bin",
    log:
        "results/logs/build_index/{group}/{method}/seed{seed}/model{model}/{index}/shard{shard}.log",
    benchmark:
        "results/benchmarks/build_index/{group}/{method}/seed{seed}/model{model}/{index}/shard{shard}.tsv"
    conda:
        conda_env("index", gpu=True)
    threads: 2
    resources:
        mem_mb=measured("build_index", "mem_mb"),
        runtime=measured("build_index", "runtime"),
        gpu=gpu_request(),
    params:
        index=lookup(dpath="indexes/{index}", within=config),
        shards=lambda wildcards: shards(wildcards.index),
        random_seed=random_seed,
    script:
        "../workflow_scripts/build_index.py"
