rule hvg:
    input:
        reference="results/{group}/seed{seed}/preprocessed/reference.h5ad",
    output:
        "results/{group}/seed{seed}/hvg.tsv",
    log:
        "results/logs/hvg/{group}/seed{seed}.log",
    benchmark:
        "results/benchmarks/hvg/{group}/seed{seed}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("hvg", "mem_mb"),
        runtime=measured("hvg", "runtime"),
    params:
        group=lookup(dpath="groups/{group}", within=config),
        settings=config.get("hvg", {}),
    script:
        "../workflow_scripts/hvg.py"
