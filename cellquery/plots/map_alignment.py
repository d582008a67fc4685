"""Figure 2a of the Cell BLAST paper: MAP vs Seurat alignment score per method."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from cellquery.plots import save_png


MAP_METRICS = ("map",)
ALIGNMENT_METRICS = ("seurat_alignment",)


def _pick(summary: pd.DataFrame, names: tuple[str, ...], as_name: str) -> pd.DataFrame:
    part = summary[summary["metric"].isin(names)].copy()
    part["metric"] = as_name
    return part


def plot_map_vs_alignment(summary: pd.DataFrame, path) -> None:
    """One panel per group; one point per method (mean over seeds, index and transfer settings).

    x: Seurat alignment score (metric ``seurat_alignment``),
    y: MAP (metric ``map``); error bars are the standard deviation over runs.
    """
    both = pd.concat([_pick(summary, MAP_METRICS, "map"), _pick(summary, ALIGNMENT_METRICS, "sas")])
    wide = (
        both.pivot_table(index=["group", "method", "index", "transfer", "seed"], columns="metric", values="value")
        .reset_index()
        .dropna(subset=[c for c in ("map", "sas") if c in both["metric"].unique()])
        if len(both)
        else pd.DataFrame()
    )
    ok = len(wide) and {"map", "sas"} <= set(wide.columns)
    groups = sorted(wide["group"].unique()) if ok else []
    ncol = max(1, len(groups))
    fig, axes = plt.subplots(1, ncol, figsize=(4.2 * ncol, 4), squeeze=False)
    methods = sorted(wide["method"].unique()) if ok else []
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    for ax, group in zip(axes[0], groups):
        stats = wide[wide["group"] == group].groupby("method").agg(
            sas=("sas", "mean"), sas_sd=("sas", "std"), map=("map", "mean"), map_sd=("map", "std")
        )
        for method, row in stats.iterrows():
            ax.errorbar(
                row["sas"], row["map"], xerr=row["sas_sd"] if pd.notna(row["sas_sd"]) else None,
                yerr=row["map_sd"] if pd.notna(row["map_sd"]) else None, fmt="o", color=colours[method],
                markeredgecolor="black", markeredgewidth=0.4, capsize=2, label=method,
            )
        ax.set(title=str(group), xlabel="Seurat alignment score", ylabel="Mean average precision")
        ax.grid(alpha=0.3)
    if not groups:
        axes[0][0].text(0.5, 0.5, "no data", ha="center", va="center", transform=axes[0][0].transAxes)
        axes[0][0].set_axis_off()
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=m) for m, c in colours.items()]
    fig.tight_layout(rect=(0, 0, 0.82 if handles else 1, 1))
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    save_png(fig, path)
