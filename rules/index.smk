rule build_index:
    input:
        reference="results/{group}/{method}/seed{seed}/reference_embedding.h5ad",
    output:
        index="results/{group}/{method}/seed{seed}/{index}/index.bin",
        self_distances="results/{group}/{method}/seed{seed}/{index}/self_distances.npy",
        calibration="results/{group}/{method}/seed{seed}/{index}/calibration.npz",
    wildcard_constraints:
        method=one_of(EMBEDDING_METHODS),
        index=one_of(SINGLE_INDEXES),
    params:
        index=index_spec,
        k=config["k"],
    log:
        "results/logs/build_index/{group}/{method}/seed{seed}/{index}.log",
    benchmark:
        "results/benchmarks/build_index/{group}/{method}/seed{seed}/{index}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=gpu_request(),
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/build_index.py"


rule build_shard:
    input:
        reference="results/{group}/{method}/seed{seed}/reference_embedding.h5ad",
    output:
        index="results/{group}/{method}/seed{seed}/{index}/shard{shard}/index.bin",
    wildcard_constraints:
        method=one_of(EMBEDDING_METHODS),
        index=one_of(SHARDED_INDEXES),
        shard=r"\d+",
    params:
        index=index_spec,
    log:
        "results/logs/build_shard/{group}/{method}/seed{seed}/{index}/shard{shard}.log",
    benchmark:
        "results/benchmarks/build_shard/{group}/{method}/seed{seed}/{index}/shard{shard}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=gpu_request(),
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/build_shard.py"
