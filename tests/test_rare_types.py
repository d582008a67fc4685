"""Rare-type accuracy (types under 1 % of the reference) against hand counts, and the voters on a rare type."""

import numpy as np
import pandas as pd
import pytest

from cellquery.metrics.rare_types import rare_type_accuracy, rare_type_table
from cellquery.plots.rare_types import plot_rare_types
from cellquery.transfer import transfer_labels


def test_rare_type_table_by_hand():
    # reference: 396 C, 2 R (0.5 %), 2 S (0.5 %); T at 4 / 400 = 1 % is not rare (strictly under 1 %)
    reference = ["C"] * 392 + ["T"] * 4 + ["R"] * 2 + ["S"] * 2
    true = ["R", "R", "R", "S", "C", "T", "X"]
    pred = ["R", "C", "rejected", "S", "C", "C", "C"]
    table = rare_type_table(true, pred, reference)
    assert table["cell_type"].tolist() == ["R", "S"]
    assert table["reference_fraction"].tolist() == pytest.approx([2 / 400, 2 / 400])
    assert table["n_query"].tolist() == [3, 1]
    assert table["accuracy"].tolist() == pytest.approx([1 / 3, 1.0])
    assert rare_type_accuracy(true, pred, reference) == pytest.approx((1 / 3 + 1.0) / 2)
    # a rare type without query cells is left out; no rare type in the query: NaN
    assert np.isnan(rare_type_accuracy(["C", "T"], ["C", "T"], reference))


def test_balanced_voting_wins_the_rare_type_that_majority_loses():
    # 199 C and 1 R (0.5 %); a query cell of type R has 3 C hits and 2 R hits (the same R cell found twice
    # stands for two R neighbours). Majority: C 3/5 -> C. Balanced: C 3 / (199/200), R 2 / (1/200) -> R.
    reference = np.array(["C"] * 199 + ["R"])
    indices = np.array([[0, 1, 2, 199, 199]])
    distances = np.ones((1, 5), dtype=np.float32)
    accuracy = {}
    for voter in ("majority", "balanced"):
        pred = transfer_labels(reference, distances, indices, voter=voter)["prediction"]
        accuracy[voter] = rare_type_accuracy(["R"], pred, reference)
    assert accuracy == {"majority": 0.0, "balanced": 1.0}


def test_plot_rare_types_writes_a_png(tmp_path):
    table = pd.DataFrame(
        {
            "group": ["g"] * 4, "method": ["pca"] * 4, "index": ["flat"] * 4, "transfer": ["majority", "balanced"] * 2,
            "seed": [0, 0, 1, 1], "reported_as": ["pca", "balanced-pca"] * 2, "voter": ["majority", "balanced"] * 2,
            "cell_type": ["R"] * 4, "reference_fraction": [0.005] * 4, "n_query": [3] * 4, "accuracy": [0.0, 1.0, 1 / 3, 2 / 3],
        }
    )
    plot_rare_types(table, tmp_path / "rare.png")
    plot_rare_types(table.iloc[:0], tmp_path / "empty.png")
    assert (tmp_path / "rare.png").stat().st_size > 0 and (tmp_path / "empty.png").stat().st_size > 0
