# Helpers shared by the rules: config checks, the runs the config asks for, input functions.
#
# Result folders carry the names of the config, one level per name:
#   results/{group}/embeddings/{method}/seed{seed}/model{model}/   embedding of one model
#     .../model{model}/{index}/shard{shard}/   index and hits of one reference shard
#     .../model{model}/{index}/                merged hits, calibration (every index is
#                                              searched as `shards` shards, 1 by default)
#   results/{group}/embeddings/{method}/seed{seed}/{index}/{transfer}/   predictions, metrics
#   results/{group}/embeddings/{method}/seed{seed}/tuning/{transfer}.tsv  `auto` settings
#                                              chosen by validation inside the reference
#   results/{group}/predictors/{method}/seed{seed}/native/native/       a peer tool's run
# A run's summary rows carry the same names (group, method, index, transfer, seed).
import itertools
import sys
from pathlib import Path

from cellquery.bench.methods_scale import MethodsScaleSettings, job_limits
from cellquery.config import check_config, method_kind
from cellquery.config import method_skip_reason as config_skip_reason
from cellquery.data.sources import local_source
from cellquery.envs import put_first_on_pythonpath
from cellquery.errors import report_input_errors
from cellquery.given import given_method, group_embedding_key, is_given
from cellquery.index.reduce import check_reduce, reduce_spec, reduced_skip_reason
from cellquery.io import remove_stale_temporaries
from cellquery.resources import PER_METHOD, declared, plugin_of
from cellquery.resources import read_table as read_resources
from cellquery.settings import TransferSettings, model_seed
from cellquery.summary import reported_as

check_config(config)
for _name, _spec in config["indexes"].items():
    check_reduce(_name, _spec)

NAME = "[A-Za-z0-9_-]+"
# A predictor (a peer tool) embeds, searches and transfers by itself; its runs
# have index and transfer "native".
NATIVE = "native"
# config kind of a method -> the results folder of its runs
KIND_FOLDER = {"embedding": "embeddings", "predictor": "predictors"}


wildcard_constraints:
    dataset=NAME,
    group=NAME,
    kind="embeddings|predictors",
    method=NAME,
    index=NAME,
    transfer=NAME,
    seed=r"\d+",
    model=r"\d+",
    shard=r"\d+",


def runs():
    """Every run the config asks for: dict(group, kind, method, index, transfer, seed).

    An embedding-only group (cellquery.given) adds method given-<obsm_key> with
    every index and transfer; the configured methods are skipped on it.
    """
    for group, seed in itertools.product(config["groups"], config["seeds"]):
        key = group_embedding_key(config, group)
        if key:
            for index, transfer in itertools.product(
                config["indexes"], config["transfers"]
            ):
                yield dict(
                    group=group,
                    kind="embeddings",
                    method=given_method(key),
                    seed=seed,
                    index=index,
                    transfer=transfer,
                )
    for group, method, seed in itertools.product(
        config["groups"], config["methods"], config["seeds"]
    ):
        # a group may run a subset: groups.<name>.methods, .indexes, .transfers
        subset = config["groups"][group]
        if method not in subset.get("methods", config["methods"]):
            continue
        kind = method_kind(config, method)
        run = dict(group=group, kind=KIND_FOLDER[kind], method=method, seed=seed)
        if kind == "predictor":
            yield dict(run, index=NATIVE, transfer=NATIVE)
            continue
        spec = config["methods"][method]
        indexes = spec.get("indexes", list(config["indexes"]))
        transfers = spec.get("transfers", list(config["transfers"]))
        indexes = [i for i in indexes if i in subset.get("indexes", indexes)]
        transfers = [t for t in transfers if t in subset.get("transfers", transfers)]
        for index, transfer in itertools.product(indexes, transfers):
            yield dict(run, index=index, transfer=transfer)


