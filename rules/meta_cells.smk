# Meta cells at scale (cellquery.bench.meta_cells): MBA+/- against bytes per reference cell
# as a synthetic reference is reduced to k-means centroids or a geometric sketch. Part of
# the `scale` target when config scale.meta_cells is given (config/scale.yaml).


rule scale_meta_cells:
    output:
        "results/scale/meta_cells.tsv",
    log:
        "results/logs/scale/meta_cells.log",
    benchmark:
        "results/benchmarks/scale/meta_cells.tsv"
    conda:
        "../envs/scale.yaml"
    threads: SCALE.threads
    resources:
        mem_mb=measured("scale_meta_cells", "mem_mb"),
        runtime=measured("scale_meta_cells", "runtime"),
    params:
        scale=SCALE_INDEX_CONFIG,
    script:
        "../workflow_scripts/scale_meta_cells.py"


rule figure_meta_cells:
    input:
        "results/scale/meta_cells.tsv",
    output:
        report(
            "results/scale/meta_cells.png",
            caption="../report/scale_meta_cells.rst",
            category="Scale",
        ),
    log:
        "results/logs/scale/figure_meta_cells.log",
    benchmark:
        "results/benchmarks/scale/figure_meta_cells.tsv"
    conda:
        "../envs/scale.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_meta_cells", "mem_mb"),
        runtime=measured("figure_meta_cells", "runtime"),
    script:
        "../workflow_scripts/figure_meta_cells.py"
