"""Query labels as the typing metrics count them: one row per (true, predicted) label pair."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.metrics._checks import as_labels, same_length


def check_query(true, pred, ref, fields: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray, frozenset]:
    """Checked true and predicted labels of the query cells and the set of reference labels.

    ``fields`` names ``true``, ``pred`` and ``ref`` in error messages. At least
    one query cell is needed; no label may be missing.
    """
    true_field, pred_field, ref_field = fields
    t = as_labels(true, true_field)
    p = as_labels(pred, pred_field)
    same_length(len(t), p, pred_field)
    if len(t) == 0:
        raise InputError(f"{true_field}: no query cells")
    return t, p, frozenset(as_labels(list(ref), ref_field).tolist())


def count_pairs(true: np.ndarray, pred: np.ndarray, key: str) -> pd.DataFrame:
    """Columns ``key`` (the true label), ``pred`` and ``n`` (cells), sorted by true then predicted label."""
    return (
        pd.DataFrame({key: true, "pred": pred})
        .groupby([key, "pred"], sort=True, observed=True)
        .size()
        .rename("n")
        .reset_index()
    )
