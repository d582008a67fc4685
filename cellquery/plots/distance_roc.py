"""Supp. Fig. 8c of the Cell BLAST paper (Cao et al. 2020): ROC of distances as predictors of "the nearest hit has my type"."""

from __future__ import annotations

import pandas as pd

from cellquery.metrics.distance_roc import DISTANCES
from cellquery.plots import run_colours, save_png, shown_names

import matplotlib.pyplot as plt  # noqa: E402 (after cellquery.plots, which selects the Agg backend)

SCORES = "scores"  # the third column of panels: the runs' own per-cell scores (P-values)
TITLES = {"euclidean": "Euclidean distance", "normalised": "distance / local scale", SCORES: "the run's own score"}
CONTROL_GREY = (0.55, 0.55, 0.55, 1.0)
RUN = ["group", "method", "index", "transfer", "seed"]


def curve_lines(curves: pd.DataFrame) -> pd.DataFrame:
    """The curves to draw, each with its ``panel``, ``name`` (what its colour stands for) and ``label``.

    A distance (Euclidean, normalised) depends on the embedding and its hits,
    not on the transfer, so it is drawn once per method (the first run of the
    method in ``curves``), named by the method; a per-cell score of the
    predictions is drawn per run, named by its shown name (``reported_as``),
    and labelled ``<name> (<score>)`` where runs have several kinds of score.
    """
    if not len(curves):
        return curves.assign(panel=[], name=[], label=[])
    curves = curves.assign(shown=shown_names(curves))
    is_distance = curves["distance"].isin(DISTANCES)
    first = curves[is_distance].drop_duplicates(["group", "method"])[RUN]
    distances = curves[is_distance].merge(first, on=RUN)
    distances = distances.assign(panel=distances["distance"], name=distances["method"].astype(str),
                                 label=distances["method"].astype(str))
    scores = curves[~is_distance]
    several = scores["distance"].nunique() > 1
    label = scores["shown"] + " (" + scores["distance"].astype(str) + ")" if several else scores["shown"]
    scores = scores.assign(panel=SCORES, name=scores["shown"], label=label)
    return pd.concat([distances, scores], ignore_index=True)


def plot_distance_roc(curves: pd.DataFrame, path, controls=(), names=None) -> None:
    """Rows: groups; columns: Euclidean distance, normalised distance and (where runs have one) their own score.

    ``curves``: ROC curves (``group``, ``method``, ``index``, ``transfer``,
    ``seed``, ``distance``, ``fpr``, ``tpr``, ``auc`` and, if present,
    ``reported_as``) of one representative run per name. One line per method
    and distance (:func:`curve_lines`), one colour per name in every panel,
    listed with its AUC under its panel; ``controls`` (method names) dashed in
    grey and marked "(control)". The dotted diagonal is a distance that knows
    nothing.

    ``names``: every name a run of the workflow is shown under, so that a method keeps
    its colour across figures (:func:`cellquery.plots.run_colours`).
    """
    lines = curve_lines(curves)
    lines = lines.assign(control=lines["method"].astype(str).isin(set(map(str, controls))))
    groups = sorted(lines["group"].unique())
    panels = [*DISTANCES, *([SCORES] if (lines["panel"] == SCORES).any() else [])]
    n_rows = max(1, len(groups))
    # room under each panel for its legend: two columns of entries, about 0.15 inch a row
    entries = lines.drop_duplicates(["group", "panel", "label"]).groupby(["group", "panel"]).size()
    legend_rows = -(-int(entries.max()) // 2) if len(entries) else 0
    fig, axes = plt.subplots(n_rows, len(panels), figsize=(4.4 * len(panels), (4.7 + 0.15 * legend_rows) * n_rows),
                             squeeze=False, layout="constrained")
    colours = run_colours(lines["name"], names)
    for row, group in enumerate(groups or [None]):
        for col, panel in enumerate(panels):
            ax = axes[row][col]
            ax.plot([0, 1], [0, 1], color="lightgrey", linewidth=0.8, linestyle=":")
            handles = []
            for label, rows in lines[(lines["group"] == group) & (lines["panel"] == panel)].groupby("label", sort=True):
                control = bool(rows["control"].iloc[0])
                name = f"{label} (control)" if control else label
                # ROC points joined by straight segments: tied scores move both rates at once
                (handle,) = ax.plot(rows["fpr"], rows["tpr"], linewidth=1.2, linestyle="--" if control else "-",
                                    color=CONTROL_GREY if control else colours[rows["name"].iloc[0]],
                                    label=f"{name}: {rows['auc'].iloc[0]:.2f}")
                handles.append(handle)
            if handles:
                ax.legend(handles=handles, title="AUC", fontsize=6.5, title_fontsize=7, loc="upper center",
                          bbox_to_anchor=(0.5, -0.13), ncols=2, frameon=False)
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate")
            ax.grid(alpha=0.3)
            ax.set_title(f"{group}: {TITLES[panel]}" if group else TITLES[panel], fontsize=9)
            if col == 0:
                ax.set_ylabel("true positive rate")
    save_png(fig, path)
