# Helpers shared by the rules: config checks, target lists, input functions.
import itertools

from cellquery.config import check_config, group_values
from cellquery.embed import skip_reason

check_config(config)

NAME = "[A-Za-z0-9_-]+"


wildcard_constraints:
    dataset=NAME,
    group=NAME,
    method=NAME,
    index=NAME,
    transfer=NAME,
    seed=r"\d+",


RUN = "results/{group}/{method}/seed{seed}"


def combinations():
    """Every (group, method, index, transfer, seed) the config asks for."""
    for group, method, index, transfer, seed in itertools.product(
        config["groups"], config["methods"], config["indexes"], config["transfers"], config["seeds"]
    ):
        yield dict(group=group, method=method, index=index, transfer=transfer, seed=seed)


def method_skip_reason(group, method):
    """Why a method cannot run on a group (None when it can)."""
    return skip_reason(config["methods"][method]["embedding"], group_values(config, group))


def metrics_files(wildcards=None):
    """One tidy metrics file per combination: computed, or a record of the skip."""
    files = []
    for c in combinations():
        if method_skip_reason(c["group"], c["method"]):
            files.append("results/skipped/{group}/{method}/seed{seed}/{index}/{transfer}.tsv".format(**c))
        else:
            files.append((RUN + "/{index}/{transfer}/metrics.tsv").format(**c))
    return files


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


def gpu_request():
    """GPUs requested by rules that can use one (config key gpu, 0 on CPU-only runs)."""
    return config.get("gpu", 0)


def benchmark_files(wildcards):
    """Every benchmark file of the run (rule benchmarks are ordinary files to depend on).

    gather_benchmarks cannot list its own; every other rule's is here.
    """
    files = [rules.aggregate.benchmark]
    files += [r.benchmark for r in (rules.figure_mba, rules.figure_map_alignment, rules.figure_jsd, rules.figure_cl_accuracy)]
    datasets = {d for g in config["groups"].values() for d in g["reference"] + g["query"]}
    files += [rules.load_dataset.benchmark.format(dataset=d) for d in sorted(datasets)]
    for group in config["groups"]:
        files += [rules.preprocess.benchmark.format(group=group), rules.hvg.benchmark.format(group=group)]
    seen = set()
    for c in combinations():
        if method_skip_reason(c["group"], c["method"]):
            files.append(rules.record_skip.benchmark.format(**c))
            continue
        for rule_ in (rules.embed, rules.embedding_metrics, rules.build_index, rules.query_index, rules.transfer, rules.metrics):
            path = rule_.benchmark.format(**c)
            if path not in seen:
                seen.add(path)
                files.append(path)
    return files
