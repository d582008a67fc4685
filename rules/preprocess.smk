rule preprocess:
    input:
        # no group is preprocessed before every group of the config has passed validation
        validation_files,
        reference=group_datasets("reference"),
        query=group_datasets("query"),
    output:
        reference="results/{group}/seed{seed}/preprocessed/reference.h5ad",
        query="results/{group}/seed{seed}/preprocessed/query.h5ad",
    log:
        "results/logs/preprocess/{group}/seed{seed}.log",
    benchmark:
        "results/benchmarks/preprocess/{group}/seed{seed}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("preprocess", "mem_mb"),
        runtime=measured("preprocess", "runtime"),
    params:
        group=lookup(dpath="groups/{group}", within=config),
        # each dataset's split and exclude, drawn per seed
        datasets=group_dataset_specs,
        settings=config.get("preprocess", {}),
    script:
        "../workflow_scripts/preprocess.py"