def skip_reason(run):
    """Why a run's method cannot run on its group, or its transfer on its index (None when it can)."""
    return config_skip_reason(
        config, run["group"], run["method"]
    ) or reduced_skip_reason(config, run["index"], run["transfer"])


RUN = "results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}"
SKIPPED = "results/skipped/{group}/{method}/seed{seed}/{index}/{transfer}.tsv"


def metrics_files(wildcards=None):
    """One tidy metrics file per run: computed, or the record of its skip."""
    return [
        SKIPPED.format(**r) if skip_reason(r) else f"{RUN}/metrics.tsv".format(**r)
        for r in runs()
    ]


def niche_files(wildcards=None):
    """The niche scores (rules/niches.smk) of every run of a spatial group that is not skipped."""
    return [
        f"{RUN}/niche_metrics.tsv".format(**r)
        for r in runs()
        if config["groups"][r["group"]].get("spatial") and not skip_reason(r)
    ]


def spatial_groups():
    """The groups with spatial settings (groups.<name>.spatial)."""
    return [g for g, spec in config["groups"].items() if spec.get("spatial")]


def spatial_figure_selection():
    """The first seed's runs of the spatial groups that are not skipped, controls left out."""
    seed = config["seeds"][0]
    return [
        r
        for r in runs()
        if r["seed"] == seed
        and r["group"] in spatial_groups()
        and not skip_reason(r)
        and r["method"] not in control_methods()
    ]


def spatial_gnn_runs():
    """(group, method, predictor, seed) of every spatial GNN run (gnn, gnn_pretrained) of the spatial groups."""
    return [
        (
            r["group"],
            r["method"],
            config["methods"][r["method"]]["predictor"],
            r["seed"],
        )
        for r in runs()
        if r["group"] in spatial_groups()
        and config["methods"][r["method"]].get("predictor") in ("gnn", "gnn_pretrained")
        and not skip_reason(r)
    ]


def spatial_gnn_embeddings(wildcards):
    """Input function: the query embedding file (with its loss curves) of every spatial GNN run."""
    return [
        f"results/{group}/predictors/{method}/seed{seed}/query_embedding.h5ad"
        for group, method, _, seed in spatial_gnn_runs()
    ]


def spatial_figure_runs():
    """(group, panel title) of each run of the spatial sections figure."""
    return [
        (
            r["group"],
            r["method"] if r["index"] == NATIVE else f"{r['method']} {r['transfer']}",
        )
        for r in spatial_figure_selection()
    ]


def spatial_figure_predictions(wildcards):
    """Input function: the predictions of each run of the spatial sections figure."""
    return [f"{RUN}/predictions.tsv".format(**r) for r in spatial_figure_selection()]


def sweep_files(wildcards=None):
    """The rejection sweep of every run that is not skipped."""
    return [f"{RUN}/sweep.tsv".format(**r) for r in runs() if not skip_reason(r)]


def group_datasets(role):
    """Input function: the loaded datasets of a group's reference or query."""

    def inputs(wildcards):
        return [
            f"results/data/{d}.h5ad" for d in config["groups"][wildcards.group][role]
        ]

    return inputs


def group_dataset_specs(wildcards):
    """The config entries of a group's datasets (split and exclude are applied per seed)."""
    spec = config["groups"][wildcards.group]
    return {d: config["datasets"][d] for d in spec["reference"] + spec["query"]}


def dataset_source_file(wildcards):
    """Input function: the user's own file of a dataset with a local source (none for other sources)."""
    path = local_source(config["datasets"][wildcards.dataset])
    return [str(path)] if path is not None else []


def dataset_groups(dataset):
    """The config entries of the groups that use ``dataset`` (their obs columns are checked on loading)."""
    return {
        group: spec
        for group, spec in config["groups"].items()
        if dataset in spec["reference"] + spec["query"]
    }


def validation_files(wildcards):
    """Input function: every group's validation, so that no preprocess job runs before all groups passed.

    Marked ancient: a group's validation being redone never reruns the preprocessing of another.
    """
    return [ancient(f"results/validation/{group}.tsv") for group in config["groups"]]


