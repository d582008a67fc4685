"""Fig. 3b of the Cell BLAST paper (Cao et al. 2020), per method: the rejected query cells, their clusters and true types."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cellquery.metrics.novelty import ALL, NO_EMBEDDING
from cellquery.plots import distinct_colours, mark_no_data, save_png, shown_names

import matplotlib.pyplot as plt  # noqa: E402 (after cellquery.plots, which selects the Agg backend)

RUN = ["group", "method", "index", "transfer", "seed"]
PANELS_PER_ROW = 4


def _run_key(table: pd.DataFrame) -> pd.Series:
    """One string per row naming its run (group / method / index / transfer / seed)."""
    return table[RUN].astype(str).agg("/".join, axis=1) if len(table) else pd.Series([], dtype=str)


def _panel(ax, cells: pd.DataFrame, colours: dict, title: str, title_colour: str) -> None:
    """The rejected cells of one run in their 2-D layout, coloured by true type, with each cluster's id at its median."""
    ax.set_title(title, fontsize=8, color=title_colour)
    if not len(cells):
        ax.text(0.5, 0.5, "no rejected cells", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    for negative, size, edge in ((False, 6, "none"), (True, 16, "black")):  # held-out types on top
        sub = cells[cells["negative"] == negative]
        ax.scatter(sub["pc1"], sub["pc2"], s=size, c=[colours[t] for t in sub["true_label"]],
                   edgecolors=edge, linewidths=0.3, alpha=0.85)
    clustered = cells[cells["cluster"].notna() & (cells["cluster"].astype(str) != "")]
    for cluster, members in clustered.groupby(clustered["cluster"].astype(str)):
        ax.annotate(f"c{cluster}", (members["pc1"].median(), members["pc2"].median()), fontsize=7, ha="center",
                    va="center", bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.75, "linewidth": 0})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("PC 1 of rejected cells", fontsize=7)
    ax.set_ylabel("PC 2", fontsize=7)


def plot_novel_types(types: pd.DataFrame, cells: pd.DataFrame, path, controls=()) -> None:
    """One row block per group, one panel per run of ``types`` (its representative run per method).

    ``types``: the runs' novel-type tables (``cluster``, ``cluster_cells``,
    ``clustering``, ``cell_type``, ``negative`` and the run columns);
    ``cells``: their rejected-cell tables (``true_label``, ``negative``,
    ``cluster``, ``pc1``, ``pc2``). Each panel shows one run's rejected cells
    in the first two principal components of their embedding, coloured by
    true type (held-out types larger, outlined), with the Leiden clusters'
    ids (``c0``, ``c1``, ...) at their medians. Runs without an embedding get
    no panel; they are listed under their group. ``controls`` (method names)
    are marked "(control)" in grey.
    """
    controls = set(map(str, controls))
    types = types.assign(shown=shown_names(types), run=_run_key(types))
    cells = cells.assign(true_label=cells["true_label"].astype(str), negative=cells["negative"].astype(bool), run=_run_key(cells))
    groups = sorted(types["group"].unique())
    runs = types.drop_duplicates(RUN)
    shown_runs = {g: runs[(runs["group"] == g) & (runs["clustering"] != NO_EMBEDDING)].sort_values("shown") for g in groups}
    rows = [max(1, math.ceil(len(shown_runs[g]) / PANELS_PER_ROW)) for g in groups] or [1]
    fig = plt.figure(figsize=(3.3 * PANELS_PER_ROW + 3.2, sum(3.2 * r + 0.6 for r in rows)), layout="constrained")
    if not groups:
        mark_no_data(fig.add_subplot())
        save_png(fig, path)
        return
    subfigs = np.atleast_1d(fig.subfigures(len(groups), 1, height_ratios=rows))
    for subfig, group, n_rows in zip(subfigs, groups, rows):
        group_runs = shown_runs[group]
        group_cells = cells[cells["group"] == group]
        negative = set(types.loc[(types["group"] == group) & types["negative"].astype(bool), "cell_type"].astype(str))
        colours = distinct_colours(group_cells["true_label"])
        axes = subfig.subplots(n_rows, PANELS_PER_ROW, squeeze=False).ravel()
        for ax, run in zip(axes, group_runs.itertuples(index=False)):
            mine = group_cells[group_cells["run"] == run.run]
            clusters = types[types["run"] == run.run]
            n_clusters = clusters.loc[clusters["cluster"].astype(str) != ALL, "cluster"].nunique()
            control = str(run.method) in controls
            setting = "" if run.index == "native" else f" ({run.index}, {run.transfer})"
            title = f"{run.shown}{' (control)' if control else ''}{setting}\n{len(mine)} rejected, {n_clusters} clusters"
            _panel(ax, mine, colours, title, "grey" if control else "black")
        for ax in axes[len(group_runs):]:
            ax.set_axis_off()
        if not len(group_runs):
            mark_no_data(axes[0])
        without = sorted(set(shown_names(runs[(runs["group"] == group) & (runs["clustering"] == NO_EMBEDDING)])))
        subfig.suptitle(f"{group}: rejected query cells, coloured by true type", fontsize=10)
        if without:
            subfig.supxlabel("no embedding (not shown): " + ", ".join(without), fontsize=7)
        handles = [
            plt.Line2D([], [], marker="o", linestyle="", color=colour, markeredgecolor="black" if t in negative else colour,
                       markersize=6 if t in negative else 4, label=f"{t} (held out)" if t in negative else t)
            for t, colour in colours.items()
        ]
        if handles:
            subfig.legend(handles=handles, title="true type", loc="outside right center", fontsize=7, title_fontsize=8,
                          frameon=False)
    save_png(fig, path)
