# What the mapping matrix M carries beyond labels, drawn in one job: the voters side by side on
# rare cell types (types under 1 % of the reference), from the runs that differ in their voter
# alone; and held-out genes' transferred against measured expression, one run per group.


rule mapping_figures:
    input:
        unpack(mapping_figure_inputs),
    output:
        table="results/rare_types.tsv",
        figure=report(
            "results/figures/rare_types.png",
            caption="../report/rare_types.rst",
            category="Cell typing",
        ),
        expression=report(
            "results/figures/expression_transfer.png",
            caption="../report/expression_transfer.rst",
            category="Metrics",
        ),
    log:
        "results/logs/mapping_figures.log",
    benchmark:
        "results/benchmarks/mapping_figures.tsv"
    conda:
        "../envs/novelty.yaml"
    threads: 1
    resources:
        mem_mb=measured("mapping_figures", "mem_mb"),
        runtime=measured("mapping_figures", "runtime"),
    params:
        runs=voter_runs(),
        scatter_runs=expression_scatter_runs(),
        label_keys={
            group: spec["label_key"] for group, spec in config["groups"].items()
        },
        expression=config.get("expression_transfer", {}),
    script:
        "../workflow_scripts/mapping_figures.py"


MAPPING_RULES = [rules.mapping_figures]
