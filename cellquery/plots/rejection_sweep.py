"""Supp. Fig. 9c of the Cell BLAST paper: positive vs negative MBA as the rejection threshold moves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.plots import save_png
from cellquery.summary import RUN_COLUMNS


def sweep_curves(sweep: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of MBA+/MBA- per group, method, index, transfer and threshold (NaN: the run's own setting)."""
    keys = RUN_COLUMNS[:4]  # group, method, index, transfer
    table = sweep.assign(threshold=sweep["threshold"].astype(float).fillna(-1.0))
    means = table.groupby(keys + ["threshold"], sort=True)[["mba_positive", "mba_negative"]].mean().reset_index()
    means["threshold"] = means["threshold"].where(means["threshold"] >= 0, np.nan)
    return means


def plot_rejection_sweep(sweep: pd.DataFrame, path) -> None:
    """One panel per group: x MBA on positive types, y MBA on negative types.

    A swept run (with ``threshold`` values) is a line through its thresholds,
    each point labelled with its threshold, with a ring at its own setting; a
    run without thresholds is one diamond (its own setting). Values are means
    over seeds.
    """
    curves = sweep_curves(sweep) if len(sweep) else sweep
    groups = sorted(curves["group"].unique()) if len(curves) else []
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.6 * max(1, len(groups)), 4.4), squeeze=False, sharey=True)
    runs = sorted({(r.method, r.index, r.transfer) for r in curves.itertuples()}) if len(curves) else []
    colours = {run: plt.cm.tab20(i % 20) for i, run in enumerate(runs)}
    for ax, group in zip(axes[0], groups):
        part = curves[curves["group"] == group]
        for run, rows in part.groupby(["method", "index", "transfer"], sort=True):
            swept = rows[rows["threshold"].notna()].sort_values("threshold")
            own = rows[rows["threshold"].isna()]
            if len(swept) and len(own):  # the run's own setting: a ring on its curve
                ax.scatter(own["mba_positive"], own["mba_negative"], s=70, facecolors="none", edgecolors=[colours[run]], linewidths=1.2)
            if len(swept):
                ax.plot(swept["mba_positive"], swept["mba_negative"], "-o", color=colours[run], markersize=3.5, linewidth=1.2)
                for row in swept.itertuples():
                    ax.annotate(f"{row.threshold:g}", (row.mba_positive, row.mba_negative), fontsize=5.5,
                                xytext=(2, 2), textcoords="offset points", color=colours[run])
            else:
                own = rows.iloc[0]
                ax.scatter(own["mba_positive"], own["mba_negative"], color=colours[run], marker="D", edgecolor="black", linewidth=0.4)
        ax.set(title=group, xlabel="MBA, positive types", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("MBA, negative types")
    if not groups:
        axes[0][0].text(0.5, 0.5, "no data", ha="center", va="center")
    handles = [plt.Line2D([], [], color=c, marker="o", label=" / ".join(run)) for run, c in colours.items()]
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
        fig.subplots_adjust(right=0.72)
    save_png(fig, path)
