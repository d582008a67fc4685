"""Distance-weighted voting: a hit's vote is 1 / (distance + eps)."""

from __future__ import annotations

import numpy as np


def weights(
    codes: np.ndarray, mask: np.ndarray, distances: np.ndarray, label_frequency: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Inverse-distance weight per significant hit (eps keeps exact matches finite)."""
    d = np.where(mask, distances, np.inf).astype(np.float64)
    return np.where(mask, 1.0 / (d + eps), 0.0)
