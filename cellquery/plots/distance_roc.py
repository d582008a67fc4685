"""Supp. Fig. 8c of the Cell BLAST paper (Cao et al. 2020): ROC of distances as predictors of "the nearest hit has my type"."""

from __future__ import annotations

import pandas as pd

from cellquery.metrics.distance_roc import DISTANCES
from cellquery.plots import distinct_colours, save_png, shown_names

import matplotlib.pyplot as plt  # noqa: E402 (after cellquery.plots, which selects the Agg backend)

SCORES = "scores"  # the third column of panels: the runs' own per-cell scores (P-values)
TITLES = {"euclidean": "Euclidean distance", "normalised": "distance / local scale", SCORES: "the run's own score"}
CONTROL_GREY = (0.55, 0.55, 0.55, 1.0)


def curve_lines(curves: pd.DataFrame) -> pd.DataFrame:
    """The curves to draw, each with its ``panel`` and ``label``.

    A distance (Euclidean, normalised) depends on the embedding and its hits,
    not on the transfer, so it is drawn once per method (the first run of the
    method in ``curves``, labelled by the method); a per-cell score of the
    predictions is drawn per run, labelled ``<shown name> (<score>)``.
    """
    if not len(curves):
        return curves.assign(panel=[], label=[])
    curves = curves.assign(shown=shown_names(curves))
    is_distance = curves["distance"].isin(DISTANCES)
    first = curves[is_distance].drop_duplicates(["group", "method"])[["group", "method", "index", "transfer", "seed"]]
    distances = curves[is_distance].merge(first, on=["group", "method", "index", "transfer", "seed"])
    distances = distances.assign(panel=distances["distance"], label=distances["method"].astype(str))
    scores = curves[~is_distance]
    scores = scores.assign(panel=SCORES, label=scores["shown"] + " (" + scores["distance"].astype(str) + ")")
    return pd.concat([distances, scores], ignore_index=True)


def plot_distance_roc(curves: pd.DataFrame, path, controls=()) -> None:
    """Rows: groups; columns: Euclidean distance, normalised distance and (where runs have one) their own score.

    ``curves``: ROC curves (``group``, ``method``, ``index``, ``transfer``,
    ``seed``, ``distance``, ``fpr``, ``tpr``, ``auc`` and, if present,
    ``reported_as``) of one representative run per name. One line per method
    and distance (:func:`curve_lines`), coloured by its label, with its AUC in
    the legend of its panel; ``controls`` (method names) dashed in grey and
    marked "(control)". The dotted diagonal is a distance that knows nothing.
    """
    lines = curve_lines(curves)
    lines = lines.assign(control=lines["method"].astype(str).isin(set(map(str, controls))))
    groups = sorted(lines["group"].unique())
    panels = [*DISTANCES, *([SCORES] if (lines["panel"] == SCORES).any() else [])]
    n_rows = max(1, len(groups))
    fig, axes = plt.subplots(n_rows, len(panels), figsize=(4.4 * len(panels), 4.2 * n_rows), squeeze=False,
                             layout="constrained", sharex=True, sharey=True)
    colours = distinct_colours(lines["label"])
    for row, group in enumerate(groups or [None]):
        for col, panel in enumerate(panels):
            ax = axes[row][col]
            ax.plot([0, 1], [0, 1], color="lightgrey", linewidth=0.8, linestyle=":")
            handles = []
            for label, rows in lines[(lines["group"] == group) & (lines["panel"] == panel)].groupby("label", sort=True):
                control = bool(rows["control"].iloc[0])
                name = f"{label} (control)" if control else label
                (handle,) = ax.step(rows["fpr"], rows["tpr"], where="post", linewidth=1.2,
                                    color=CONTROL_GREY if control else colours[label], linestyle="--" if control else "-",
                                    label=f"{name}: {rows['auc'].iloc[0]:.2f}")
                handles.append(handle)
            if handles:
                ax.legend(handles=handles, title="AUC", fontsize=6.5, title_fontsize=7, loc="lower right", frameon=False)
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.set(xlim=(0, 1), ylim=(0, 1.01))
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(TITLES[panel], fontsize=9)
            if row == n_rows - 1:
                ax.set_xlabel("false positive rate")
            if col == 0:
                ax.set_ylabel(f"{group}\ntrue positive rate" if group else "true positive rate")
    save_png(fig, path)
