"""Fig. 2b of the Cell BLAST paper (Cao et al. 2020): MBA on positive vs negative query types."""

from __future__ import annotations

import pandas as pd

from cellquery.plots import (
    colour_handles, distinct_colours, distinct_markers, group_panels, legend, marker_handles, save_png, shown_names,
)

SETTING = ["index", "transfer"]


def plot_mba_pos_neg(summary: pd.DataFrame, path) -> None:
    """One panel per group; one point per run (shown name x index x transfer x seed).

    x: MBA on positive types (present in the reference), y: MBA on negative
    types (absent; rejection is correct). Colour marks the run's shown name
    (``reported_as``, else ``method``), marker its index and transfer setting.
    Columns used: ``group``, ``method``, ``index``, ``transfer``, ``seed``,
    ``metric`` (``mba_positive``, ``mba_negative``), ``value`` and, if present,
    ``reported_as``.
    """
    part = summary[summary["metric"].isin(["mba_positive", "mba_negative"])]
    wide = (
        part.assign(shown=shown_names(part))
        .pivot_table(index=["group", "shown", *SETTING, "seed"], columns="metric", values="value")
        .reset_index()
    )
    ok = len(wide) and {"mba_positive", "mba_negative"} <= set(wide.columns)
    groups = sorted(wide["group"].unique()) if ok else []
    fig, axes = group_panels(groups, sharey=True)
    colours = distinct_colours(shown_names(summary))  # the same colours in every figure of the summary
    markers = distinct_markers(zip(wide["index"], wide["transfer"])) if ok else {}
    for ax, group in zip(axes, groups):
        for row in wide[wide["group"] == group].itertuples():
            ax.scatter(row.mba_positive, row.mba_negative, color=colours[row.shown], marker=markers[(row.index, row.transfer)],
                       alpha=0.85, edgecolor="black", linewidth=0.4)
        ax.set(title=group, xlabel="MBA, positive types", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MBA, negative types")
    legend(fig, colour_handles(colours, wide["shown"] if ok else [], linestyle=""), "method")
    legend(fig, marker_handles(markers, label=lambda s: " / ".join(s)), "index / transfer", "bottom")
    save_png(fig, path)
