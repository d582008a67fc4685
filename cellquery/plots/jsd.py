"""Cell-fate transfer (Cell BLAST paper, Supplementary Fig. 16b): JSD per method."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from cellquery.plots import save_png


def plot_jsd(summary: pd.DataFrame, path) -> None:
    """Box plot of metric ``jsd`` per method (over seeds and index/transfer settings), one panel per group.

    Lower is better; JSD lies in [0, log 2].
    """
    part = summary[(summary["metric"] == "jsd")].dropna(subset=["value"]) if len(summary) else summary
    groups = sorted(part["group"].unique()) if len(part) else []
    ncol = max(1, len(groups))
    fig, axes = plt.subplots(1, ncol, figsize=(max(4.0, 0.6 * part["method"].nunique() + 2) * ncol if len(part) else 4.2, 4),
                             squeeze=False)
    for ax, group in zip(axes[0], groups):
        sub = part[part["group"] == group]
        methods = sorted(sub["method"].unique())
        data = [sub.loc[sub["method"] == m, "value"].to_numpy() for m in methods]
        ax.boxplot(data, showfliers=False)
        for i, values in enumerate(data, start=1):
            ax.scatter([i] * len(values), values, s=10, color="black", alpha=0.6, zorder=3)
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=45, ha="right")
        ax.set(title=str(group), ylabel="Jensen–Shannon divergence (lower is better)")
        ax.grid(alpha=0.3, axis="y")
    if not groups:
        axes[0][0].text(0.5, 0.5, "no data", ha="center", va="center", transform=axes[0][0].transAxes)
        axes[0][0].set_axis_off()
    fig.tight_layout()
    save_png(fig, path)
