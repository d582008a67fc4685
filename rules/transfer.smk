rule transfer:
    input:
        hits=RUN + "/{index}/hits.npz",
        self_distances=RUN + "/{index}/self_distances.npy",
        reference=RUN + "/reference_embedding.h5ad",
        query=RUN + "/query_embedding.h5ad",
    output:
        predictions=RUN + "/{index}/{transfer}/predictions.tsv",
    params:
        transfer=transfer_spec,
        group=group_spec,
    log:
        "results/logs/transfer/{group}/{method}/seed{seed}/{index}/{transfer}.log",
    benchmark:
        "results/benchmarks/transfer/{group}/{method}/seed{seed}/{index}/{transfer}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/transfer.py"
