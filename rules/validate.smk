# Bad input never costs a run: every dataset is checked while it loads (rule load_dataset),
# every group once here, and no preprocess job starts before every group has passed.
# A failed job's InputError line is printed on the console (onerror below).


rule validate:
    input:
        reference=group_datasets("reference"),
        query=group_datasets("query"),
    output:
        "results/validation/{group}.tsv",
    log:
        "results/logs/validate/{group}.log",
    benchmark:
        "results/benchmarks/validate/{group}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("validate", "mem_mb"),
        runtime=measured("validate", "runtime"),
    params:
        group=lookup(dpath="groups/{group}", within=config),
        datasets=group_dataset_specs,
        seeds=config["seeds"],
        k=config["k"],
        settings=config.get("preprocess", {}),
    script:
        "../workflow_scripts/validate.py"


onstart:
    # temporary files of jobs killed while writing (cellquery.io.atomic_path)
    remove_stale_temporaries("results")


onerror:
    report_input_errors(log, sys.stderr)
    # a loaded dataset stays only when a group that uses it has passed validation
    remove_unvalidated_data()
