rule figure_mba:
    input:
        "results/summary.tsv",
    output:
        report(
            "results/figures/mba_pos_neg.png",
            caption="../report/mba_pos_neg.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_mba.log",
    benchmark:
        "results/benchmarks/figure_mba.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_mba", "mem_mb"),
        runtime=measured("figure_mba", "runtime"),
    script:
        "../workflow_scripts/figure_mba.py"


rule figure_map_alignment:
    input:
        "results/summary.tsv",
    output:
        report(
            "results/figures/map_alignment.png",
            caption="../report/map_alignment.rst",
            category="Metrics",
        ),
    log:
        "results/logs/figure_map_alignment.log",
    benchmark:
        "results/benchmarks/figure_map_alignment.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_map_alignment", "mem_mb"),
        runtime=measured("figure_map_alignment", "runtime"),
    script:
        "../workflow_scripts/figure_map_alignment.py"


rule figure_jsd:
    input:
        "results/summary.tsv",
    output:
        report(
            "results/figures/jsd.png",
            caption="../report/jsd.rst",
            category="Metrics",
        ),
    log:
        "results/logs/figure_jsd.log",
    benchmark:
        "results/benchmarks/figure_jsd.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_jsd", "mem_mb"),
        runtime=measured("figure_jsd", "runtime"),
    script:
        "../workflow_scripts/figure_jsd.py"


rule figure_cl_accuracy:
    input:
        "results/summary.tsv",
    output:
        report(
            "results/figures/cl_accuracy.png",
            caption="../report/cl_accuracy.rst",
            category="Metrics",
        ),
    log:
        "results/logs/figure_cl_accuracy.log",
    benchmark:
        "results/benchmarks/figure_cl_accuracy.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_cl_accuracy", "mem_mb"),
        runtime=measured("figure_cl_accuracy", "runtime"),
    script:
        "../workflow_scripts/figure_cl_accuracy.py"


rule figure_rejection_sweep:
    input:
        "results/rejection_sweep.tsv",
    output:
        report(
            "results/figures/rejection_sweep.png",
            caption="../report/rejection_sweep.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_rejection_sweep.log",
    benchmark:
        "results/benchmarks/figure_rejection_sweep.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_rejection_sweep", "mem_mb"),
        runtime=measured("figure_rejection_sweep", "runtime"),
    params:
        names=palette_names(),
    script:
        "../workflow_scripts/figure_rejection_sweep.py"


rule figure_mba_box:
    input:
        "results/summary.tsv",
    output:
        report(
            "results/figures/mba_box.png",
            caption="../report/mba_box.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_mba_box.log",
    benchmark:
        "results/benchmarks/figure_mba_box.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_mba_box", "mem_mb"),
        runtime=measured("figure_mba_box", "runtime"),
    params:
        controls=control_methods(),
    script:
        "../workflow_scripts/figure_mba_box.py"


rule figure_calibration:
    input:
        "results/summary.tsv",
    output:
        report(
            "results/figures/calibration.png",
            caption="../report/calibration.rst",
            category="Cell typing",
        ),
    log:
        "results/logs/figure_calibration.log",
    benchmark:
        "results/benchmarks/figure_calibration.tsv"
    conda:
        "../envs/figures.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_calibration", "mem_mb"),
        runtime=measured("figure_calibration", "runtime"),
    params:
        controls=control_methods(),
        names=palette_names(),
    script:
        "../workflow_scripts/figure_calibration.py"


FIGURE_RULES = [
    rules.figure_mba_box,
    rules.figure_mba,
    rules.figure_map_alignment,
    rules.figure_jsd,
    rules.figure_cl_accuracy,
    rules.figure_rejection_sweep,
    rules.figure_calibration,
]
