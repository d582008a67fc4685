# Helpers shared by the rules: config checks, target lists, input functions.
import itertools
import re

from cellquery.config import check_config, group_values, method_kind, method_skip_reason as _skip

check_config(config)

NAME = "[A-Za-z0-9_-]+"
# Methods come in two kinds: an `embedding` feeds the project's own index and
# transfer stages; a `predictor` (a peer tool) embeds, searches and transfers
# by itself and reports under index and transfer "native".
NATIVE = "native"
EMBEDDING_METHODS = [m for m in config["methods"] if method_kind(config, m) == "embedding"]
PREDICTOR_METHODS = [m for m in config["methods"] if method_kind(config, m) == "predictor"]
# An index with `shards: S` is built and searched as S jobs whose hits are merged (scatter/gather).
SHARDED_INDEXES = [i for i, spec in config["indexes"].items() if spec.get("shards", 1) > 1]
SINGLE_INDEXES = [i for i in config["indexes"] if i not in SHARDED_INDEXES]


def one_of(names):
    """A wildcard pattern matching exactly these names (none: matches nothing)."""
    return "|".join(map(re.escape, names)) if names else "(?!)"


wildcard_constraints:
    dataset=NAME,
    group=NAME,
    method=NAME,
    index=NAME,
    transfer=NAME,
    seed=r"\d+",
    scale_index=NAME,
    n_ref=r"\d+",


def combinations():
    """Every (group, method, index, transfer, seed) the config asks for."""
    for group, method, seed in itertools.product(config["groups"], config["methods"], config["seeds"]):
        if method in PREDICTOR_METHODS:
            yield dict(group=group, method=method, index=NATIVE, transfer=NATIVE, seed=seed)
            continue
        spec = config["methods"][method]
        indexes = spec.get("indexes", list(config["indexes"]))
        transfers = spec.get("transfers", list(config["transfers"]))
        for index, transfer in itertools.product(indexes, transfers):
            yield dict(group=group, method=method, index=index, transfer=transfer, seed=seed)


def method_skip_reason(group, method):
    """Why a method cannot run on a group (None when it can)."""
    return _skip(config, group, method)


def metrics_files(wildcards=None):
    """One tidy metrics file per combination: computed, or a record of the skip."""
    files = []
    for c in combinations():
        if method_skip_reason(c["group"], c["method"]):
            files.append("results/skipped/{group}/{method}/seed{seed}/{index}/{transfer}.tsv".format(**c))
        else:
            files.append(("results/{group}/{method}/seed{seed}/{index}/{transfer}/metrics.tsv").format(**c))
    return files


def sweep_files(wildcards=None):
    """The rejection sweep of every combination that runs (skipped ones have none)."""
    return [
        "results/{group}/{method}/seed{seed}/{index}/{transfer}/sweep.tsv".format(**c)
        for c in combinations()
        if not method_skip_reason(c["group"], c["method"])
    ]


def group_datasets(role):
    """Input function: the loaded datasets of a group's reference or query."""

    def inputs(wildcards):
        return [f"results/data/{d}.h5ad" for d in config["groups"][wildcards.group][role]]

    return inputs


def group_spec(wildcards):
    return config["groups"][wildcards.group]


def method_spec(wildcards):
    return config["methods"][wildcards.method]


def index_spec(wildcards):
    return config["indexes"][wildcards.index]


def transfer_spec(wildcards):
    return config["transfers"][wildcards.transfer]


def method_resource(wildcards, name, default):
    """A method's own job resource from config (methods.<m>.resources.<name>), else the default."""
    return config["methods"][wildcards.method].get("resources", {}).get(name, default)


def gpu_request():
    """GPUs requested by rules that can use one (config key gpu, 0 on CPU-only runs)."""
    return config.get("gpu", 0)


def benchmark_files(wildcards):
    """Every benchmark file of the run (rule benchmarks are ordinary files to depend on).

    gather_benchmarks cannot list its own; every other job's is here, the
    extra models of consensus transfers included.
    """
    files = [rules.aggregate.benchmark, rules.aggregate_sweep.benchmark]
    figures = (rules.figure_mba, rules.figure_map_alignment, rules.figure_jsd, rules.figure_cl_accuracy, rules.figure_rejection_sweep)
    files += [r.benchmark for r in figures]
    datasets = {d for g in config["groups"].values() for d in g["reference"] + g["query"]}
    files += [rules.load_dataset.benchmark.format(dataset=d) for d in sorted(datasets)]
    for group in config["groups"]:
        files += [rules.preprocess.benchmark.format(group=group), rules.hvg.benchmark.format(group=group)]
    for c in combinations():
        if method_skip_reason(c["group"], c["method"]):
            files.append(rules.record_skip.benchmark.format(**c))
            continue
        if c["method"] in PREDICTOR_METHODS:
            files += [rules.predict.benchmark.format(**c), rules.embedding_metrics.benchmark.format(**c)]
        else:
            significance = config["transfers"][c["transfer"]].get("significance") or {}
            for j in range(significance.get("models", 1)):
                model = {**c, "seed": c["seed"] + 1000 * j}
                files.append(rules.embed.benchmark.format(**model))
                if c["index"] in SHARDED_INDEXES:
                    for shard in range(config["indexes"][c["index"]]["shards"]):
                        files += [r.benchmark.format(**model, shard=shard) for r in (rules.build_shard, rules.query_shard)]
                    files.append(rules.merge_shards.benchmark.format(**model))
                else:
                    files += [r.benchmark.format(**model) for r in (rules.build_index, rules.query_index)]
            files += [r.benchmark.format(**c) for r in (rules.embedding_metrics, rules.transfer)]
        files.append(rules.metrics.benchmark.format(**c))
    return list(dict.fromkeys(files))


def consensus_models(wildcards):
    """Files of the models whose P-values a significance transfer combines.

    A transfer with ``significance: {models: M}`` uses the run's own model
    (seed s) and M - 1 more of the same method, seeds s + 1000 j; each model
    contributes (reference embedding, query embedding, hits, calibration).
    Transfers without significance need none.
    """
    spec = config["transfers"][wildcards.transfer].get("significance")
    if not spec:
        return []
    run = "results/{group}/{method}/seed{seed}"
    files = []
    for j in range(spec.get("models", 1)):
        seed = int(wildcards.seed) + 1000 * j
        base = run.format(group=wildcards.group, method=wildcards.method, seed=seed)
        files += [
            f"{base}/reference_embedding.h5ad",
            f"{base}/query_embedding.h5ad",
            f"{base}/{wildcards.index}/hits.npz",
            f"{base}/{wildcards.index}/calibration.npz",
        ]
    return files


def reported_method(wildcards):
    """The method name in the summary: a transfer with ``report_as`` names its own method."""
    report_as = config["transfers"].get(wildcards.transfer, {}).get("report_as")
    return f"{report_as}-{wildcards.method}" if report_as else wildcards.method


def shard_hits(wildcards):
    """The per-shard hit files that merge_shards gathers."""
    n_shards = config["indexes"][wildcards.index]["shards"]
    base = "results/{group}/{method}/seed{seed}/{index}".format(**wildcards)
    return [f"{base}/shard{shard}/hits.npz" for shard in range(n_shards)]
