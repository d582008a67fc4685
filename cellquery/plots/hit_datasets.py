"""Supp. Fig. 9e of the Cell BLAST paper (Cao et al. 2020): how evenly each method's hits spread over the reference's datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.plots import run_colours, save_png

import matplotlib.pyplot as plt  # noqa: E402 (after cellquery.plots, which selects the Agg backend)
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

HATCHES = ["", "//", "..", "xx", "\\\\", "++"]
HITS = ["group", "method", "index", "seed"]  # a run's hits depend on its embedding and index, not on its transfer
CONTROL_COLOUR = "0.8"


def hit_labels(table: pd.DataFrame) -> pd.Series:
    """Each row's line label: its method, with `` / <index>`` where the method has hits from several indexes."""
    label = table["method"].astype(str)
    several = table.groupby(["group", "method"])["index"].transform("nunique") > 1
    return label.where(~several, label + " / " + table["index"].astype(str))


def plot_hit_datasets(table: pd.DataFrame, path, controls=(), names=None) -> None:
    """Per group whose reference has units (datasets or batches): two panels.

    Left: the mean normalised entropy of each method's hits over the units
    relative to their sizes (bar: mean over seeds, dots: seeds; 1 = in
    proportion to size, 0 = one unit); right: each unit's share of the hits
    over its share of the reference cells (1 = as its size says), mean over
    seeds. ``table``: results/hit_datasets.tsv (one row per run and unit);
    runs that differ only in their transfer have the same hits and are drawn
    once. ``controls`` (method names): grey, marked "(control)".

    ``names``: every name a run of the workflow is shown under, so that a method keeps
    its colour across figures (:func:`cellquery.plots.run_colours`).
    """
    controls = set(map(str, controls))
    hits = table.drop_duplicates(HITS + ["unit"]) if len(table) else table
    hits = hits.assign(label=hit_labels(hits)) if len(hits) else hits.assign(label=[])
    groups = sorted(hits["group"].unique())
    n_rows = max(1, len(groups))
    fig, axes = plt.subplots(n_rows, 2, figsize=(12, 4.4 * n_rows), squeeze=False, layout="constrained")
    if not groups:
        for ax in axes[0]:
            ax.text(0.5, 0.5, "no group whose reference has >= 2 datasets or batches", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9)
            ax.set_axis_off()
    colours = run_colours(hits["label"], names)
    for (left, right), group in zip(axes, groups):
        mine = hits[hits["group"] == group]
        per_run = mine.drop_duplicates(HITS)
        order = per_run.groupby("label")["entropy"].mean().sort_values(ascending=False).index.tolist()
        methods = mine.drop_duplicates("label").set_index("label")["method"].astype(str)
        face = {lab: CONTROL_COLOUR if methods[lab] in controls else colours[lab] for lab in order}
        ticks = [f"{lab} (control)" if methods[lab] in controls else lab for lab in order]
        x = np.arange(len(order))
        means = per_run.groupby("label")["entropy"].mean().reindex(order)
        left.bar(x, means, color=[face[lab] for lab in order], edgecolor="black", linewidth=0.5, alpha=0.85)
        for i, lab in enumerate(order):
            seeds = per_run.loc[per_run["label"] == lab, "entropy"]
            left.scatter(np.full(len(seeds), i), seeds, s=12, color="white", edgecolor="black", linewidth=0.6, zorder=3)
        unit_key = str(mine["unit_key"].iloc[0])
        left.set_xticks(x, ticks, rotation=45, ha="right", fontsize=8)
        left.set(ylim=(0, 1.05), ylabel=f"{group}\nnormalised entropy of hits (by {unit_key})")
        left.set_title(f"size-adjusted spread of hits over {mine['unit'].nunique()} reference units ({unit_key})", fontsize=9)
        left.grid(alpha=0.3, axis="y")

        units = sorted(mine["unit"].astype(str).unique())
        ratio = mine.assign(unit=mine["unit"].astype(str)).groupby(["label", "unit"])["ratio"].mean()
        width = 0.8 / len(units)
        shades = np.linspace(1.0, 0.6, len(units))
        for j, unit in enumerate(units):
            values = [ratio.get((lab, unit), np.nan) for lab in order]
            right.bar(x - 0.4 + width * (j + 0.5), values, width=width, edgecolor="black", linewidth=0.5,
                      color=[tuple(np.array(to_rgb(face[lab])) * shades[j]) for lab in order], hatch=HATCHES[j % len(HATCHES)])
        right.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        right.set_xticks(x, ticks, rotation=45, ha="right", fontsize=8)
        right.set_ylabel("share of hits / share of reference cells")
        right.set_title(f"each unit's share of hits / its share of reference cells ({unit_key})", fontsize=9)
        handles = [Patch(facecolor=str(0.85 * shades[j]), edgecolor="black", hatch=HATCHES[j % len(HATCHES)], label=unit)
                   for j, unit in enumerate(units)]
        right.legend(handles=handles, title=unit_key, fontsize=7, title_fontsize=8, frameon=False)
        right.grid(alpha=0.3, axis="y")
    save_png(fig, path)
