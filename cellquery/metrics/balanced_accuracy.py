"""Query-based cell typing: per-type accuracy and mean balanced accuracy (MBA).

The Cell BLAST paper (Cao et al. 2020), Methods, "Benchmarking query-based cell typing":
Accuracy(t) = |{q : f(q) = t, M[f(q), g(q)] = 1}| / |{q : f(q) = t}|,
MBA(T) = (1/|T|) Σ_{t∈T} Accuracy(t), reported for positive types T+ (present in
the reference) and negative types T- (absent), and their average
(MBA(T+) + MBA(T-)) / 2.

Here a true type in ``ref_types`` is positive; its cell is correct when the
prediction equals the true type, or, with an expected-prediction matrix M
(boolean DataFrame: rows true types, columns acceptable predictions), when
``M.loc[true, pred]`` holds (a prediction that is not a column is incorrect). A
true type not in ``ref_types`` is negative; its cell is correct only when the
prediction is ``"rejected"``. Any other label ("ambiguous", a reference type, ...)
is an incorrect prediction for a negative type.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.metrics._pairs import check_query, count_pairs

REJECTED = "rejected"

__all__ = ["REJECTED", "accuracy", "per_type_accuracy", "mean_balanced_accuracy"]


def _check_expected(expected: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(expected, pd.DataFrame):
        raise InputError(f"expected: must be a pandas DataFrame, got {type(expected).__name__}")
    if expected.index.has_duplicates or expected.columns.has_duplicates:
        raise InputError("expected: duplicate row or column labels")
    vals = expected.to_numpy()
    if expected.isna().to_numpy().any():
        raise InputError("expected: contains missing values")
    if vals.dtype != bool:
        try:
            num = vals.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"expected: values must be boolean or 0/1 ({exc})") from exc
        if not np.isin(num, (0.0, 1.0)).all():
            raise InputError("expected: values must be boolean or 0/1")
        expected = expected.astype(bool)
    return expected


def _cell_table(true, pred, ref_types, expected) -> pd.DataFrame:
    """One row per (true, pred) pair: count, positive flag, correct flag."""
    t, p, refs = check_query(true, pred, ref_types, ("true", "pred", "ref_types"))
    pairs = count_pairs(t, p, "type")
    pairs["positive"] = pairs["type"].map(lambda x: x in refs).astype(bool)
    if expected is None:
        pos_ok = pairs["pred"].to_numpy() == pairs["type"].to_numpy()
    else:
        expected = _check_expected(expected)
        rows = set(expected.index)
        cols = set(expected.columns)
        missing = [x for x in pairs.loc[pairs["positive"], "type"].unique() if x not in rows]
        if missing:
            raise InputError(f"expected: no row for positive true type '{missing[0]}'")
        pos_ok = np.array(
            [
                bool(expected.at[ty, pr]) if (pos and pr in cols) else False
                for ty, pr, pos in zip(pairs["type"], pairs["pred"], pairs["positive"])
            ],
            dtype=bool,
        )
    neg_ok = pairs["pred"].to_numpy() == REJECTED
    pairs["correct"] = np.where(pairs["positive"].to_numpy(), pos_ok, neg_ok)
    return pairs


def per_type_accuracy(true, pred, ref_types, expected: pd.DataFrame | None = None) -> pd.DataFrame:
    """Accuracy(t) for every true type.

    Parameters
    ----------
    true, pred
        (n,) true and predicted labels of the query cells.
    ref_types
        Cell types present in the reference (defines positive types).
    expected
        Optional expected-prediction matrix (rows true types, columns acceptable
        predictions, boolean or 0/1).

    Returns
    -------
    pandas.DataFrame
        Columns ``type``, ``n_cells``, ``accuracy``, ``positive``; sorted by type.
    """
    pairs = _cell_table(true, pred, ref_types, expected)
    pairs["n_correct"] = pairs["n"] * pairs["correct"]
    out = pairs.groupby("type", sort=True).agg(
        n_cells=("n", "sum"), n_correct=("n_correct", "sum"), positive=("positive", "first")
    )
    out["accuracy"] = out["n_correct"] / out["n_cells"]
    out = out.reset_index()[["type", "n_cells", "accuracy", "positive"]]
    out["n_cells"] = out["n_cells"].astype(np.int64)
    out["positive"] = out["positive"].astype(bool)
    return out


def mean_balanced_accuracy(true, pred, ref_types, expected: pd.DataFrame | None = None) -> dict:
    """MBA of positive types, of negative types, and their mean.

    Returns
    -------
    dict
        ``positive`` = MBA(T+), ``negative`` = MBA(T-) (NaN for a side with no
        types), ``mean`` = (MBA(T+) + MBA(T-)) / 2, or the present side alone.
    """
    df = per_type_accuracy(true, pred, ref_types, expected)
    pos = df.loc[df["positive"], "accuracy"]
    neg = df.loc[~df["positive"], "accuracy"]
    pos_v = float(pos.mean()) if len(pos) else float("nan")
    neg_v = float(neg.mean()) if len(neg) else float("nan")
    sides = [v for v in (pos_v, neg_v) if not np.isnan(v)]
    return {"positive": pos_v, "negative": neg_v, "mean": float(np.mean(sides))}


def accuracy(true, pred, ref_types) -> float:
    """Fraction of query cells predicted correctly (cell-weighted).

    A cell of a positive type is correct when ``pred == true``; a cell of a
    negative type when ``pred == "rejected"``.
    """
    pairs = _cell_table(true, pred, ref_types, None)
    return float((pairs["n"] * pairs["correct"]).sum() / pairs["n"].sum())
