"""Rejection sweep: MBA per threshold by hand, aggregation, and the Supp. Fig. 9c figure."""

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.plots.rejection_sweep import plot_rejection_sweep, sweep_curves
from cellquery.scoring import sweep_scores
from cellquery.settings import GroupSettings
from cellquery.summary import SWEEP_COLUMNS, combine_sweeps

RUN = {"group": "g", "method": "m", "index": "flat", "transfer": "calibrated", "seed": 0, "reported_as": "calibrated-m"}
THRESHOLDS = [0.01, 0.2]


def predictions():
    # reference types A, B; X is a negative type (rejected is correct)
    return pd.DataFrame({
        "cell": [f"c{i}" for i in range(6)],
        "true_label": ["A", "A", "B", "B", "X", "X"],
        "prediction": ["A", "B", "B", "B", "A", "rejected"],
        "sweep_0.01": ["rejected", "rejected", "B", "rejected", "rejected", "rejected"],
        "sweep_0.2": ["A", "A", "B", "B", "A", "B"],
    })


def test_sweep_scores_by_hand():
    reference_obs = pd.DataFrame({"cell_type": ["A", "B"]})
    table = sweep_scores(predictions(), reference_obs=reference_obs, group=GroupSettings("cell_type"), run=RUN, thresholds=THRESHOLDS)
    assert list(table.columns) == SWEEP_COLUMNS
    assert np.isnan(table["threshold"].iloc[0]) and table["threshold"].iloc[1:].tolist() == [0.01, 0.2]
    # own setting: A 1/2, B 2/2 -> positive 0.75; X 1/2 -> negative 0.5; mba = mean of the two
    # 0.01: A 0/2, B 1/2 -> 0.25; X 2/2 -> 1.0.   0.2: A 2/2, B 2/2 -> 1.0; X 0/2 -> 0.0
    np.testing.assert_allclose(table["mba_positive"], [0.75, 0.25, 1.0])
    np.testing.assert_allclose(table["mba_negative"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(table["mba"], [0.625, 0.625, 0.5])
    assert (table["method"] == "m").all() and (table["transfer"] == "calibrated").all()


def test_combine_sweeps_and_curves(tmp_path):
    reference_obs = pd.DataFrame({"cell_type": ["A", "B"]})
    paths = []
    for seed in (0, 1):
        table = sweep_scores(predictions(), reference_obs=reference_obs, group=GroupSettings("cell_type"), run={**RUN, "seed": seed}, thresholds=THRESHOLDS)
        if seed == 1:
            table["mba_negative"] = table["mba_negative"] / 2
        paths.append(tmp_path / f"s{seed}.tsv")
        table.to_csv(paths[-1], sep="\t", index=False)
    combined = combine_sweeps(paths)
    assert len(combined) == 6 and combined["seed"].tolist() == [0, 0, 0, 1, 1, 1]
    curves = sweep_curves(combined)
    assert len(curves) == 3 and np.isnan(curves["threshold"].iloc[0])
    np.testing.assert_allclose(curves["mba_negative"], [0.375, 0.75, 0.0])  # mean over the two seeds
    out = tmp_path / "sweep.png"
    plot_rejection_sweep(combined, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="threshold"):
        pd.DataFrame({c: [1] for c in SWEEP_COLUMNS if c != "threshold"}).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
        combine_sweeps([tmp_path / "bad.tsv"])
