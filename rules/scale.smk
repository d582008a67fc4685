# Scale benchmark of the nearest-neighbour indexes on synthetic atlas-sized embeddings
# (cellquery.bench). Not part of `all`; run it on its own:
#
#   snakemake -c2 scale --configfile config/config.yaml config/scale.yaml
#
# One job per (index setting, reference size), each in its own process so that its
# peak memory is its own; every job writes one table row per search setting.
# Reads only config["scale"], and nothing when that key is absent.
from cellquery.bench.scale import ScaleSettings, check_scale_config

# The section as written (job params, so that editing it reruns the jobs) and, built
# once from it, the settings with their defaults (cellquery.bench.scale.ScaleSettings).
SCALE_CONFIG = config.get("scale", {}) or {}
if SCALE_CONFIG:
    check_scale_config(SCALE_CONFIG)
SCALE = ScaleSettings.from_config(SCALE_CONFIG)
# what the index-sweep jobs read: the scale config without the peers' run specs of scale.methods
SCALE_INDEX_CONFIG = {
    key: value for key, value in SCALE_CONFIG.items() if key != "methods"
}


rule scale_knn:
    output:
        "results/scale/runs/{scale_index}/n{n_ref}.tsv",
    log:
        "results/logs/scale/{scale_index}/n{n_ref}.log",
    benchmark:
        "results/benchmarks/scale/{scale_index}/n{n_ref}.tsv"
    conda:
        "../envs/scale.yaml"
    threads: SCALE.threads
    resources:
        mem_mb=lambda wildcards: SCALE.mem_mb(
            wildcards.scale_index, int(wildcards.n_ref)
        ),
        runtime=lambda wildcards: SCALE.runtime_min(
            wildcards.scale_index, int(wildcards.n_ref)
        ),
    params:
        spec=lookup(dpath="scale/indexes/{scale_index}", within=config),
        scale=SCALE_INDEX_CONFIG,
    script:
        "../workflow_scripts/scale_knn.py"


rule scale_gather:
    input:
        [f"results/scale/runs/{name}/n{n}.tsv" for name, n in SCALE.runs()],
    output:
        "results/scale/scale.tsv",
    log:
        "results/logs/scale/gather.log",
    benchmark:
        "results/benchmarks/scale/gather.tsv"
    conda:
        "../envs/scale.yaml"
    threads: 1
    resources:
        mem_mb=measured("scale_gather", "mem_mb"),
        runtime=measured("scale_gather", "runtime"),
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
    conda:
        "../envs/scale.yaml"
    threads: 1
    resources:
        mem_mb=measured("scale_figures", "mem_mb"),
        runtime=measured("scale_figures", "runtime"),
    script:
        "../workflow_scripts/scale_figures.py"


rule scale:
    input:
        "results/scale/scale.tsv",
        "results/scale/query_time_vs_size.png",
        "results/scale/recall_vs_qps.png",
        # meta cells (rules/meta_cells.smk) when config scale.meta_cells is given
        ["results/scale/meta_cells.png"] if SCALE_CONFIG.get("meta_cells") else [],
        # Fig. 2d by method (below) when config scale.methods is given
        (
            [
                "results/scale/methods_summary.tsv",
                "results/figures/query_time_vs_reference_size.png",
            ]
            if SCALE_CONFIG.get("methods")
            else []
        ),


# Fig. 2d by method (cellquery.bench.methods_scale): each method's query time against reference
# size, references subsampled from one simulated atlas; part of `scale` when config scale.methods
# is given. One job simulates the atlas, one job per method runs it at every size and repeat (each
# run in a child process under the caps), a peer in its own env, one job gathers the rows.
SCALE_METHODS = list((SCALE_CONFIG.get("methods") or {}).get("methods") or {})
SCALE_ATLAS = "results/scale/methods_atlas"


rule scale_methods_atlas:
    output:
        atlas=f"{SCALE_ATLAS}/atlas.h5ad",
        query=f"{SCALE_ATLAS}/query.h5ad",
        genes=f"{SCALE_ATLAS}/genes.tsv",
    log:
        "results/logs/scale/methods_atlas.log",
    benchmark:
        "results/benchmarks/scale/methods_atlas.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("scale_methods", "mem_mb"),
        runtime=measured("scale_methods", "runtime"),
    params:
        scale=scale_methods_config([]),
    script:
        "../workflow_scripts/scale_methods_atlas.py"


# One job per method of Fig. 2d (hours at 10^6 cells): the runs finished so far stand in
# <method>.partial.tsv, and a job killed by the cluster and started again keeps them
# (cellquery.bench.methods_scale.measure_method_to_file).
rule scale_method_own:
    input:
        atlas=f"{SCALE_ATLAS}/atlas.h5ad",
        query=f"{SCALE_ATLAS}/query.h5ad",
        genes=f"{SCALE_ATLAS}/genes.tsv",
    output:
        "results/scale/methods/own/{scale_method}.tsv",
    log:
        "results/logs/scale/methods/own/{scale_method}.log",
    benchmark:
        "results/benchmarks/scale/methods/own/{scale_method}.tsv"
    conda:
        "../envs/scale.yaml"
    threads: SCALE.threads
    resources:
        mem_mb=scale_method_resource("mem_mb"),
        runtime=scale_method_resource("runtime"),
    params:
        scale=lambda wildcards: scale_methods_config([wildcards.scale_method]),
    script:
        "../workflow_scripts/scale_method_own.py"


rule scale_method_peer:
    input:
        atlas=f"{SCALE_ATLAS}/atlas.h5ad",
        query=f"{SCALE_ATLAS}/query.h5ad",
        genes=f"{SCALE_ATLAS}/genes.tsv",
    output:
        "results/scale/methods/peer/{scale_method}.tsv",
    log:
        "results/logs/scale/methods/peer/{scale_method}.log",
    benchmark:
        "results/benchmarks/scale/methods/peer/{scale_method}.tsv"
    conda:
        conda_env(scale_peer_env)
    threads: SCALE.threads
    resources:
        mem_mb=scale_method_resource("mem_mb"),
        runtime=scale_method_resource("runtime"),
    params:
        scale=lambda wildcards: scale_methods_config([wildcards.scale_method]),
    script:
        "../workflow_scripts/scale_method_peer.py"


rule scale_methods:
    input:
        [scale_method_file(name) for name in SCALE_METHODS],
    output:
        "results/scale/methods.tsv",
    log:
        "results/logs/scale/methods.log",
    benchmark:
        "results/benchmarks/scale/methods.tsv"
    conda:
        "../envs/scale.yaml"
    threads: 1
    resources:
        mem_mb=measured("scale_gather", "mem_mb"),
        runtime=measured("scale_gather", "runtime"),
    script:
        "../workflow_scripts/scale_methods.py"


rule figure_scale_methods:
    input:
        "results/scale/methods.tsv",
    output:
        summary="results/scale/methods_summary.tsv",
        figure=report(
            "results/figures/query_time_vs_reference_size.png",
            caption="../report/scale_methods_query_time.rst",
            category="Scale",
        ),
    log:
        "results/logs/scale/figure_methods.log",
    benchmark:
        "results/benchmarks/scale/figure_methods.tsv"
    conda:
        "../envs/scale.yaml"
    threads: 1
    resources:
        mem_mb=measured("figure_scale_methods", "mem_mb"),
        runtime=measured("figure_scale_methods", "runtime"),
    params:
        # query cells per run (None: the default); the figure runs none of the methods
        n_query=SCALE_CONFIG.get("methods", {}).get("n_query"),
    script:
        "../workflow_scripts/figure_scale_methods.py"
