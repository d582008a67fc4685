"""The hit-based prediction rule shared by every voter.

Cell BLAST Methods, "Hit-based predictions": a query cell needs at least
``min_hits`` (default 2) significant hits, otherwise it is ``rejected``; the
winning label's share of the (weighted) votes must exceed ``min_fraction``
(default 50 %), otherwise the cell is ``ambiguous``; continuous annotations are
the arithmetic mean over significant hits. Here a hit is significant when it
exists (index >= 0) and lies within the distance cut-off.
"""

from __future__ import annotations

import numpy as np

REJECTED = "rejected"
AMBIGUOUS = "ambiguous"


def significant_hits(distances: np.ndarray, indices: np.ndarray, max_distance: float = np.inf) -> np.ndarray:
    """Boolean mask of hits that count: present (index >= 0) and within ``max_distance``."""
    return (indices >= 0) & (distances <= max_distance)


def decide(
    votes: np.ndarray, n_hits: np.ndarray, labels: np.ndarray, *, min_hits: int = 2, min_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Turn per-label vote totals into predictions with the rejection/ambiguity rule.

    ``votes`` is (n_query, n_labels), ``n_hits`` the number of significant hits
    per query cell and ``labels`` the label name of each column. A cell with
    fewer than ``min_hits`` hits is ``rejected``; a cell whose top label holds
    no more than ``min_fraction`` of the votes is ``ambiguous``. Returns the
    predictions and the top label's share of the votes.
    """
    total = votes.sum(axis=1)
    top = votes.argmax(axis=1)
    share = np.divide(votes[np.arange(len(votes)), top], total, out=np.zeros(len(votes)), where=total > 0)
    pred = np.asarray(labels, dtype=object)[top]
    pred[share <= min_fraction] = AMBIGUOUS
    pred[n_hits < min_hits] = REJECTED
    return pred, share


def distance_cutoff(self_distances: np.ndarray, quantile: float | None) -> float:
    """Cut-off from reference-to-reference hit distances: their ``quantile`` (None: no cut-off).

    ``self_distances`` holds the leave-one-out hit distances of a sample of
    reference cells (see :func:`cellquery.transfer.cutoff.reference_self_distances`).
    A query hit farther away than almost every hit that reference cells get
    among themselves is not a credible hit.
    """
    if quantile is None:
        return float("inf")
    finite = self_distances[np.isfinite(self_distances)]
    return float(np.quantile(finite, quantile)) if finite.size else float("inf")