def remove_unvalidated_data():
    """After a failed run: remove loaded datasets that no group using them has validated."""
    for dataset in config["datasets"]:
        path = Path(f"results/data/{dataset}.h5ad")
        groups = dataset_groups(dataset)
        if path.exists() and not any(
            Path(f"results/validation/{g}.tsv").exists() for g in groups
        ):
            path.unlink()


def shards(index):
    """How many shards an index is built and searched as."""
    return config["indexes"][index].get("shards", 1)


def is_reduced(index):
    """Whether an index searches meta cells (indexes.<name>.reduce)."""
    return reduce_spec(config["indexes"][index]) is not None


def index_reference(wildcards):
    """What build_index indexes: the reference embedding, or a reduced index's meta cells."""
    base = f"{MODEL}".format(**wildcards)
    if is_reduced(wildcards.index):
        return f"{base}/{wildcards.index}/meta_cells.npz"
    return f"{base}/reference_embedding.h5ad"


def index_size_inputs(wildcards):
    """The model-0 index files (and meta cells) of an embedding run; none for a predictor."""
    if wildcards.kind != "embeddings":
        return {}
    base = f"{MODEL}/{{index}}".format(**wildcards, model=0)
    n_shards = range(shards(wildcards.index))
    files = dict(index_files=[f"{base}/shard{shard}/index.bin" for shard in n_shards])
    if is_reduced(wildcards.index):
        files["meta_cells"] = f"{base}/meta_cells.npz"
    return files


def random_seed(wildcards):
    """The random seed of one model of a run (model 0 is the run's own)."""
    return model_seed(wildcards.seed, wildcards.model)


def shown_name(method, transfer):
    """The name a run of ``method`` with ``transfer`` is shown under in tables and figures."""
    return reported_as(method, config["transfers"].get(transfer, {}).get("report_as"))


def reported_name(wildcards):
    """Params function: :func:`shown_name` of the job's run."""
    return shown_name(wildcards.method, wildcards.transfer)


def control_methods():
    """The config's control methods (floor and ceiling), which figures mark as controls."""
    from cellquery.predictors.controls import CONTROLS

    return [
        m for m, spec in config["methods"].items() if spec.get("predictor") in CONTROLS
    ]


def palette_names():
    """Every name a run is shown under (the summary's reported_as, skipped runs too).

    Figures drawn from other tables than the summary colour their runs by these
    names (cellquery.plots.run_colours), so a method has one colour in every figure.
    """
    return sorted({shown_name(r["method"], r["transfer"]) for r in runs()})


RESOURCES = read_resources(Path(workflow.basedir) / "config" / "resources.tsv")


def measured(job, name):
    """mem_mb or runtime (minutes) of a job of the named step: a method's own
    methods.<m>.resources.<name> if set, else config/resources.tsv (peaks measured in
    real runs x a margin, per plugin for embed and predict; cellquery/resources.py),
    times the attempt number so that retried jobs ask for more.
    """

    def value(wildcards, attempt):
        own, plugin = None, None
        if job in PER_METHOD:
            own = config["methods"][wildcards.method].get("resources", {}).get(name)
            plugin = plugin_of(config, wildcards.method)
        return (own or declared(RESOURCES, job, plugin)[name]) * attempt

    return value


def gpu_request():
    """GPUs requested by rules that can use one (config key gpu, 0 on CPU-only runs)."""
    return config.get("gpu", 0)


# Conda environments, one per family of rules (envs/README.md): envs/<name>.yaml. The
# plugins with heavy packages have their own; the other embeddings and predictors
# run in envs/data.yaml. Rules that request a GPU use the -gpu twin of theirs when
# config gpu > 0.
EMBEDDING_ENVS = {"scvi": "scvi"}
PREDICTOR_ENVS = {
    "cellblast": "cellblast",
    "cellmapper": "cellmapper",
    "celltypist": "celltypist",
    "gnn": "spatial",
    "gnn_pretrained": "spatial",
    "scanvi": "scvi",
    "symphony": "symphony",
}
GPU_ENVS = ("index", "scvi", "cellblast")


