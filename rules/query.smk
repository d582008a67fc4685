rule query_index:
    input:
        index=RUN + "/{index}/index.bin",
        query=RUN + "/query_embedding.h5ad",
    output:
        hits=RUN + "/{index}/hits.npz",
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
