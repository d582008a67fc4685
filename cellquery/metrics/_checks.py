"""Input checks shared by the metric modules (one-line :class:`InputError` messages)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.index.base import as_matrix


def as_labels(values, field: str) -> np.ndarray:
    """1-D object array of labels; NaN/None raise."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise InputError(f"{field}: expected a 1-D array of labels, got shape {arr.shape}")
    if len(arr) and pd.isna(arr).any():
        raise InputError(f"{field}: contains missing values (NaN/None) at {int(np.flatnonzero(pd.isna(arr))[0])}")
    return arr


def as_embedding(X, field: str = "X") -> np.ndarray:
    """2-D finite float64 array (cells x dims), checked by :func:`cellquery.index.base.as_matrix`."""
    return as_matrix(X, field, allow_empty=True, dtype=np.float64, context=None)


def same_length(n: int, other, field: str) -> None:
    if len(other) != n:
        raise InputError(f"{field}: length {len(other)} does not match the {n} cells")


def check_frac(k_frac: float, field: str = "k_frac") -> float:
    k_frac = float(k_frac)
    if not (0.0 < k_frac < 1.0):
        raise InputError(f"{field}: must lie in (0, 1), got {k_frac}")
    return k_frac