def method_env(wildcards):
    """The env family of a method's embedding or predictor plugin."""
    spec = config["methods"].get(wildcards.method, {})
    if "predictor" in spec:
        return PREDICTOR_ENVS.get(spec["predictor"], "data")
    return EMBEDDING_ENVS.get(spec.get("embedding"), "data")


def conda_env(family, gpu=False):
    """conda: of a rule: envs/<family>.yaml, or its -gpu twin for a GPU rule when config gpu > 0.

    ``family`` is an env name or a function of the wildcards that returns one.
    """

    def env_file(wildcards):
        name = family(wildcards) if callable(family) else family
        if gpu and gpu_request() > 0 and name in GPU_ENVS:
            name += "-gpu"
        return f"../envs/{name}.yaml"

    return env_file


# Jobs import the workflow's own cellquery whatever env they run in: the folder of
# this Snakefile goes first on PYTHONPATH, which every job inherits (envs/README.md).
put_first_on_pythonpath(workflow.basedir)


MODEL = "results/{group}/embeddings/{method}/seed{seed}/model{model}"


def shard_hits(wildcards):
    """The per-shard hit files that merge_hits gathers."""
    base = f"{MODEL}/{{index}}".format(**wildcards)
    return [f"{base}/shard{shard}/hits.npz" for shard in range(shards(wildcards.index))]


def n_conformal_folds(method):
    """Held-out folds of a method's conformal calibration: config conformal_folds for a
    method fitted on the reference, none for a precomputed embedding (given-<key>).
    """
    return 0 if is_given(method) else config.get("conformal_folds", 5)


def conformal_fold_files(wildcards):
    """The held-out fold files (rule conformal_embed) of a conformal calibration."""
    base = MODEL.format(**wildcards)
    return [
        f"{base}/conformal_folds/fold{fold}.npz"
        for fold in range(n_conformal_folds(wildcards.method))
    ]


def shard_indexes(wildcards):
    """The per-shard index files of one model's index."""
    base = f"{MODEL}/{{index}}".format(**wildcards)
    return [
        f"{base}/shard{shard}/index.bin" for shard in range(shards(wildcards.index))
    ]


def transfer_inputs(wildcards):
    """Named inputs of a transfer: the run's hits and embeddings, and every model its P-values combine.

    A transfer with ``significance: {models: M}`` combines model 0 (the run's
    own) with models 1 .. M - 1 of the same method; without significance the
    model lists hold model 0 only and are not read.
    """
    settings = TransferSettings.from_config(config["transfers"][wildcards.transfer])
    n_models = settings.n_models
    models = [f"{MODEL}".format(**wildcards, model=j) for j in range(n_models)]
    own = models[0]
    return dict(
        hits=f"{own}/{wildcards.index}/hits.npz",
        self_distances=f"{own}/{wildcards.index}/self_distances.npy",
        reference=f"{own}/reference_embedding.h5ad",
        query=f"{own}/query_embedding.h5ad",
        model_references=[f"{m}/reference_embedding.h5ad" for m in models],
        model_queries=[f"{m}/query_embedding.h5ad" for m in models],
        model_hits=[f"{m}/{wildcards.index}/hits.npz" for m in models],
        model_calibrations=[f"{m}/{wildcards.index}/calibration.npz" for m in models],
        **tuning_inputs(wildcards),
        **(
            dict(meta_cells=f"{own}/{wildcards.index}/meta_cells.npz")
            if is_reduced(wildcards.index)
            else {}
        ),
        **(
            dict(conformal=f"{own}/{wildcards.index}/conformal.npz")
            if settings.conformal
            else {}
        ),
    )


