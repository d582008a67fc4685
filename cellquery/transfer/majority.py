"""Majority voting: every significant hit casts one vote (Cell BLAST's default)."""

from __future__ import annotations

import numpy as np


def weights(codes: np.ndarray, mask: np.ndarray, distances: np.ndarray, label_frequency: np.ndarray) -> np.ndarray:
    """One vote per significant hit."""
    return mask.astype(np.float64)
