"""The run's tidy tables: results/summary.tsv, results/rejection_sweep.tsv and results/benchmarks.tsv.

Their columns are defined here once (and described in docs/formats.md). A run
is keyed by the names of its result folder, ``results/{group}/.../{method}/
seed{seed}/{index}/{transfer}``; ``reported_as`` is the name it is shown
under in tables and figures: the method, or ``<report_as>-<method>`` for a
transfer that the config reports as its own method (e.g. ``calibrated-pca``).

:func:`summary_table` joins the summary and the benchmarks into one table for
people (mean and sd over seeds per run setting, its wall time and peak
memory); :func:`format_summary_table` renders it as markdown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.io import read_table

RUN_COLUMNS = ["group", "method", "index", "transfer", "seed", "reported_as"]
SUMMARY_COLUMNS = RUN_COLUMNS + ["metric", "value"]
BENCHMARK_COLUMNS = ["rule", "job", "wall_s", "max_rss_mb", "cpu_s", "mean_load"]


def reported_as(method: str, report_as: str | None) -> str:
    """The name a run is shown under: ``<report_as>-<method>``, or the method itself."""
    return f"{report_as}-{method}" if report_as else method


def metric_rows(run: dict, metrics: dict[str, float]) -> pd.DataFrame:
    """Tidy rows (one per metric) for one run (its RUN_COLUMNS keys)."""
    rows = [{**{c: run[c] for c in RUN_COLUMNS}, "metric": name, "value": float(value)} for name, value in metrics.items()]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def skipped_rows(run: dict, reason: str) -> pd.DataFrame:
    """The summary row of a skipped run: metric ``skipped: <reason>``, value NaN."""
    return metric_rows(run, {f"skipped: {reason}": np.nan})


def combine_metrics(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-run metric files into the summary table (columns exactly SUMMARY_COLUMNS)."""
    parts = [read_table(p, required=SUMMARY_COLUMNS)[SUMMARY_COLUMNS] for p in paths]
    summary = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SUMMARY_COLUMNS)
    return summary.sort_values(RUN_COLUMNS + ["metric"], kind="mergesort").reset_index(drop=True)


SWEEP_COLUMNS = RUN_COLUMNS + ["threshold", "mba_positive", "mba_negative", "mba"]


