rule preprocess:
    input:
        reference=group_datasets("reference"),
        query=group_datasets("query"),
    output:
        reference="results/{group}/preprocessed/reference.h5ad",
        query="results/{group}/preprocessed/query.h5ad",
    params:
        group=lookup(dpath="groups/{group}", within=config),
        settings=config.get("preprocess", {}),
    log:
        "results/logs/preprocess/{group}.log",
    benchmark:
        "results/benchmarks/preprocess/{group}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/preprocess.py"
