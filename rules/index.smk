# Every index is built as `shards` shards (1 by default), one job each (scatter);
# rules/query.smk searches them and merges their hits exactly (gather).


# An index with `reduce` (cellquery.index.reduce) indexes meta cells chosen from
# the reference embedding alone, each carrying its members' label distribution.
rule reduce_reference:
    input:
        reference="results/{group}/embeddings/{method}/seed{seed}/model{model}/reference_embedding.h5ad",
    output:
        meta_cells="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/meta_cells.npz",
    log:
        "results/logs/reduce_reference/{group}/{method}/seed{seed}/model{model}/{index}.log",
    benchmark:
        "results/benchmarks/reduce_reference/{group}/{method}/seed{seed}/model{model}/{index}.tsv"
    conda:
        "../envs/index.yaml"
    threads: 2
    resources:
        mem_mb=measured("reduce_reference", "mem_mb"),
        runtime=measured("reduce_reference", "runtime"),
    params:
        index=lookup(dpath="indexes/{index}", within=config),
        group=lookup(dpath="groups/{group}", within=config),
        random_seed=random_seed,
    script:
        "../workflow_scripts/reduce_reference.py"


rule build_index:
    input:
        # the reference embedding, or the meta cells of a reduced index
        reference=index_reference,
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
