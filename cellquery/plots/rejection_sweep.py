"""Supplementary Fig. 9c of the Cell BLAST paper (Cao et al. 2020): positive vs negative MBA as the rejection threshold moves."""

from __future__ import annotations

import numpy as np
import pandas as pd

import matplotlib.pyplot as plt

from cellquery.plots import distinct_markers, group_panels, legend, run_colours, save_png, shown_names

RUN = ["group", "method", "index", "transfer"]


def sweep_curves(sweep: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of MBA+/MBA- per run and threshold (NaN: the run's own setting).

    A run is its group, method, index and transfer; column ``shown`` is the
    name it is shown under (``reported_as``, else ``method``).
    """
    table = sweep.assign(threshold=sweep["threshold"].astype(float).fillna(-1.0), shown=shown_names(sweep))
    means = table.groupby(RUN + ["shown", "threshold"], sort=True)[["mba_positive", "mba_negative"]].mean().reset_index()
    means["threshold"] = means["threshold"].where(means["threshold"] >= 0, np.nan)
    return means


def run_labels(curves: pd.DataFrame) -> pd.Series:
    """Legend label of each row's run: its shown name, plus its index and transfer where they tell apart runs of that name."""
    label = curves["shown"].astype(str)
    for column in ("index", "transfer"):
        varies = curves.groupby("shown")[column].transform("nunique") > 1
        label = label.where(~varies, label + " / " + curves[column].astype(str))
    return label


def _draw_run(ax, rows: pd.DataFrame, colour, marker: str) -> None:
    """One run: a line through its thresholds (annotated) with a ring at its own setting, or one diamond."""
    swept = rows[rows["threshold"].notna()].sort_values("threshold")
    own = rows[rows["threshold"].isna()]
    if not len(swept):
        first = rows.iloc[0]
        ax.scatter(first["mba_positive"], first["mba_negative"], color=colour, marker="D", edgecolor="black", linewidth=0.4)
        return
    if len(own):
        ax.scatter(own["mba_positive"], own["mba_negative"], s=70, facecolors="none", edgecolors=[colour], linewidths=1.2)
    ax.plot(swept["mba_positive"], swept["mba_negative"], "-", marker=marker, color=colour, markersize=3.5, linewidth=1.2)
    for row in swept.itertuples():
        ax.annotate(f"{row.threshold:g}", (row.mba_positive, row.mba_negative), fontsize=5.5,
                    xytext=(2, 2), textcoords="offset points", color=colour)


def plot_rejection_sweep(sweep: pd.DataFrame, path, names=None) -> None:
    """One panel per group: x MBA on positive types, y MBA on negative types.

    A swept run (with ``threshold`` values) is a line through its thresholds,
    each point labelled with its threshold, with a ring at its own setting; a
    run without thresholds is one diamond (its own setting). Values are means
    over seeds. Columns used: ``group``, ``method``, ``index``, ``transfer``,
    ``threshold``, ``mba_positive``, ``mba_negative`` and, if present,
    ``reported_as`` (the name a run is shown under).

    ``names``: every name a run of the workflow is shown under, so that a method keeps
    its colour across figures (:func:`cellquery.plots.run_colours`).
    """
    curves = sweep_curves(sweep) if len(sweep) else sweep.assign(shown=[])
    curves = curves.assign(label=run_labels(curves))
    groups = sorted(curves["group"].unique())
    fig, axes = group_panels(groups, panel_width=4.6, height=4.4, sharey=True)
    colours = run_colours(curves["label"], names)
    # a marker per run as well as a colour: with 20+ runs some colours are close
    markers = distinct_markers(curves["label"])
    swept = set(curves.loc[curves["threshold"].notna(), "label"])
    for ax, group in zip(axes, groups):
        for label, rows in curves[curves["group"] == group].groupby("label", sort=True):
            _draw_run(ax, rows, colours[label], markers[label])
        ax.set(title=group, xlabel="MBA, positive types", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MBA, negative types")
    handles = [
        plt.Line2D([], [], color=colour, marker=markers[label] if label in swept else "D", label=label)
        for label, colour in colours.items()
    ]
    legend(fig, handles, "method")
    save_png(fig, path)
