rule transfer:
    input:
        unpack(transfer_inputs),
    output:
        predictions="results/{group}/embeddings/{method}/seed{seed}/{index}/{transfer}/predictions.tsv",
        # the transfer's mapping matrix M (query x reference, scipy sparse npz)
        mapping="results/{group}/embeddings/{method}/seed{seed}/{index}/{transfer}/mapping.npz",
    log:
        "results/logs/transfer/{group}/{method}/seed{seed}/{index}/{transfer}.log",
    benchmark:
        "results/benchmarks/transfer/{group}/{method}/seed{seed}/{index}/{transfer}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: 1
    resources:
        mem_mb=measured("transfer", "mem_mb"),
        runtime=measured("transfer", "runtime"),
    params:
        transfer=lookup(dpath="transfers/{transfer}", within=config),
        group=lookup(dpath="groups/{group}", within=config),
        sweep=config["rejection_sweep"],
    script:
        "../workflow_scripts/transfer.py"


# `auto` settings of a transfer (p_cutoff, shrinkage, distance_quantile), chosen
# by validation inside the reference: folds of held-out reference types and a
# held-out reference batch (cellquery.transfer.tuning). The run's model-0
# reference embedding is the only input: no query file can change the choice.
rule tune_transfer:
    input:
        reference="results/{group}/embeddings/{method}/seed{seed}/model0/reference_embedding.h5ad",
    output:
        tuning="results/{group}/embeddings/{method}/seed{seed}/tuning/{transfer}.tsv",
    log:
        "results/logs/tune_transfer/{group}/{method}/seed{seed}/{transfer}.log",
    benchmark:
        "results/benchmarks/tune_transfer/{group}/{method}/seed{seed}/{transfer}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: 1
    resources:
        mem_mb=measured("tune_transfer", "mem_mb"),
        runtime=measured("tune_transfer", "runtime"),
    params:
        transfer=lookup(dpath="transfers/{transfer}", within=config),
        group=lookup(dpath="groups/{group}", within=config),
        k=config["k"],
    script:
        "../workflow_scripts/tune_transfer.py"
