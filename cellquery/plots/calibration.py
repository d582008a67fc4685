"""Calibration of rejection: realised against nominal false-rejection rate of positive-type cells.

A rule that rejects a query cell when its P-value is on the wrong side of a
cut-off alpha states a level; a conformal P-value promises that at most a
fraction alpha of the cells of reference types are rejected. The figure shows
what each run realises (metric rows ``false_rejection@<alpha>`` of the
summary, :func:`cellquery.scoring.calibration_scores`) against alpha, with the
diagonal as the reference: a line on or below it keeps its promise.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.plots import distinct_markers, group_panels, legend, run_colours, save_png, shown_names
from cellquery.plots.rejection_sweep import run_labels

PREFIX = "false_rejection@"
RUN = ["group", "method", "index", "transfer"]
CONTROL_COLOUR = "0.55"


def calibration_curves(summary: pd.DataFrame) -> pd.DataFrame:
    """Realised false-rejection rate per run and nominal level: mean and sd over seeds.

    Columns: the run keys, ``shown`` (:func:`cellquery.plots.shown_names`),
    ``alpha`` (parsed from the metric name ``false_rejection@<alpha>``),
    ``realised`` (mean over seeds), ``sd`` (ddof 1; NaN for one seed) and
    ``label`` (:func:`cellquery.plots.rejection_sweep.run_labels`). Rows with a
    NaN value (a level the run's sweep lacks) are left out.
    """
    metric = summary["metric"].astype(str)
    part = summary[metric.str.startswith(PREFIX)].dropna(subset=["value"])
    columns = [*RUN, "shown", "alpha", "realised", "sd", "label"]
    if part.empty:
        return pd.DataFrame(columns=columns)
    part = part.assign(shown=shown_names(part), alpha=part["metric"].str.removeprefix(PREFIX).astype(float))
    stats = part.groupby([*RUN, "shown", "alpha"], sort=True)["value"].agg(["mean", "std"]).reset_index()
    stats = stats.rename(columns={"mean": "realised", "std": "sd"})
    return stats.assign(label=run_labels(stats))[columns]


def plot_calibration(summary: pd.DataFrame, path, controls: Iterable[str] = (), names: Iterable[str] | None = None) -> None:
    """One panel per group: x the nominal level alpha, y the realised false-rejection rate of positive-type cells.

    One line per run (mean over seeds, a band of ± sd where there are several
    seeds), coloured by :func:`cellquery.plots.run_colours`, with its own
    open marker (:func:`cellquery.plots.distinct_markers`); controls
    (shown names in ``controls``) grey and dashed, "(control)" in the legend;
    the diagonal (realised = nominal) dotted. Columns used: ``group``,
    ``method``, ``index``, ``transfer``, ``metric``, ``value`` and, if
    present, ``reported_as``.

    ``names``: every name a run of the workflow is shown under, so that a method keeps
    its colour across figures (:func:`cellquery.plots.run_colours`).
    """
    controls = {str(c) for c in controls}
    curves = calibration_curves(summary)
    groups = sorted(curves["group"].unique())
    fig, axes = group_panels(groups, panel_width=4.6, height=4.4, sharey=True)
    curves = curves.assign(control=curves["shown"].isin(controls))
    curves["label"] = curves["label"].where(~curves["control"], curves["label"] + " (control)")
    colours = run_colours(curves.loc[~curves["control"], "label"], names)
    colours.update({label: CONTROL_COLOUR for label in curves.loc[curves["control"], "label"]})
    markers = distinct_markers(curves["label"])  # runs with equal rates stay visible under each other
    top = max(0.12, float(np.nanmax((curves["realised"] + curves["sd"].fillna(0)).to_numpy(float), initial=0.0)) * 1.05)
    top = min(top, 1.03)
    for ax, group in zip(axes, groups):
        reach = max(0.12, float(curves["alpha"].max()) * 1.1)
        ax.plot([0, reach], [0, reach], ":", color="black", linewidth=1.0, zorder=1)
        for label, rows in curves[curves["group"] == group].groupby("label", sort=True):
            rows = rows.sort_values("alpha")
            control = bool(rows["control"].iloc[0])
            ax.plot(rows["alpha"], rows["realised"], "--" if control else "-", marker=markers[label], markersize=5,
                    markerfacecolor="none", color=colours[label], linewidth=1.4, zorder=2 if control else 3)
            if rows["sd"].notna().any():
                sd = rows["sd"].fillna(0).to_numpy(float)
                ax.fill_between(rows["alpha"], rows["realised"] - sd, rows["realised"] + sd, color=colours[label],
                                alpha=0.15, linewidth=0)
        ax.set(title=group, xlabel="nominal level α", xlim=(0, reach), ylim=(-0.01, top))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("realised false rejection\n(positive-type cells rejected)")
    is_control = dict(zip(curves["label"], curves["control"]))
    handles = [plt.Line2D([], [], color=colour, marker=markers[label], markersize=5, markerfacecolor="none",
                          linestyle="--" if is_control[label] else "-", label=label) for label, colour in colours.items()]
    handles.append(plt.Line2D([], [], color="black", linestyle=":", label="realised = nominal"))
    legend(fig, handles, "method")
    save_png(fig, path)
