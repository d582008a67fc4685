# What the mapping matrix M carries beyond labels: the voters side by side on rare cell types
# (types under 1 % of the reference), drawn from the runs that differ in their voter alone.


rule rare_types:
    input:
        unpack(voter_run_inputs),
    output:
        table="results/rare_types.tsv",
        figure=report(
            "results/figures/rare_types.png",
            caption="../report/rare_types.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/rare_types.log",
    benchmark:
        "results/benchmarks/rare_types.tsv"
    conda:
        "../envs/novelty.yaml"
    threads: 1
    resources:
        mem_mb=measured("rare_types", "mem_mb"),
        runtime=measured("rare_types", "runtime"),
    params:
        runs=voter_runs(),
        label_keys={
            group: spec["label_key"] for group, spec in config["groups"].items()
        },
    script:
        "../workflow_scripts/rare_types.py"


MAPPING_RULES = [rules.rare_types]
