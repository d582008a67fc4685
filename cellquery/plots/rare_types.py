"""Rare cell types per voter: accuracy on the types under 1 % of the reference (results/figures/rare_types.png)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.plots import colour_handles, distinct_colours, legend, mark_no_data, save_png


def plot_rare_types(table: pd.DataFrame, path) -> None:
    """Grouped bars: per rare type (x, rarest first), one bar per voter; one panel per group and method.

    ``table`` is results/rare_types.tsv (one row per run and rare type); a
    bar is the mean accuracy over the seeds of the run setting, its points the
    seeds. Only groups and methods with rare types in the query get a panel.
    """
    panels = sorted(table[["group", "method"]].drop_duplicates().itertuples(index=False, name=None))
    voters = sorted(table["voter"].unique()) if len(table) else []
    colours = distinct_colours(voters)
    n = max(1, len(panels))
    n_types = max([table[(table.group == g) & (table.method == m)]["cell_type"].nunique() for g, m in panels] or [1])
    fig, axes = plt.subplots(1, n, figsize=(max(4.2, 0.9 * n_types + 1.5) * n, 4.8), squeeze=False, layout="constrained")
    axes = axes[0]
    if not panels:
        mark_no_data(axes[0], "no rare type in any query")
    for ax, (group, method) in zip(axes, panels):
        part = table[(table["group"] == group) & (table["method"] == method)].dropna(subset=["accuracy"])
        title = f"{group} / {method}"
        if part.empty:  # accuracies of types without query cells are not in the table; kept for safety
            mark_no_data(ax, title)
            continue
        types = part.groupby("cell_type")["reference_fraction"].mean().sort_values(kind="mergesort").index.tolist()
        shown = sorted(part["voter"].unique())
        width = 0.8 / len(shown)
        for j, voter in enumerate(shown):
            rows = part[part["voter"] == voter]
            x = np.arange(len(types)) + (j - (len(shown) - 1) / 2) * width
            means = rows.groupby("cell_type")["accuracy"].mean().reindex(types)
            ax.bar(x, means.to_numpy(), width=width, color=colours[voter], alpha=0.8)
            for k, cell_type in enumerate(types):
                seeds = rows.loc[rows["cell_type"] == cell_type, "accuracy"].to_numpy()
                ax.scatter([x[k]] * len(seeds), seeds, s=8, color="black", zorder=3)
        fractions = part.groupby("cell_type")["reference_fraction"].mean()
        labels = [f"{t}\n({100 * fractions[t]:.2g} %)" for t in types]
        ax.set_xticks(np.arange(len(types)), labels, rotation=45, ha="right", fontsize=7)
        ax.set(title=title, ylabel="accuracy on the type's query cells", ylim=(0, 1.05))
        ax.grid(alpha=0.3, axis="y")
    legend(fig, colour_handles(colours, voters, linestyle="", marker="s"), "voter")
    save_png(fig, path)
