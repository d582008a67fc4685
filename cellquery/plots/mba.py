"""Fig. 2b of the Cell BLAST paper (Cao et al. 2020): MBA on positive vs negative query types."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.plots import (
    colour_handles, distinct_colours, distinct_markers, group_panels, legend, marker_handles, save_png, shown_names,
)

SETTING = ["index", "transfer"]


AXES = {"mba_positive": "positive", "mba_negative": "negative"}


def mba_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per run (group, shown name, index, transfer, seed) with columns ``mba_positive``, ``mba_negative``.

    A metric a run lacks (e.g. MBA on negative types of a query without
    negative types) is NaN, never dropped.
    """
    part = summary[summary["metric"].isin(list(AXES))]
    keys = ["group", "shown", *SETTING, "seed"]
    if part.empty:
        return pd.DataFrame(columns=[*keys, *AXES])
    wide = (
        part.assign(shown=shown_names(part))
        .pivot_table(index=keys, columns="metric", values="value")
        .reset_index()
    )
    for metric in AXES:
        if metric not in wide:
            wide[metric] = np.nan
    return wide


def plot_mba_pos_neg(summary: pd.DataFrame, path) -> None:
    """One panel per group; one point per run (shown name x index x transfer x seed).

    x: MBA on positive types (present in the reference), y: MBA on negative
    types (absent; rejection is correct). Colour marks the run's shown name
    (``reported_as``, else ``method``), marker its index and transfer setting.
    A group whose query has no negative types (or no positive types) has no
    such MBA: its points sit on the middle of that axis, which is unlabelled,
    and the panel says "no negative types in the query" (never a score of 0).
    Columns used: ``group``, ``method``, ``index``, ``transfer``, ``seed``,
    ``metric`` (``mba_positive``, ``mba_negative``), ``value`` and, if present,
    ``reported_as``.
    """
    wide = mba_table(summary)
    groups = sorted(wide["group"].unique())
    fig, axes = group_panels(groups, sharey=True)
    colours = distinct_colours(shown_names(summary))  # the same colours in every figure of the summary
    markers = distinct_markers(zip(wide["index"], wide["transfer"]))
    for ax, group in zip(axes, groups):
        rows = wide[wide["group"] == group]
        undefined = [kind for metric, kind in AXES.items() if rows[metric].isna().all()]
        x = rows["mba_positive"].fillna(0.5) if "positive" in undefined else rows["mba_positive"]
        y = rows["mba_negative"].fillna(0.5) if "negative" in undefined else rows["mba_negative"]
        for row, xi, yi in zip(rows.itertuples(), x, y):
            ax.scatter(xi, yi, color=colours[row.shown], marker=markers[(row.index, row.transfer)],
                       alpha=0.85, edgecolor="black", linewidth=0.4)
        ax.set(title=group, xlabel="MBA, positive types", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        if undefined:
            ax.text(0.5, 0.97, "\n".join(f"no {kind} types in the query" for kind in undefined), transform=ax.transAxes,
                    ha="center", va="top", fontsize=8, bbox={"facecolor": "white", "edgecolor": "0.6"})
            if "negative" in undefined:
                ax.axhline(0.5, color="0.6", linestyle=":", zorder=0)
                ax.text(0.01, 0.52, "MBA, negative types: undefined", transform=ax.transAxes, fontsize=7, color="0.4")
                ax.tick_params(labelleft=False)
            if "positive" in undefined:
                ax.tick_params(labelbottom=False)
                ax.set_xlabel("MBA, positive types (undefined)")
    axes[0].set_ylabel("MBA, negative types")
    legend(fig, colour_handles(colours, wide["shown"], linestyle=""), "method")
    legend(fig, marker_handles(markers, label=lambda s: " / ".join(s)), "index / transfer", "bottom")
    save_png(fig, path)
