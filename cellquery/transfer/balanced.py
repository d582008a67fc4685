"""Frequency-balanced voting: a hit's vote is divided by its label's reference frequency.

Large reference types crowd every neighbourhood; dividing each vote by the
frequency of the hit's cell type in the reference lets a rare type win a query
cell whose hits hold more of it than its share of the reference would predict
(votes normalised by cell-type frequency, as proposed for atlas-scale faiss search).
"""

from __future__ import annotations

import numpy as np


def weights(codes: np.ndarray, mask: np.ndarray, distances: np.ndarray, label_frequency: np.ndarray) -> np.ndarray:
    """1 / frequency of the hit's label, for significant hits."""
    return np.where(mask, 1.0 / label_frequency[codes], 0.0)
