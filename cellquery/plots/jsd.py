"""Cell-fate transfer (the Cell BLAST paper, Cao et al. 2020, Supplementary Fig. 16b): JSD per method."""

from __future__ import annotations

import pandas as pd

from cellquery.plots import boxes, distinct_colours, group_panels, save_png, shown_names


def plot_jsd(summary: pd.DataFrame, path) -> None:
    """Box plot of metric ``jsd`` per shown name (over seeds and index/transfer settings), one panel per group.

    A run is named by ``reported_as`` where the summary has that column, else
    by ``method``. Lower is better; the divergence lies in [0, log 2].
    """
    part = summary[summary["metric"] == "jsd"].dropna(subset=["value"])
    part = part.assign(shown=shown_names(part))
    groups = sorted(part["group"].unique())
    fig, axes = group_panels(groups, panel_width=max(4.2, 0.45 * part["shown"].nunique() + 1.5), height=4.5)
    colours = distinct_colours(shown_names(summary))  # the same colours in every figure of the summary
    for ax, group in zip(axes, groups):
        boxes(ax, part[part["group"] == group], colours)
        ax.set(title=str(group), ylabel="Jensen–Shannon divergence (lower is better)")
    save_png(fig, path)
