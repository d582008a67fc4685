"""Cell Ontology inference (Cell BLAST paper, Supplementary Fig. 19): CL accuracy and CL MBA per method."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from cellquery.plots import save_png


METRICS = {"cl_accuracy": "CL accuracy (cell-weighted)", "cl_mba": "CL MBA (mean over terms)"}


def plot_cl_accuracy(summary: pd.DataFrame, path) -> None:
    """One panel per metric (``cl_accuracy``, ``cl_mba``): box per method over all runs, points coloured by group."""
    part = summary[summary["metric"].isin(list(METRICS))].dropna(subset=["value"]) if len(summary) else summary
    methods = sorted(part["method"].unique()) if len(part) else []
    groups = sorted(part["group"].unique()) if len(part) else []
    colours = {g: plt.cm.tab10(i % 10) for i, g in enumerate(groups)}
    width = max(4.0, 0.6 * len(methods) + 2)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(width * len(METRICS), 4), squeeze=False)
    for ax, (metric, title) in zip(axes[0], METRICS.items()):
        sub = part[part["metric"] == metric] if len(part) else part
        if not len(sub):
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.set(title=title)
            ax.set_axis_off()
            continue
        data = [sub.loc[sub["method"] == m, "value"].to_numpy() for m in methods]
        ax.boxplot(data, showfliers=False)
        for i, m in enumerate(methods, start=1):
            rows = sub[sub["method"] == m]
            ax.scatter([i] * len(rows), rows["value"], s=12, zorder=3, alpha=0.8,
                       color=[colours[g] for g in rows["group"]], edgecolor="black", linewidth=0.3)
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=45, ha="right")
        ax.set(title=title, ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3, axis="y")
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=g) for g, c in colours.items()]
    fig.tight_layout(rect=(0, 0, 0.88 if handles else 1, 1))
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    save_png(fig, path)