def combine_sweeps(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-run rejection sweeps (see :func:`cellquery.scoring.sweep_scores`)."""
    parts = [read_table(p, required=SWEEP_COLUMNS)[SWEEP_COLUMNS] for p in paths]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SWEEP_COLUMNS)
    return table.sort_values(RUN_COLUMNS + ["threshold"], kind="mergesort", na_position="first").reset_index(drop=True)


def gather_benchmarks(paths: Iterable[str | os.PathLike], root: str | os.PathLike) -> pd.DataFrame:
    """One row per benchmark file: rule, job (wildcards as a path), wall seconds, max RSS (MB), ..."""
    rows = []
    for path in paths:
        rel = Path(path).relative_to(root)
        table = read_table(path, required=["s", "max_rss"])
        for _, bench in table.iterrows():
            rows.append(
                {
                    "rule": rel.parts[0].removesuffix(".tsv"),
                    "job": str(rel.with_suffix("")),
                    "wall_s": bench["s"],
                    "max_rss_mb": bench["max_rss"],
                    "cpu_s": bench.get("cpu_time", np.nan),
                    "mean_load": bench.get("mean_load", np.nan),
                }
            )
    return pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)


# ---------------------------------------------------------------------------
# The summary table for people: one row per run setting, mean and sd over seeds

TABLE_METRICS = (
    "mba_positive", "mba_negative", "mba", "auroc_unseen", "accuracy", "map", "seurat_alignment", "jsd", "cl_accuracy",
    # what the mapping matrix carries (docs/formats.md): rare types, presence, held-out genes
    "rare_type_accuracy", "presence_auroc", "expr_pearson", "expr_jsd",
    # spatial groups (rules/niches.smk): niches of the predicted types against the known regions
    "niche_ari",
)
METRIC_LABELS = {
    "mba_positive": "MBA (positive types)",
    "mba_negative": "MBA (negative types)",
    "mba": "MBA",
    "auroc_unseen": "AUROC (unseen types)",
    "accuracy": "accuracy",
    "map": "MAP",
    "seurat_alignment": "Seurat alignment",
    "jsd": "JSD (lower is better)",
    "cl_accuracy": "CL accuracy",
    "rare_type_accuracy": "accuracy (types < 1 % of the reference)",
    "presence_auroc": "AUROC (presence score)",
    "expr_pearson": "expression r (held-out genes)",
    "expr_jsd": "expression JSD (lower is better)",
    "niche_ari": "niche ARI (spatial groups)",
}
TABLE_KEYS = ["group", "reported_as", "method", "index", "transfer"]
TABLE_COLUMNS = [
    *TABLE_KEYS, "n_seeds", *(f"{m}_{s}" for m in TABLE_METRICS for s in ("mean", "sd")), "wall_s", "max_rss_mb", "skipped",
]

# Benchmark files of the rules (``benchmark:`` in rules/*.smk), relative to
# results/benchmarks without ``.tsv``: the ``job`` column of results/benchmarks.tsv.
JOB_PATHS = {
    "load_dataset": "load_dataset/{dataset}",
    "preprocess": "preprocess/{group}/seed{seed}",
    "hvg": "hvg/{group}/seed{seed}",
    "embed": "embed/{group}/{method}/seed{seed}/model{model}",
    "build_index": "build_index/{group}/{method}/seed{seed}/model{model}/{index}/shard{shard}",
    "query_index": "query_index/{group}/{method}/seed{seed}/model{model}/{index}/shard{shard}",
    "merge_hits": "merge_hits/{group}/{method}/seed{seed}/model{model}/{index}",
    "conformal_calibration": "conformal_calibration/{group}/{method}/seed{seed}/model{model}/{index}",
    "transfer": "transfer/{group}/{method}/seed{seed}/{index}/{transfer}",
    "tune_transfer": "tune_transfer/{group}/{method}/seed{seed}/{transfer}",
    "predict": "predict/{group}/{method}/seed{seed}",
    "embedding_metrics": "embedding_metrics/{group}/{kind}/{method}/seed{seed}",
    "metrics": "metrics/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}",
    "record_skip": "record_skip/{group}/{method}/seed{seed}/{index}/{transfer}",
}
JOB_FIELDS = ["rule", "dataset", "group", "kind", "method", "seed", "model", "index", "shard", "transfer"]
_NUMBERED = ("seed", "model", "shard")

# The rules whose jobs make up a run's cost, with the run keys a job is matched on.
RUN_RULES = {
    "predict": ["group", "method", "seed"],
    "embed": ["group", "method", "seed"],
    "build_index": ["group", "method", "seed", "index"],
    "query_index": ["group", "method", "seed", "index"],
    "merge_hits": ["group", "method", "seed", "index"],
    # built per index and read by its conformal transfers only, counted like merge_hits' calibration
    "conformal_calibration": ["group", "method", "seed", "index"],
    "transfer": ["group", "method", "seed", "index", "transfer"],
    # choosing a transfer's `auto` settings inside the reference is part of its cost
    "tune_transfer": ["group", "method", "seed", "transfer"],
}


def _job_regex(template: str) -> re.Pattern:
    """``{name}`` placeholders of a job path as named groups (digits for seed, model and shard)."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>{'[0-9]+' if part in _NUMBERED else '[^/]+'})"
        for i, part in enumerate(parts)
    ))


_JOB_REGEXES = {rule: _job_regex(template) for rule, template in JOB_PATHS.items()}


def parse_job(job: str) -> dict:
    """The rule and wildcards of a benchmark ``job`` path (:data:`JOB_PATHS`; seed, model and shard as int).

    A job of a rule without wildcards (``aggregate``, the figures, the scale
    benchmark) gives its rule only. A job of a rule in :data:`JOB_PATHS` that
    does not match the rule's path is an :class:`InputError`: the rules'
    benchmark paths and :data:`JOB_PATHS` have drifted apart.
    """
    rule = str(job).split("/", 1)[0]
    if rule not in _JOB_REGEXES:
        return {"rule": rule}
    match = _JOB_REGEXES[rule].fullmatch(str(job))
    if match is None:
        raise InputError(f"benchmarks: job {job!r} does not match the {rule} benchmark path {JOB_PATHS[rule]!r}")
    fields = match.groupdict()
    return {"rule": rule, **{k: int(v) if k in _NUMBERED else v for k, v in fields.items()}}


