"""Rejection as a score: separating unseen types, accuracy against coverage, calibration.

Every method writes a per-cell ``score``, its confidence that the cell belongs
to a type of the reference (higher: more confident). Rejecting the cells of
types the reference lacks is what sets cell querying apart from
classification (the Cell BLAST paper, Cao et al. 2020: Fig. 2b-c and Supp.
Fig. 9c score it at one threshold or along a sweep); the functions here score
the ranking itself, at every threshold at once:

- :func:`auroc_unseen`, :func:`auprc_unseen`: how well the score separates
  cells of negative (unseen) types from cells of positive types
  (scikit-learn's ``roc_auc_score`` and ``average_precision_score``);
- :func:`accuracy_coverage`, :func:`aurc`: the accuracy of the cells accepted
  when the top-scoring fraction c of positive-type cells is accepted, and the
  area under the risk-coverage curve (risk = 1 - accuracy; Geifman & El-Yaniv,
  "Selective classification for deep neural networks", NeurIPS 2017);
- :func:`false_rejection_rate`: the fraction of positive-type cells a rule
  rejects (compared with the nominal level of a P-value cut-off);
- :func:`expected_calibration_error`: ECE of class probabilities (Guo et al.,
  "On calibration of modern neural networks", ICML 2017).

scikit-learn has no risk-coverage curve and no ECE; those two are written here.

A NaN score counts as the least confident one (below every other score).
"""

from __future__ import annotations

import numpy as np

from cellquery.errors import InputError

__all__ = [
    "auroc_unseen", "auprc_unseen", "accuracy_coverage", "aurc", "accuracy_at_coverage",
    "false_rejection_rate", "expected_calibration_error",
]


def _scores(score, n: int | None = None, field: str = "score") -> np.ndarray:
    """Finite float scores, NaN replaced by a value below every other score."""
    s = np.asarray(score, dtype=np.float64).ravel().copy()
    if n is not None and len(s) != n:
        raise InputError(f"{field}: length {len(s)} does not match the {n} cells")
    if np.isinf(s).any():
        raise InputError(f"{field}: contains infinite values")
    missing = np.isnan(s)
    if missing.any():
        s[missing] = (np.min(s[~missing]) if (~missing).any() else 0.0) - 1.0
    return s


def _flags(values, field: str) -> np.ndarray:
    flags = np.asarray(values)
    if flags.ndim != 1 or (flags.dtype != bool and not np.isin(flags, (0, 1)).all()):
        raise InputError(f"{field}: expected a 1-D array of booleans")
    return flags.astype(bool)


def auroc_unseen(score, positive) -> float:
    """Area under the ROC curve of ``score`` for telling positive-type cells (``positive`` true) from negative-type ones.

    1 when every positive-type cell scores above every negative-type cell, 0
    when below, 0.5 for a constant score. NaN unless both kinds of cell are present.
    """
    from sklearn.metrics import roc_auc_score

    positive = _flags(positive, "positive")
    s = _scores(score, len(positive))
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, s))


def auprc_unseen(score, positive) -> float:
    """Average precision of finding the negative-type (unseen) cells by a low ``score``.

    Unseen cells are the positive class and the score is negated
    (``average_precision_score(~positive, -score)``): 1 when every unseen cell
    scores below every seen one; a constant score gives the fraction of unseen
    cells. NaN unless both kinds of cell are present.
    """
    from sklearn.metrics import average_precision_score

    positive = _flags(positive, "positive")
    s = _scores(score, len(positive))
    if positive.all() or not positive.any():
        return float("nan")
    return float(average_precision_score(~positive, -s))


def accuracy_coverage(score, correct) -> tuple[np.ndarray, np.ndarray]:
    """The accuracy-coverage curve: accepting the i highest-scoring cells, for i = 1 .. n.

    Returns ``coverage`` (i / n) and ``accuracy`` (the fraction of the i
    accepted cells that are ``correct``). Cells with equal scores are accepted
    together by any threshold, so within a run of ties the accuracy is the
    expected one over a random order of the tied cells (their errors spread
    evenly); the curve then does not depend on the cells' order.
    """
    correct = _flags(correct, "correct")
    s = _scores(score, len(correct))
    n = len(s)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-s, kind="stable")
    errors = (~correct[order]).astype(np.float64)
    _, start, counts = np.unique(-s[order], return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(counts)), counts)
    group_errors = np.add.reduceat(errors, start)
    errors_before = np.cumsum(group_errors) - group_errors
    accepted = np.arange(1, n + 1)
    within = accepted - start[group]  # position inside the run of ties, 1 ..
    expected_errors = errors_before[group] + within * group_errors[group] / counts[group]
    return accepted / n, 1.0 - expected_errors / accepted


def aurc(score, correct) -> float:
    """Area under the risk-coverage curve: the mean over i = 1 .. n of the risk (1 - accuracy) of the top i cells.

    The discrete area of :func:`accuracy_coverage` (coverage steps of 1 / n):
    0 when every cell is correct, 1 when none is; a score that ranks the
    correct cells first lowers it. NaN without cells.
    """
    _, accuracy = accuracy_coverage(score, correct)
    return float(np.mean(1.0 - accuracy)) if len(accuracy) else float("nan")


def accuracy_at_coverage(score, correct, coverage: float) -> float:
    """Accuracy of the ceil(coverage * n) highest-scoring cells (a point of :func:`accuracy_coverage`)."""
    if not 0.0 < coverage <= 1.0:
        raise InputError(f"coverage: must lie in (0, 1], got {coverage}")
    _, accuracy = accuracy_coverage(score, correct)
    if not len(accuracy):
        return float("nan")
    return float(accuracy[int(np.ceil(coverage * len(accuracy) - 1e-9)) - 1])


def false_rejection_rate(rejected, positive) -> float:
    """The fraction of positive-type cells (``positive`` true) that are ``rejected``; NaN without positive-type cells."""
    positive = _flags(positive, "positive")
    rejected = _flags(rejected, "rejected")
    if len(rejected) != len(positive):
        raise InputError(f"rejected: length {len(rejected)} does not match the {len(positive)} cells")
    return float(np.mean(rejected[positive])) if positive.any() else float("nan")


def expected_calibration_error(confidence, correct, n_bins: int = 10) -> float:
    """Expected calibration error of predicted-class probabilities (Guo et al. 2017, Eq. 3).

    Cells are binned by ``confidence`` into ``n_bins`` equal-width bins
    ((m - 1) / M, m / M] (a confidence of 0 in the first); ECE is the
    cell-weighted mean over bins of |accuracy - mean confidence|. NaN without cells.
    """
    correct = _flags(correct, "correct")
    p = np.asarray(confidence, dtype=np.float64).ravel()
    if len(p) != len(correct):
        raise InputError(f"confidence: length {len(p)} does not match the {len(correct)} cells")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise InputError("confidence: probabilities must lie in [0, 1]")
    if int(n_bins) != n_bins or n_bins < 1:
        raise InputError(f"n_bins: must be a positive integer, got {n_bins}")
    if not len(p):
        return float("nan")
    bins = np.clip(np.ceil(p * n_bins).astype(int) - 1, 0, n_bins - 1)
    gap = np.bincount(bins, weights=correct - p, minlength=n_bins)  # per bin: n_b * (accuracy - confidence)
    return float(np.abs(gap).sum() / len(p))
