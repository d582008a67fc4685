rule load_dataset:
    input:
        # the user's own file (local sources): a corrected file reloads the dataset
        dataset_source_file,
    output:
        "results/data/{dataset}.h5ad",
    log:
        "results/logs/load_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/load_dataset/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("load_dataset", "mem_mb"),
        runtime=measured("load_dataset", "runtime"),
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
        # the groups that use the dataset: their obs columns are checked while loading
        groups=lambda wildcards: dataset_groups(wildcards.dataset),
        # h5ad files with more cells are copied with their matrix untouched, never read whole
        backed_above_cells=config.get("preprocess", {}).get("backed_above_cells"),
    script:
        "../workflow_scripts/load_dataset.py"