TUNING = "results/{group}/embeddings/{method}/seed{seed}/tuning/{transfer}.tsv"


def tuning_inputs(wildcards):
    """The tuning file (named ``tuning``) of a run whose transfer has `auto` settings, else nothing.

    Those settings are chosen by validation inside the run's model-0
    reference (rule tune_transfer); predictor runs (transfer 'native') have none.
    """
    spec = config["transfers"].get(wildcards.transfer)
    if getattr(wildcards, "kind", "embeddings") != "embeddings" or spec is None:
        return {}
    if not TransferSettings.from_config(spec).needs_tuning:
        return {}
    return dict(tuning=TUNING.format(**wildcards))


def run_embeddings(wildcards):
    """The reference and query embedding of a run: model 0 of an embedding, or a predictor's own."""
    model = "model0/" if wildcards.kind == "embeddings" else ""
    base = "results/{group}/{kind}/{method}/seed{seed}/".format(**wildcards) + model
    return dict(
        reference=f"{base}reference_embedding.h5ad", query=f"{base}query_embedding.h5ad"
    )


def embedding_score_inputs(wildcards):
    """The run's embedding scores; none for a control, which has no embedding (its job would write an empty table)."""
    if wildcards.method in control_methods():
        return {}
    return dict(embedding_scores=rules.embedding_metrics.output[0].format(**wildcards))


def benchmark_files(wildcards):
    """Every benchmark file of the run (rule benchmarks are ordinary files to depend on).

    gather_benchmarks cannot list its own; every other job's is here, the
    extra models of consensus transfers included.
    """
    files = [
        r.benchmark for r in (rules.aggregate, rules.aggregate_sweep, *FIGURE_RULES)
    ]
    datasets = {
        d for g in config["groups"].values() for d in g["reference"] + g["query"]
    }
    files += [rules.load_dataset.benchmark.format(dataset=d) for d in sorted(datasets)]
    files += [rules.validate.benchmark.format(group=g) for g in config["groups"]]
    for group, seed in itertools.product(config["groups"], config["seeds"]):
        if group_embedding_key(config, group):  # no preprocess or hvg
            continue
        files += [
            r.benchmark.format(group=group, seed=seed)
            for r in (rules.preprocess, rules.hvg)
        ]
    for run in runs():
        if skip_reason(run):
            files.append(rules.record_skip.benchmark.format(**run))
            continue
        files.append(rules.metrics.benchmark.format(**run))
        if run["method"] not in control_methods():
            files.append(rules.embedding_metrics.benchmark.format(**run))
        if config["groups"][run["group"]].get("spatial"):
            files.append(rules.niches.benchmark.format(**run))
        if run["kind"] == "predictors":
            files.append(rules.predict.benchmark.format(**run))
            continue
        files.append(rules.transfer.benchmark.format(**run))
        settings = TransferSettings.from_config(config["transfers"][run["transfer"]])
        if settings.needs_tuning:
            files.append(rules.tune_transfer.benchmark.format(**run))
        if settings.conformal:
            files.append(rules.conformal_calibration.benchmark.format(**run, model=0))
            files += [
                rules.conformal_embed.benchmark.format(**run, model=0, fold=fold)
                for fold in range(n_conformal_folds(run["method"]))
            ]
        for model in range(settings.n_models):
            if is_given(run["method"]):
                key = run["method"].removeprefix("given-")
                files.append(
                    rules.given_embedding.benchmark.format(**run, key=key, model=model)
                )
            else:
                files.append(rules.embed.benchmark.format(**run, model=model))
            files.append(rules.merge_hits.benchmark.format(**run, model=model))
            if is_reduced(run["index"]):
                files.append(
                    rules.reduce_reference.benchmark.format(**run, model=model)
                )
            for shard in range(shards(run["index"])):
                files += [
                    r.benchmark.format(**run, model=model, shard=shard)
                    for r in (rules.build_index, rules.query_index)
                ]
    if spatial_groups():
        files += [
            rules.figure_spatial.benchmark,
            rules.figure_spatial_methods.benchmark,
            rules.figure_spatial_pretraining.benchmark,
        ]
    files += novelty_benchmark_files()
    files += [r.benchmark for r in MAPPING_RULES]
    return list(dict.fromkeys(files))


