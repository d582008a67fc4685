rule build_index:
    input:
        reference=RUN + "/reference_embedding.h5ad",
    output:
        index=RUN + "/{index}/index.bin",
        self_distances=RUN + "/{index}/self_distances.npy",
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
