"""Meta cells at scale: accuracy (MBA+/-) against bytes per reference cell as the reference is reduced.

Part of the scale benchmark (rules/meta_cells.smk, config ``scale.meta_cells``):
a synthetic atlas-like reference and query (:mod:`cellquery.bench.synthetic`:
Zipf-sized types, trajectories, types the reference lacks) are drawn once; the
reference is searched whole (``none``) and reduced by every configured
``{method: kmeans|sketch, n}`` (:mod:`cellquery.index.reduce`, chosen from the
embedding alone). Each run votes with its meta cells' label distributions
within a distance cut-off calibrated on the reference (quantile ``quantile``
of its own distances to its ``k`` nearest meta cells), and is scored with the
Cell BLAST paper's MBA on positive and negative types
(:func:`cellquery.metrics.balanced_accuracy.mean_balanced_accuracy`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.errors import InputError

COLUMNS = ["method", "n_meta", "n_reference", "n_query", "k", "bytes_per_cell", "build_s", "query_s",
           "mba_positive", "mba_negative", "mba"]


@dataclass(frozen=True)
class MetaCellSettings:
    """``scale.meta_cells``: sizes of the synthetic reference and query, k, cut-off quantile, reductions."""

    n_reference: int = 100_000
    n_query: int = 10_000
    k: int = 10
    quantile: float = 0.99
    min_fraction: float = 0.5
    dim: int = 32
    seed: int = 0
    reductions: tuple = field(default_factory=tuple)

    @classmethod
    def from_config(cls, scale: Mapping) -> "MetaCellSettings":
        spec = dict(scale.get("meta_cells") or {})
        reductions = tuple((str(r["method"]), int(r["n"])) for r in spec.pop("reductions", []))
        settings = cls(dim=int(scale.get("dim", 32)), seed=int(scale.get("seed", 0)), reductions=reductions, **spec)
        for method, n in reductions:
            if n > settings.n_reference:
                raise InputError(
                    f"config: scale.meta_cells.reductions: {method} n = {n} exceeds n_reference = {settings.n_reference}"
                )
        return settings


def measure(settings: MetaCellSettings) -> pd.DataFrame:
    """One row per run (the whole reference, then each reduction): bytes per reference cell, times, MBA+/-."""
    from cellquery.bench.synthetic import make_queries, make_world, reference_sample
    from cellquery.index.reduce import distance_cutoff, meta_vote, nearest, reduce_reference
    from cellquery.metrics.balanced_accuracy import mean_balanced_accuracy

    world = make_world(settings.dim, settings.seed)
    X, labels = reference_sample(settings.n_reference, settings.dim, settings.seed, world=world)
    Q, truth = make_queries(settings.n_query, settings.dim, settings.seed, world=world)
    labels, truth = labels.astype(str), truth.astype(str)
    ref_types = set(labels)
    rows = []
    for method, n in (("none", settings.n_reference), *settings.reductions):
        start = time.perf_counter()
        meta = reduce_reference(X, labels, method=method, n=n, seed=settings.seed)
        cutoff = distance_cutoff(X, meta, settings.k, settings.quantile)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        distances, ids = nearest(Q, meta.vectors, settings.k)
        predictions, _, _ = meta_vote(distances, ids, meta, cutoff=cutoff, min_fraction=settings.min_fraction)
        query_s = time.perf_counter() - start
        mba = mean_balanced_accuracy(truth, predictions, ref_types)
        rows.append(dict(method=method, n_meta=meta.n, n_reference=settings.n_reference, n_query=settings.n_query,
                         k=settings.k, bytes_per_cell=meta.nbytes() / settings.n_reference, build_s=build_s,
                         query_s=query_s, mba_positive=mba["positive"], mba_negative=mba["negative"], mba=mba["mean"]))
    return pd.DataFrame(rows, columns=COLUMNS)


def plot_meta_cells(table: pd.DataFrame, path) -> None:
    """MBA+ and MBA- against bytes per reference cell (log x), one line per reduction method, the whole reference as a star."""
    from cellquery.plots import save_png

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, column, title in zip(axes, ("mba_positive", "mba_negative"), ("MBA+ (reference types)", "MBA- (unseen types)")):
        for method, part in table.groupby("method", sort=False):
            part = part.sort_values("bytes_per_cell")
            if method == "none":
                ax.plot(part["bytes_per_cell"], part[column], "*", markersize=12, color="black", label="whole reference")
                continue
            ax.plot(part["bytes_per_cell"], part[column], "o-", label=method)
            for _, row in part.iterrows():
                ax.annotate(f"{int(row['n_meta']):,}", (row["bytes_per_cell"], row[column]), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))
        ax.set_xscale("log")
        ax.set_xlabel("bytes per reference cell (vectors + label distributions)")
        ax.set_title(title)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("mean balanced accuracy")
    axes[1].legend(loc="upper left", fontsize=8)
    n = int(table["n_reference"].iloc[0]) if len(table) else 0
    fig.suptitle(f"Meta cells: accuracy vs memory ({n:,} reference cells; numbers: meta cells)")
    fig.tight_layout()
    save_png(fig, path)