# Rejection analyses (rules/novelty.smk): novel types among rejected cells, distance ROC,
# hits across reference datasets; written by each run's metrics job (runs that are not skipped).
NOVELTY_RUN = (
    "results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/{table}.tsv"
)


def novelty_inputs(wildcards):
    """Named inputs of a run's rejection analyses.

    Its predictions and model-0 embeddings (a predictor's own; 0 columns when
    it has none) and, for an embedding method, the model-0 hits and local
    scales (calibration) of the run's index; a reduced index's hits are meta
    cells, so its runs search the reference exactly instead (cellquery.novelty).
    """
    inputs = dict(predictions=f"{RUN}/predictions.tsv".format(**wildcards))
    inputs.update(run_embeddings(wildcards))
    if wildcards.kind == "embeddings" and not is_reduced(wildcards.index):
        base = f"{MODEL}/{{index}}".format(**wildcards, model=0)
        inputs.update(hits=f"{base}/hits.npz", calibration=f"{base}/calibration.npz")
    return inputs


def novelty_files(table):
    """Input function: the per-run table ``table`` (rules/novelty.smk) of every run that is not skipped."""

    def inputs(wildcards):
        return [
            NOVELTY_RUN.format(**r, table=table) for r in runs() if not skip_reason(r)
        ]

    return inputs


def representative_runs(by):
    """One run per group and ``by`` (``method`` or ``reported_as``) that is not skipped.

    The first in the config's order: its first seed, then the method's first
    index and transfer (with ``reported_as``: the first transfer reported under
    that name).
    """
    chosen = {}
    for r in runs():
        if skip_reason(r):
            continue
        name = r["method"] if by == "method" else shown_name(r["method"], r["transfer"])
        chosen.setdefault((r["group"], name), r)
    return list(chosen.values())


def representative_files(table, by):
    """Input function: the per-run table ``table`` of :func:`representative_runs` (``by``)."""

    def inputs(wildcards):
        return [NOVELTY_RUN.format(**r, table=table) for r in representative_runs(by)]

    return inputs


def novelty_benchmark_files():
    """The benchmark files of the rejection analyses' gathers and figures (the per-run tables come from rule metrics)."""
    return [r.benchmark for r in NOVELTY_RULES]


# Runs that differ in their voter alone (rules/mapping.smk): distance cut-off transfers (no
# significance, no conformal rule) on each embedding method's first index.
def voter_runs():
    """Every such run that is not skipped, with its ``reported_as`` name and ``voter``."""
    chosen = []
    for r in runs():
        if skip_reason(r) or r["kind"] != "embeddings":
            continue
        spec = config["transfers"][r["transfer"]]
        settings = TransferSettings.from_config(spec)
        indexes = config["methods"].get(r["method"], {}).get("indexes")
        first = (indexes or list(config["indexes"]))[0]
        if settings.significance or settings.conformal or r["index"] != first:
            continue
        name = shown_name(r["method"], r["transfer"])
        chosen.append(dict(r, reported_as=name, voter=settings.voter))
    return chosen


def voter_run_inputs(wildcards):
    """Named inputs of the rare-type table: the predictions and model-0 reference embedding of :func:`voter_runs`."""
    chosen = voter_runs()
    model = "results/{group}/{kind}/{method}/seed{seed}/model0/reference_embedding.h5ad"
    return dict(
        predictions=[f"{RUN}/predictions.tsv".format(**r) for r in chosen],
        references=[model.format(**r) for r in chosen],
    )


