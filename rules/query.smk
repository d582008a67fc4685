rule query_index:
    input:
        index="results/{group}/{method}/seed{seed}/{index}/index.bin",
        query="results/{group}/{method}/seed{seed}/query_embedding.h5ad",
    output:
        hits="results/{group}/{method}/seed{seed}/{index}/hits.npz",
    wildcard_constraints:
        method=one_of(EMBEDDING_METHODS),
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
