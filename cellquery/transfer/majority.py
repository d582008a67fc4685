"""Majority voting: every significant hit casts one vote for its label."""

from __future__ import annotations

import numpy as np


def votes(codes: np.ndarray, mask: np.ndarray, distances: np.ndarray, n_labels: int) -> np.ndarray:
    """(n_query, n_labels) vote counts from hit label codes, counting masked-in hits only."""
    n = len(codes)
    out = np.zeros((n, n_labels), dtype=np.float64)
    rows = np.broadcast_to(np.arange(n)[:, None], codes.shape)
    np.add.at(out, (rows[mask], codes[mask]), 1.0)
    return out
