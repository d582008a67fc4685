"""Distance ROC: how well a distance tells whether a query cell's nearest reference cell is of its type.

The Cell BLAST paper (Supp. Fig. 8c; Methods, "Distance metric ROC
analysis") labels each query-reference nearest-neighbour pair positive when
both cells are of the same type and scores every distance by the area under
its ROC curve as a predictor of that label. Here the pair is each query
cell's nearest hit (``n_hits`` = 1; the paper takes every one of 50 nearest
pairs, which is ``n_hits=50``), negative-type query cells included (their
pairs are always negative), and the distances are

- ``euclidean``: the Euclidean distance to the hit in the run's embedding;
- ``normalised``: that distance divided by the hit's local scale (its
  distance to its k-th nearest other reference cell,
  :mod:`cellquery.index.calibration`), the normalisation behind the
  project's empirical P-values (:mod:`cellquery.transfer.acceptance`);
- any per-cell score of the run's predictions named in
  :data:`SCORE_COLUMNS` where the run has that column: the run's own
  ``score`` (Cell BLAST's 1 - P-value, the conformal P-value, ...), taken
  with the cell's nearest hit.

A smaller distance should mean "same type": the ROC is computed on the
*closeness* (minus the distance; a score as its direction says). ROC curves
and AUC are scikit-learn's (``roc_curve``, ``roc_auc_score``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.summary import RUN_COLUMNS, metric_rows

DISTANCES = ("euclidean", "normalised")
# Per-cell scores of predictions.tsv drawn beside the distances when a run's predictions carry them:
# column -> (name in the metric `distance_auc_<name>` and the figure, True when a larger value means
# "the cell belongs to a reference type", False when a smaller one does, as for a distance).
# A further score is one line here. `score` is every method's own confidence (docs/formats.md):
# 1 - P-value for Cell BLAST and calibrated transfers, the conformal P-value for `conformal`
# runs, ... The `p_value` column is not used as such: it grows with confidence in conformal runs
# but shrinks with it in Cell BLAST's, so one orientation cannot serve both.
SCORE_COLUMNS = {
    "score": ("score", True),
}
CURVE_COLUMNS = RUN_COLUMNS + ["distance", "fpr", "tpr", "threshold", "auc", "n_pairs", "n_same_type"]
METRIC_PREFIX = "distance_auc_"


def same_type_pairs(indices: np.ndarray, reference_labels, query_labels, n_hits: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(same, present)``, both (n_query, n_hits): the hit is of the query cell's type; the hit exists (index >= 0)."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] < n_hits or n_hits < 1:
        raise InputError(f"distance ROC: hits must be (query cells, >= {n_hits}) indices, got shape {indices.shape}")
    reference_labels = np.asarray(reference_labels, dtype=str)
    query_labels = np.asarray(query_labels, dtype=str)
    if len(query_labels) != len(indices):
        raise InputError(f"distance ROC: {len(indices)} hit lists but {len(query_labels)} query cells")
    hits = indices[:, :n_hits]
    present = hits >= 0
    same = present & (reference_labels[np.where(present, hits, 0)] == query_labels[:, None])
    return same, present


def roc(same: np.ndarray, closeness: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``(fpr, tpr, thresholds, auc)`` of ``closeness`` as a predictor of ``same`` (NaN entries dropped).

    The AUC is NaN when only one class is present.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    same = np.asarray(same, dtype=bool).ravel()
    closeness = np.asarray(closeness, dtype=np.float64).ravel()
    keep = np.isfinite(closeness)
    same, closeness = same[keep], closeness[keep]
    if same.all() or not same.any():
        return np.array([]), np.array([]), np.array([]), float("nan")
    fpr, tpr, thresholds = roc_curve(same, closeness)
    return fpr, tpr, thresholds, float(roc_auc_score(same, closeness))


def closeness_scores(distances: np.ndarray, scales: np.ndarray | None, predictions: pd.DataFrame | None,
                     n_hits: int = 1) -> dict[str, tuple[np.ndarray, int]]:
    """Name -> ``(closeness, sign)`` of every distance the run has; closeness = sign * value, larger = same type.

    ``distances``: exact Euclidean distances of the hits (n_query, >= n_hits);
    ``scales``: the local scale of each hit's reference cell (same shape;
    None: no ``normalised``); ``predictions``: the run's predictions, whose
    :data:`SCORE_COLUMNS` are added (one value per cell, repeated over the
    cell's hits; a cell without a value ranks below every cell with one).
    Closeness arrays are (n_query, n_hits).
    """
    distances = np.asarray(distances, dtype=np.float64)[:, :n_hits]
    scores = {"euclidean": (-distances, -1)}
    if scales is not None:
        scores["normalised"] = (-distances / np.asarray(scales, dtype=np.float64)[:, :n_hits], -1)
    for column, (name, larger_is_closer) in SCORE_COLUMNS.items():
        if predictions is not None and column in predictions:
            sign = 1 if larger_is_closer else -1
            closeness = sign * pd.to_numeric(predictions[column], errors="coerce").to_numpy(np.float64)
            finite = np.isfinite(closeness)
            if not finite.any():
                continue
            # a cell without a score (e.g. too few hits for a P-value) is the least confident of all
            closeness = np.where(finite, closeness, closeness[finite].min() - 1.0)
            scores[name] = (np.repeat(closeness[:, None], distances.shape[1], axis=1), sign)
    return scores


def distance_roc(
    same: np.ndarray, present: np.ndarray, scores: dict[str, tuple[np.ndarray, int]], *, run: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's AUC rows (metric ``distance_auc_<name>``, summary columns) and ROC curves (:data:`CURVE_COLUMNS`).

    ``scores``: :func:`closeness_scores`. Every score is judged on the pairs
    whose hit exists (``present``) and whose score is finite. A curve's
    ``threshold`` is in the score's own units (a distance, or the
    predictions' column), ``auc`` is its area.
    """
    aucs, curves = {}, []
    for name, (closeness, sign) in scores.items():
        if np.shape(closeness) != np.shape(same):
            raise InputError(f"distance ROC: score {name!r} has shape {np.shape(closeness)}, the pairs {np.shape(same)}")
        kept = present & np.isfinite(closeness)
        fpr, tpr, thresholds, auc = roc(same[kept], closeness[kept])
        aucs[METRIC_PREFIX + name] = auc
        curves.append(pd.DataFrame({
            "distance": name, "fpr": fpr, "tpr": tpr, "threshold": sign * thresholds, "auc": auc,
            "n_pairs": int(kept.sum()), "n_same_type": int(same[kept].sum()),
        }))
    curve_table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    for key in RUN_COLUMNS:
        curve_table[key] = run[key]
    return metric_rows(run, aucs), curve_table[CURVE_COLUMNS]
