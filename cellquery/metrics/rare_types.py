"""Accuracy on rare cell types: those under 1 % of the reference.

Large reference types crowd every neighbourhood, so a plain majority vote
tends to give a rare type's query cells to a common neighbour type;
frequency-balanced voting (:mod:`cellquery.transfer.balanced`) is meant to
help exactly these cells. A type is *rare* when its share of the reference
cells is below ``max_fraction`` (1 % by default); its accuracy is the share
of its query cells predicted as that type (:func:`cellquery.metrics.per_type_accuracy`,
rejected and ambiguous cells count as wrong).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.metrics.balanced_accuracy import per_type_accuracy

RARE_FRACTION = 0.01
RARE_COLUMNS = ["cell_type", "reference_fraction", "n_query", "accuracy"]


def rare_type_table(true, pred, reference_labels, max_fraction: float = RARE_FRACTION) -> pd.DataFrame:
    """Per rare type present in the query: its reference fraction, query cells and accuracy (columns RARE_COLUMNS).

    Sorted by reference fraction, rarest first; empty when no reference type
    under ``max_fraction`` has query cells.
    """
    reference_labels = np.asarray(reference_labels, dtype=str)
    fraction = pd.Series(reference_labels).value_counts(normalize=True)
    rare = fraction[fraction < max_fraction]
    accuracy = per_type_accuracy(np.asarray(true, dtype=str), np.asarray(pred, dtype=str), sorted(fraction.index))
    accuracy = accuracy[accuracy["type"].isin(rare.index)]
    table = pd.DataFrame(
        {
            "cell_type": accuracy["type"].to_numpy(),
            "reference_fraction": rare.reindex(accuracy["type"]).to_numpy(float),
            "n_query": accuracy["n_cells"].to_numpy(np.int64),
            "accuracy": accuracy["accuracy"].to_numpy(float),
        },
        columns=RARE_COLUMNS,
    )
    return table.sort_values(["reference_fraction", "cell_type"], kind="mergesort").reset_index(drop=True)


def rare_type_accuracy(true, pred, reference_labels, max_fraction: float = RARE_FRACTION) -> float:
    """Mean per-type accuracy over the rare types present in the query (NaN when there are none)."""
    table = rare_type_table(true, pred, reference_labels, max_fraction)
    return float(table["accuracy"].mean()) if len(table) else float("nan")
