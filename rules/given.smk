# Embedding-only groups (datasets with `embedding: {obsm_key: <key>}`, cellquery.given):
# method given-<key> takes the stored embedding instead of preprocess, HVG and embed;
# index, query, transfer and metrics run on it as on any embedding.


ruleorder: given_embedding > embed


rule given_embedding:
    input:
        # as preprocess: no group is read before every group of the config has passed validation
        validation_files,
        reference=group_datasets("reference"),
        query=group_datasets("query"),
    output:
        reference="results/{group}/embeddings/given-{key}/seed{seed}/model{model}/reference_embedding.h5ad",
        query="results/{group}/embeddings/given-{key}/seed{seed}/model{model}/query_embedding.h5ad",
    log:
        "results/logs/given_embedding/{group}/given-{key}/seed{seed}/model{model}.log",
    benchmark:
        "results/benchmarks/given_embedding/{group}/given-{key}/seed{seed}/model{model}.tsv"
    wildcard_constraints:
        key="[A-Za-z0-9_]+",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=measured("given_embedding", "mem_mb"),
        runtime=measured("given_embedding", "runtime"),
    params:
        group=lookup(dpath="groups/{group}", within=config),
        datasets=group_dataset_specs,
    script:
        "../workflow_scripts/given_embedding.py"
