rule query_index:
    input:
        index="results/{group}/{method}/seed{seed}/{index}/index.bin",
        query="results/{group}/{method}/seed{seed}/query_embedding.h5ad",
    output:
        hits="results/{group}/{method}/seed{seed}/{index}/hits.npz",
    wildcard_constraints:
        method=one_of(EMBEDDING_METHODS),
        index=one_of(SINGLE_INDEXES),
    params:
        k=config["k"],
    log:
        "results/logs/query_index/{group}/{method}/seed{seed}/{index}.log",
    benchmark:
        "results/benchmarks/query_index/{group}/{method}/seed{seed}/{index}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=gpu_request(),
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/query_index.py"


rule query_shard:
    input:
        index="results/{group}/{method}/seed{seed}/{index}/shard{shard}/index.bin",
        query="results/{group}/{method}/seed{seed}/query_embedding.h5ad",
        reference="results/{group}/{method}/seed{seed}/reference_embedding.h5ad",
    output:
        hits="results/{group}/{method}/seed{seed}/{index}/shard{shard}/hits.npz",
    wildcard_constraints:
        method=one_of(EMBEDDING_METHODS),
        index=one_of(SHARDED_INDEXES),
        shard=r"\d+",
    params:
        k=config["k"],
    log:
        "results/logs/query_shard/{group}/{method}/seed{seed}/{index}/shard{shard}.log",
    benchmark:
        "results/benchmarks/query_shard/{group}/{method}/seed{seed}/{index}/shard{shard}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=gpu_request(),
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/query_shard.py"


rule merge_shards:
    input:
        hits=shard_hits,
        reference="results/{group}/{method}/seed{seed}/reference_embedding.h5ad",
    output:
        hits="results/{group}/{method}/seed{seed}/{index}/hits.npz",
        self_distances="results/{group}/{method}/seed{seed}/{index}/self_distances.npy",
        calibration="results/{group}/{method}/seed{seed}/{index}/calibration.npz",
    wildcard_constraints:
        method=one_of(EMBEDDING_METHODS),
        index=one_of(SHARDED_INDEXES),
    params:
        k=config["k"],
        shards=lambda wildcards: config["indexes"][wildcards.index]["shards"],
    log:
        "results/logs/merge_shards/{group}/{method}/seed{seed}/{index}.log",
    benchmark:
        "results/benchmarks/merge_shards/{group}/{method}/seed{seed}/{index}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/merge_shards.py"
