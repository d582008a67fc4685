"""Tables and figures of the scale benchmark (results/scale/)."""

from __future__ import annotations

import os
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.bench.knn import FIELDS
from cellquery.errors import InputError
from cellquery.io import read_table
from cellquery.plots import save_png


def setting_label(row: pd.Series) -> str:
    """Config name plus the search setting that varies within it, e.g. ``ivfpq16 nprobe=16``."""
    parts = [str(row["name"])]
    for key, short in (("nprobe", "nprobe"), ("k_factor", "kf"), ("disk_k_factor", "disk kf"), ("ef", "ef")):
        v = row.get(key)
        if v is not None and not (isinstance(v, float) and np.isnan(v)):
            parts.append(f"{short}={int(v) if float(v).is_integer() else v}")
    return " ".join(parts)


def gather_scale(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-job result tables into one tidy table (one row per search setting).

    Raises
    ------
    InputError
        A table lacks a column of :data:`cellquery.bench.knn.FIELDS` or ``name``.
    """
    tables = [read_table(p, required=["name", *FIELDS]) for p in paths]
    if not tables:
        return pd.DataFrame(columns=["name", "setting", *FIELDS])
    df = pd.concat(tables, ignore_index=True)
    df.insert(1, "setting", [setting_label(r) for _, r in df.iterrows()])
    return df.sort_values(["name", "setting", "n_ref"], kind="stable").reset_index(drop=True)


def _save(fig, path) -> None:
    fig.tight_layout()
    save_png(fig, path)


def plot_query_time_vs_size(df: pd.DataFrame, path) -> None:
    """Log-log query time (all queries) against reference size, one line per setting.

    As Fig. 2d of the Cell BLAST paper, extended to atlas sizes; the dashed line is the
    time of the exact search's inner products at the measured GEMM rate.
    """
    fig, ax = plt.subplots(figsize=(7.5, 5))
    if len(df):
        for label, sub in df.groupby("setting", sort=True):
            sub = sub.sort_values("n_ref")
            ax.plot(sub["n_ref"], sub["query_s"], marker="o", ms=4, label=label)
        bound = df.groupby("n_ref")["exact_gemm_bound_s"].median()
        ax.plot(bound.index, bound.values, ls="--", color="black", label="exact: GEMM bound")
        nq = sorted(df["n_query"].unique())
        ax.set(xscale="log", yscale="log", xlabel="reference cells",
               ylabel=f"query time (s) for {', '.join(map(str, nq))} queries",
               title=f"k = {', '.join(map(str, sorted(df['k'].unique())))}, "
                     f"{', '.join(map(str, sorted(df['threads'].unique())))} threads")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3, which="both")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    _save(fig, path)


def pareto_front(recall: np.ndarray, qps: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats on both recall and queries/s (ties kept)."""
    recall, qps = np.asarray(recall, float), np.asarray(qps, float)
    better = (recall[None, :] >= recall[:, None]) & (qps[None, :] >= qps[:, None])
    strictly = (recall[None, :] > recall[:, None]) | (qps[None, :] > qps[:, None])
    return ~(better & strictly).any(axis=1)


def plot_recall_vs_qps(df: pd.DataFrame, path) -> None:
    """Recall@k against queries/s, one panel per reference size; Pareto points ringed.

    An index's settings are joined by a line in order of queries/s; those with
    ``disk_k_factor`` (re-ranked from the reference on disk) by a dashed one of the same colour.
    """
    sizes = sorted(df["n_ref"].unique()) if len(df) else []
    fig, axes = plt.subplots(1, max(1, len(sizes)), figsize=(4.2 * max(1, len(sizes)), 4.2), squeeze=False)
    names = sorted(df["name"].unique()) if len(df) else []
    colours = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    for ax, n in zip(axes[0], sizes):
        sub = df[df["n_ref"] == n]
        # one line per index, and a dashed one for its settings that re-rank from the reference on disk
        disk = sub["disk_k_factor"].notna() if "disk_k_factor" in sub else pd.Series(False, index=sub.index)
        for (name, reranked), part in sub.groupby([sub["name"], disk]):
            part = part.sort_values("qps")
            ax.plot(part["recall_at_k"], part["qps"], marker="o", ms=4, color=colours[name],
                    ls="--" if reranked else "-", label=f"{name} + re-rank from disk" if reranked else name)
        front = sub[pareto_front(sub["recall_at_k"], sub["qps"])]
        ax.scatter(front["recall_at_k"], front["qps"], s=90, facecolors="none", edgecolors="black", zorder=3)
        ax.set(yscale="log", xlabel=f"recall@{int(sub['k'].iloc[0])}", ylabel="queries / s",
               title=f"{n:,} reference cells")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    if not sizes:
        axes[0][0].text(0.5, 0.5, "no data", ha="center", va="center", transform=axes[0][0].transAxes)
        axes[0][0].set_axis_off()
    _save(fig, path)


def check_scale_table(df: pd.DataFrame, source: str) -> None:
    """Raise :class:`InputError` when the gathered table lacks a column the figures use."""
    missing = [c for c in ("name", "setting", "n_ref", "query_s", "qps", "recall_at_k", "exact_gemm_bound_s")
               if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing columns {missing}")