def _named_runs(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with string run keys, integer seeds and ``reported_as`` filled with the method where empty."""
    named = summary.astype({"group": str, "method": str, "index": str, "transfer": str})
    named["reported_as"] = named["reported_as"].where(named["reported_as"].notna(), named["method"]).astype(str)
    return named.astype({"seed": int})


def run_jobs(runs: pd.DataFrame, benchmarks: pd.DataFrame, n_models: dict[str, int] | None = None) -> pd.DataFrame:
    """The benchmark jobs of each run: one row per (run, job) with the run's keys, ``job``, ``wall_s``, ``max_rss_mb``.

    ``runs`` has :data:`TABLE_KEYS` and ``seed``. A predictor run's job is its
    ``predict`` job; an embedding run's are the ``embed`` job of its method
    and seed, the ``build_index`` and ``query_index`` jobs (every shard) and
    the ``merge_hits`` job of its index, its own ``transfer`` job and the
    ``tune_transfer`` job that chose the transfer's ``auto`` settings. Jobs
    with a model take models 0 .. ``n_models[transfer]`` - 1 (transfer name ->
    models it combines, ``TransferSettings.n_models``; model 0 alone for a
    transfer not in it). Scoring jobs (``metrics``, ``embedding_metrics``)
    are not counted. A job repeated in the benchmark file (Snakemake's
    ``repeat``) counts once: its mean wall time and its largest RSS.
    """
    per_job = benchmarks.groupby("job", sort=False).agg(wall_s=("wall_s", "mean"), max_rss_mb=("max_rss_mb", "max"))
    jobs = pd.concat([per_job.reset_index(), pd.DataFrame([parse_job(j) for j in per_job.index], columns=JOB_FIELDS)], axis=1)
    models = dict(n_models or {})
    parts = []
    for rule, keys in RUN_RULES.items():
        mine = jobs.loc[jobs["rule"] == rule, [*keys, "model", "job", "wall_s", "max_rss_mb"]]
        matched = runs.merge(mine.astype({"seed": int}), on=keys)
        wanted = matched["transfer"].map(lambda t: models.get(t, 1))
        parts.append(matched[matched["model"].isna() | (matched["model"] < wanted)].drop(columns="model"))
    columns = [*TABLE_KEYS, "seed", "job", "wall_s", "max_rss_mb"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def run_resources(runs: pd.DataFrame, benchmarks: pd.DataFrame, n_models: dict[str, int] | None = None) -> pd.DataFrame:
    """Per run setting (:data:`TABLE_KEYS`): ``wall_s``, the seconds of its jobs (:func:`run_jobs`) summed per seed
    and averaged over seeds, and ``max_rss_mb``, the largest peak memory of any of its jobs."""
    jobs = run_jobs(runs, benchmarks, n_models).astype({"wall_s": float, "max_rss_mb": float})
    per_seed = jobs.groupby([*TABLE_KEYS, "seed"]).agg(wall_s=("wall_s", "sum"), max_rss_mb=("max_rss_mb", "max"))
    return per_seed.groupby(TABLE_KEYS).agg(wall_s=("wall_s", "mean"), max_rss_mb=("max_rss_mb", "max")).reset_index()


def _metric_stats(scored: pd.DataFrame) -> pd.DataFrame:
    """``<metric>_mean`` and ``<metric>_sd`` (over seeds; ddof 1, NaN for one seed) and ``n_seeds`` per run setting."""
    n_seeds = scored.groupby(TABLE_KEYS)["seed"].nunique().rename("n_seeds").reset_index()
    part = scored[scored["metric"].isin(TABLE_METRICS)]
    if part.empty:
        return n_seeds
    stats = part.groupby([*TABLE_KEYS, "metric"])["value"].agg(["mean", "std"]).unstack("metric")
    stats.columns = [f"{metric}_{'sd' if stat == 'std' else stat}" for stat, metric in stats.columns]
    return n_seeds.merge(stats.reset_index(), on=TABLE_KEYS, how="left")


def summary_table(summary: pd.DataFrame, benchmarks: pd.DataFrame, n_models: dict[str, int] | None = None) -> pd.DataFrame:
    """results/summary.tsv and results/benchmarks.tsv as one table for people: columns :data:`TABLE_COLUMNS`.

    One row per run setting: group, ``reported_as``, method, index and
    transfer (one row per (group, reported_as) wherever a name has one index
    and transfer; a method searched with several indexes gets a row for
    each). For each metric of :data:`TABLE_METRICS`, ``<metric>_mean`` and
    ``<metric>_sd`` over seeds (sd with ddof 1, NaN for a single seed; NaN
    where the run has no such metric, e.g. ``mba_negative`` without negative
    types); ``n_seeds``, the seeds scored; ``wall_s`` and ``max_rss_mb`` of the
    run's own jobs (:func:`run_resources`: wall seconds summed per seed,
    averaged over seeds; peak memory the largest of any job; NaN without
    benchmarks). A skipped run (metric ``skipped: <reason>``) has NaN metrics,
    ``n_seeds`` 0 and its reason in ``skipped``. Rows are ranked by
    ``mba_mean``, best first, within each group (NaN last).
    """
    named = _named_runs(summary)
    is_skip = named["metric"].astype(str).str.startswith("skipped")
    skipped = named[is_skip].assign(skipped=named.loc[is_skip, "metric"].str.removeprefix("skipped").str.lstrip(": "))
    reasons = skipped.groupby(TABLE_KEYS)["skipped"].agg(lambda r: "; ".join(sorted(set(r)))).reset_index()
    scored = named[~is_skip]
    table = named[TABLE_KEYS].drop_duplicates()
    table = table.merge(_metric_stats(scored), on=TABLE_KEYS, how="left")
    resources = run_resources(scored[[*TABLE_KEYS, "seed"]].drop_duplicates(), benchmarks, n_models)
    table = table.merge(resources, on=TABLE_KEYS, how="left").merge(reasons, on=TABLE_KEYS, how="left")
    table = table.reindex(columns=TABLE_COLUMNS)
    table["n_seeds"] = table["n_seeds"].fillna(0).astype(int)
    order = ["group", "mba_mean", "reported_as", "index", "transfer"]
    table = table.sort_values(order, ascending=[True, False, True, True, True], na_position="last", kind="mergesort")
    return table.reset_index(drop=True)


def _mean_sd(mean: float, sd: float) -> str:
    """``mean ± sd`` to three decimals; the mean alone for one seed; ``–`` where there is none."""
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"


def formatted_table(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`summary_table` as strings for people: ``mean ± sd`` per metric, seconds and MB rounded.

    Metrics that no row has are left out, and so is the ``skipped`` column when no run was skipped.
    """
    shown = pd.DataFrame({
        "group": table["group"], "method": table["reported_as"], "index": table["index"],
        "transfer": table["transfer"], "seeds": table["n_seeds"].astype(int).astype(str),
    })
    for metric in TABLE_METRICS:
        if table[f"{metric}_mean"].notna().any():
            shown[METRIC_LABELS[metric]] = [_mean_sd(m, s) for m, s in zip(table[f"{metric}_mean"], table[f"{metric}_sd"])]
    shown["wall time (s)"] = [("–" if pd.isna(v) else f"{v:.1f}") for v in table["wall_s"]]
    shown["peak memory (MB)"] = [("–" if pd.isna(v) else f"{v:.0f}") for v in table["max_rss_mb"]]
    if table["skipped"].notna().any():
        shown["skipped"] = table["skipped"].fillna("").astype(str)
    return shown


def format_summary_table(table: pd.DataFrame) -> str:
    """A :func:`summary_table` as markdown: a heading and a pipe table per group, ``mean ± sd`` over seeds."""
    shown = formatted_table(table)
    sections = []
    for group, rows in shown.groupby("group", sort=False):
        rows = rows.drop(columns="group")
        lines = ["| " + " | ".join(rows.columns) + " |", "|" + "---|" * len(rows.columns)]
        lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows.itertuples(index=False)]
        sections.append(f"## {group}\n\n" + "\n".join(lines) + "\n")
    return "\n".join(sections) if sections else "No runs.\n"
