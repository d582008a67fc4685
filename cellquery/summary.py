"""The run's tidy tables: results/summary.tsv, results/rejection_sweep.tsv and results/benchmarks.tsv.

Their columns are defined here once (and described in docs/formats.md). A run
is keyed by the names of its result folder, ``results/{group}/.../{method}/
seed{seed}/{index}/{transfer}``; ``reported_as`` is the name it is shown
under in tables and figures: the method, or ``<report_as>-<method>`` for a
transfer that the config reports as its own method (e.g. ``calibrated-pca``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

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
