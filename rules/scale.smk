# Scale benchmark of the nearest-neighbour indexes on synthetic atlas-sized embeddings
# (cellquery.bench). Not part of `all`; run it on its own:
#
#   snakemake -c2 scale --configfile config/config.yaml config/scale.yaml
#
# One job per (index setting, reference size), each in its own process so that its
# peak memory is its own; every job writes one table row per search setting.
# Reads only config["scale"], and nothing when that key is absent.
SCALE = config.get("scale", {}) or {}

if SCALE:
    from cellquery.bench.knn import check_scale_config

    check_scale_config(SCALE)


def scale_runs():
    """(config name, reference size) of every scale job."""
    runs = []
    for name, spec in SCALE.get("indexes", {}).items():
        for n in spec.get("sizes", SCALE.get("sizes", [])):
            if spec.get("max_size") is None or n <= spec["max_size"]:
                runs.append((name, int(n)))
    return runs


def scale_spec(wildcards):
    return SCALE["indexes"][wildcards.scale_index]


def scale_mem_mb(wildcards):
    from cellquery.bench.knn import estimate_mem_mb  # imported only when a scale job is planned

    spec = SCALE["indexes"][wildcards.scale_index]
    return estimate_mem_mb(spec["preset"], int(wildcards.n_ref), SCALE.get("dim", 32),
                           SCALE.get("n_query", 10000), SCALE.get("k", 50),
                           SCALE.get("chunk", 1_000_000), spec.get("params"))


def scale_runtime(wildcards):
    from cellquery.bench.knn import estimate_runtime_min

    spec = SCALE["indexes"][wildcards.scale_index]
    return estimate_runtime_min(spec["preset"], int(wildcards.n_ref), SCALE.get("threads", 2),
                                len(spec.get("search_sweep") or [{}]))


rule scale_knn:
    output:
        "results/scale/runs/{scale_index}/n{n_ref}.tsv",
    params:
        spec=scale_spec,
        scale=SCALE,
    log:
        "results/logs/scale/{scale_index}/n{n_ref}.log",
    benchmark:
        "results/benchmarks/scale/{scale_index}/n{n_ref}.tsv"
    threads: SCALE.get("threads", 2)
    resources:
        mem_mb=scale_mem_mb,
        runtime=scale_runtime,
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/scale_knn.py"


rule scale_gather:
    input:
        [f"results/scale/runs/{name}/n{n}.tsv" for name, n in scale_runs()],
    output:
        "results/scale/scale.tsv",
    log:
        "results/logs/scale/gather.log",
    benchmark:
        "results/benchmarks/scale/gather.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/scale_gather.py"


rule scale_figures:
    input:
        "results/scale/scale.tsv",
    output:
        time=report(
            "results/scale/query_time_vs_size.png",
            caption="../report/scale_query_time.rst",
            category="Scale",
        ),
        pareto=report(
            "results/scale/recall_vs_qps.png",
            caption="../report/scale_recall_qps.rst",
            category="Scale",
        ),
    log:
        "results/logs/scale/figures.log",
    benchmark:
        "results/benchmarks/scale/figures.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/cellquery-cpu.yaml"
    script:
        "../workflow_scripts/scale_figures.py"


rule scale:
    input:
        "results/scale/scale.tsv",
        "results/scale/query_time_vs_size.png",
        "results/scale/recall_vs_qps.png",
