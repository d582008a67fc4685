rule load_dataset:
    output:
        "results/data/{dataset}.h5ad",
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    log:
        "results/logs/load_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/load_dataset/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/load_dataset.py"
