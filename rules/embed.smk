rule embed:
    input:
        reference="results/{group}/preprocessed/reference.h5ad",
        query="results/{group}/preprocessed/query.h5ad",
        hvg="results/{group}/hvg.tsv",
    output:
        reference="results/{group}/{method}/seed{seed}/reference_embedding.h5ad",
        query="results/{group}/{method}/seed{seed}/query_embedding.h5ad",
    wildcard_constraints:
        method=one_of(EMBEDDING_METHODS),
    params:
        method=method_spec,
        group=group_spec,
    log:
        "results/logs/embed/{group}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/embed/{group}/{method}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=gpu_request(),
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/embed.py"
