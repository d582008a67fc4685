rule transfer:
    input:
        hits="results/{group}/{method}/seed{seed}/{index}/hits.npz",
        self_distances="results/{group}/{method}/seed{seed}/{index}/self_distances.npy",
        reference="results/{group}/{method}/seed{seed}/reference_embedding.h5ad",
        query="results/{group}/{method}/seed{seed}/query_embedding.h5ad",
        models=consensus_models,
    output:
        predictions="results/{group}/{method}/seed{seed}/{index}/{transfer}/predictions.tsv",
    wildcard_constraints:
        method=one_of(EMBEDDING_METHODS),
    params:
        transfer=transfer_spec,
        group=group_spec,
        sweep=config["rejection_sweep"],
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
