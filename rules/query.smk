# Each shard is searched by the query cells (k hits) and by the reference cells
# (k + 1 hits: local scales and leave-one-out distances); merge_hits merges the
# shards' top-k lists exactly and calibrates the reference from its own hits.


rule query_index:
    input:
        index="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/shard{shard}/index.bin",
        query="results/{group}/embeddings/{method}/seed{seed}/model{model}/query_embedding.h5ad",
        reference="results/{group}/embeddings/{method}/seed{seed}/model{model}/reference_embedding.h5ad",
    output:
        hits="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/shard{shard}/hits.npz",
    log:
        "results/logs/query_index/{group}/{method}/seed{seed}/model{model}/{index}/shard{shard}.log",
    benchmark:
        "results/benchmarks/query_index/{group}/{method}/seed{seed}/model{model}/{index}/shard{shard}.tsv"
    conda:
        conda_env("index", gpu=True)
    threads: 2
    resources:
        mem_mb=measured("query_index", "mem_mb"),
        runtime=measured("query_index", "runtime"),
        gpu=gpu_request(),
    params:
        k=config["k"],
    script:
        "../workflow_scripts/query_index.py"


rule merge_hits:
    input:
        hits=shard_hits,
        reference="results/{group}/embeddings/{method}/seed{seed}/model{model}/reference_embedding.h5ad",
    output:
        hits="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/hits.npz",
        self_distances="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/self_distances.npy",
        calibration="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/calibration.npz",
    log:
        "results/logs/merge_hits/{group}/{method}/seed{seed}/model{model}/{index}.log",
    benchmark:
        "results/benchmarks/merge_hits/{group}/{method}/seed{seed}/model{model}/{index}.tsv"
    conda:
        "../envs/index.yaml"
    threads: 1
    resources:
        mem_mb=measured("merge_hits", "mem_mb"),
        runtime=measured("merge_hits", "runtime"),
    params:
        k=config["k"],
        random_seed=random_seed,
        reduced=lambda wildcards: is_reduced(wildcards.index),
    script:
        "../workflow_scripts/merge_hits.py"


# Conformal calibration (transfers with `conformal`): each reference cell's
# distances to its k nearest reference cells of its own type outside its own
# batch, found through the same shards, replaced for the held-out folds by their
# distances in the refitted embedding (rule conformal_embed; cellquery.transfer.conformal).
rule conformal_calibration:
    input:
        indexes=shard_indexes,
        reference="results/{group}/embeddings/{method}/seed{seed}/model{model}/reference_embedding.h5ad",
        folds=conformal_fold_files,
    output:
        conformal="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/conformal.npz",
    log:
        "results/logs/conformal_calibration/{group}/{method}/seed{seed}/model{model}/{index}.log",
    benchmark:
        "results/benchmarks/conformal_calibration/{group}/{method}/seed{seed}/model{model}/{index}.tsv"
    conda:
        "../envs/index.yaml"
    threads: 2
    resources:
        mem_mb=measured("conformal_calibration", "mem_mb"),
        runtime=measured("conformal_calibration", "runtime"),
    params:
        group=lookup(dpath="groups/{group}", within=config),
        k=config["k"],
    script:
        "../workflow_scripts/conformal_calibration.py"


# The reference's own k-NN graph (each cell's k nearest other reference cells),
# gathered from the same per-shard hits; built on request (not part of `all`).
rule reference_graph:
    input:
        hits=shard_hits,
        reference="results/{group}/embeddings/{method}/seed{seed}/model{model}/reference_embedding.h5ad",
    output:
        graph="results/{group}/embeddings/{method}/seed{seed}/model{model}/{index}/reference_graph.npz",
    log:
        "results/logs/reference_graph/{group}/{method}/seed{seed}/model{model}/{index}.log",
    benchmark:
        "results/benchmarks/reference_graph/{group}/{method}/seed{seed}/model{model}/{index}.tsv"
    conda:
        "../envs/index.yaml"
    threads: 1
    resources:
        mem_mb=measured("reference_graph", "mem_mb"),
        runtime=measured("reference_graph", "runtime"),
    params:
        k=config["k"],
        reduced=lambda wildcards: is_reduced(wildcards.index),
    script:
        "../workflow_scripts/reference_graph.py"
