"""Fig. 2a of the Cell BLAST paper (Cao et al. 2020): MAP vs Seurat alignment score per method."""

from __future__ import annotations

import pandas as pd

from cellquery.plots import colour_handles, distinct_colours, group_panels, legend, save_png, shown_names

AXES = {"map": "map", "seurat_alignment": "sas"}  # summary metric -> column of the per-run table


def _per_run(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per run that has both metrics: group, shown, index, transfer, seed, map, sas."""
    part = summary[summary["metric"].isin(list(AXES))]
    if not len(part):
        return pd.DataFrame(columns=["group", "shown", *AXES.values()])
    wide = (
        part.assign(shown=shown_names(part), metric=part["metric"].map(AXES))
        .pivot_table(index=["group", "shown", "index", "transfer", "seed"], columns="metric", values="value")
        .reset_index()
    )
    for column in AXES.values():
        if column not in wide:
            wide[column] = float("nan")
    return wide.dropna(subset=list(AXES.values()))


def plot_map_vs_alignment(summary: pd.DataFrame, path) -> None:
    """One panel per group; one point per shown name (mean over seeds, index and transfer settings).

    x: Seurat alignment score (metric ``seurat_alignment``), y: MAP (metric
    ``map``); error bars are the standard deviation over runs. A run is named
    by ``reported_as`` where the summary has that column, else by ``method``.
    """
    wide = _per_run(summary)
    groups = sorted(wide["group"].unique())
    fig, axes = group_panels(groups)
    colours = distinct_colours(shown_names(summary))  # the same colours in every figure of the summary
    for ax, group in zip(axes, groups):
        stats = wide[wide["group"] == group].groupby("shown").agg(
            sas=("sas", "mean"), sas_sd=("sas", "std"), map=("map", "mean"), map_sd=("map", "std")
        )
        for name, row in stats.iterrows():
            ax.errorbar(
                row["sas"], row["map"], xerr=row["sas_sd"] if pd.notna(row["sas_sd"]) else None,
                yerr=row["map_sd"] if pd.notna(row["map_sd"]) else None, fmt="o", color=colours[name],
                markeredgecolor="black", markeredgewidth=0.4, capsize=2, label=name,
            )
        ax.set(title=str(group), xlabel="Seurat alignment score", ylabel="Mean average precision")
        ax.grid(alpha=0.3)
    legend(fig, colour_handles(colours, wide["shown"], linestyle=""), "method")
    save_png(fig, path)
