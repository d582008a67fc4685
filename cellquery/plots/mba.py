"""Figure 2b of the Cell BLAST paper: MBA on positive vs negative query types."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from cellquery.plots import save_png


def plot_mba_pos_neg(summary: pd.DataFrame, path) -> None:
    """One panel per group; one point per method x index x transfer x seed.

    x: MBA on positive types (present in the reference), y: MBA on negative
    types (absent; rejection is correct). Colour marks the method, marker the
    index and transfer setting.
    """
    wide = summary[summary["metric"].isin(["mba_positive", "mba_negative"])].pivot_table(
        index=["group", "method", "index", "transfer", "seed"], columns="metric", values="value"
    ).reset_index()
    groups = sorted(wide["group"].unique()) if len(wide) else []
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.2 * max(1, len(groups)), 4), squeeze=False, sharey=True)
    methods = sorted(wide["method"].unique()) if len(wide) else []
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    settings = sorted({(r.index, r.transfer) for r in wide.itertuples()}) if len(wide) else []
    markers = {s: "osD^vP*X"[i % 8] for i, s in enumerate(settings)}
    for ax, group in zip(axes[0], groups):
        part = wide[wide["group"] == group]
        for row in part.itertuples():
            ax.scatter(row.mba_positive, row.mba_negative, color=colours[row.method], marker=markers[(row.index, row.transfer)],
                       alpha=0.8, edgecolor="black", linewidth=0.4)
        ax.set(title=group, xlabel="MBA, positive types", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("MBA, negative types")
    if not groups:
        axes[0][0].text(0.5, 0.5, "no data", ha="center", va="center")
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=m) for m, c in colours.items()]
    handles += [plt.Line2D([], [], color="grey", marker=mk, linestyle="", label=f"{i} / {t}") for (i, t), mk in markers.items()]
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
        fig.subplots_adjust(right=0.78)
    save_png(fig, path)
