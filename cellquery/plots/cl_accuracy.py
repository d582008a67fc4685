"""Cell Ontology inference (the Cell BLAST paper, Cao et al. 2020, Supplementary Fig. 19): CL accuracy and CL MBA per method."""

from __future__ import annotations

import pandas as pd

from cellquery.plots import (
    boxes, distinct_colours, distinct_markers, group_panels, legend, mark_no_data, marker_handles, save_png, shown_names,
)

METRICS = {"cl_accuracy": "CL accuracy (cell-weighted)", "cl_mba": "CL MBA (mean over terms)"}


def plot_cl_accuracy(summary: pd.DataFrame, path) -> None:
    """One panel per metric (``cl_accuracy``, ``cl_mba``): a box per shown name over all runs, a point per run.

    A run is named by ``reported_as`` where the summary has that column, else
    by ``method``; the point's marker tells its group.
    """
    part = summary[summary["metric"].isin(list(METRICS))].dropna(subset=["value"])
    part = part.assign(shown=shown_names(part))
    width = max(4.2, 0.45 * part["shown"].nunique() + 1.5)
    fig, axes = group_panels(list(METRICS), panel_width=width, height=4.5)
    colours = distinct_colours(shown_names(summary))  # the same colours in every figure of the summary
    markers = distinct_markers(part["group"])
    for ax, (metric, title) in zip(axes, METRICS.items()):
        sub = part[part["metric"] == metric]
        if not len(sub):
            mark_no_data(ax, title)
            continue
        boxes(ax, sub, colours, markers)
        ax.set(title=title, ylim=(-0.03, 1.03))
    legend(fig, marker_handles(markers, face="white"), "group")
    save_png(fig, path)