def expression_inputs(wildcards):
    """A run's mapping matrix, its group's preprocessed reference and query and HVG list (else nothing).

    Scored by expression transfer of held-out genes (cellquery.transfer.expression).
    The mapping matrix of a transfer is its mapping.npz; a predictor's is in its
    query embedding file (obsm "mapping": CellMapper, ingest, Symphony; the others have none).
    Embedding-only groups (no expression) have none.
    """
    if group_embedding_key(config, wildcards.group):
        return {}
    base = "results/{group}/seed{seed}/".format(**wildcards)
    if wildcards.kind == "embeddings":
        mapping = f"{RUN}/mapping.npz".format(**wildcards)
    else:
        mapping = run_embeddings(wildcards)["query"]
    return dict(
        mapping=mapping,
        reference_expression=f"{base}preprocessed/reference.h5ad",
        query_expression=f"{base}preprocessed/query.h5ad",
        hvg=f"{base}hvg.tsv",
    )


def expression_scatter_runs():
    """One voter run per group with expression (its first with the kernel voter, else its first) for the scatter figure."""
    chosen = {}
    for r in voter_runs():
        if group_embedding_key(config, r["group"]):
            continue
        if r["group"] not in chosen or (
            r["voter"] == "kernel" and chosen[r["group"]]["voter"] != "kernel"
        ):
            chosen[r["group"]] = r
    return list(chosen.values())


def mapping_figure_inputs(wildcards):
    """Named inputs of mapping_figures (rules/mapping.smk): :func:`voter_run_inputs` and, per :func:`expression_scatter_runs`,
    the run's M, predictions, reference embedding, preprocessed reference and query and HVG list.
    """
    scatter = expression_scatter_runs()
    model = "results/{group}/{kind}/{method}/seed{seed}/model0/reference_embedding.h5ad"
    base = "results/{group}/seed{seed}/"
    return dict(
        voter_run_inputs(wildcards),
        scatter_mappings=[f"{RUN}/mapping.npz".format(**r) for r in scatter],
        scatter_predictions=[f"{RUN}/predictions.tsv".format(**r) for r in scatter],
        scatter_references=[model.format(**r) for r in scatter],
        scatter_reference_expression=[
            f"{base}preprocessed/reference.h5ad".format(**r) for r in scatter
        ],
        scatter_query_expression=[
            f"{base}preprocessed/query.h5ad".format(**r) for r in scatter
        ],
        scatter_hvg=[f"{base}hvg.tsv".format(**r) for r in scatter],
    )


# Fig. 2d by method (rules/scale.smk): the scale config (SCALE_CONFIG, set there) cut per job.
def scale_methods_config(keep):
    """The scale config with scale.methods.methods cut to the methods named in ``keep``."""
    methods = dict(SCALE_CONFIG.get("methods") or {})
    methods["methods"] = {
        name: spec
        for name, spec in (methods.get("methods") or {}).items()
        if name in keep
    }
    return {**SCALE_CONFIG, "methods": methods}


def scale_method_resource(name):
    """mem_mb or runtime (minutes) of a scale.methods job, from its caps: each of its runs
    may take max_seconds at max_memory_gb (cellquery.bench.methods_scale.job_limits)."""

    def value(wildcards, attempt):
        settings = MethodsScaleSettings.from_config(SCALE_CONFIG, require_methods=False)
        return job_limits(settings, wildcards.scale_method)[name] * attempt

    return value


def scale_peer_env(wildcards):
    """The env family of a scale.methods peer: its predictor's."""
    spec = SCALE_CONFIG["methods"]["methods"][wildcards.scale_method]
    return PREDICTOR_ENVS.get(spec["predictor"], "data")


def scale_method_file(name):
    """A scale.methods method's rows: the scale_method_own job (the project's path) or a scale_method_peer job."""
    kind = (
        "own"
        if SCALE_CONFIG["methods"]["methods"][name].get("kind") == "own"
        else "peer"
    )
    return f"results/scale/methods/{kind}/{name}.tsv"
