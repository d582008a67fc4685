rule transfer:
    input:
        unpack(transfer_inputs),
    output:
        predictions="results/{group}/embeddings/{method}/seed{seed}/{index}/{transfer}/predictions.tsv",
    log:
        "results/logs/transfer/{group}/{method}/seed{seed}/{index}/{transfer}.log",
    benchmark:
        "results/benchmarks/transfer/{group}/{method}/seed{seed}/{index}/{transfer}.tsv"
    conda:
        "../envs/cellquery-cpu.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        transfer=lookup(dpath="transfers/{transfer}", within=config),
        group=lookup(dpath="groups/{group}", within=config),
        sweep=config["rejection_sweep"],
    script:
        "../workflow_scripts/transfer.py"
