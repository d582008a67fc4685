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
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/figure_mba.py"
