"""Hit-based prediction rule and voters on hand-made neighbour tables."""

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.index.calibration import reference_self_distances
from cellquery.settings import GroupSettings, TransferSettings
from cellquery.transfer import predict_table, transfer_continuous, transfer_labels
from cellquery.transfer.acceptance import decide, distance_cutoff

REF = np.array(["A", "A", "B", "B", "C"])


def hits(rows):
    """Build (distances, indices) from lists of (index, distance) pairs."""
    ind = np.array([[i for i, _ in r] for r in rows], dtype=np.int64)
    dist = np.array([[d for _, d in r] for r in rows], dtype=np.float32)
    return dist, ind


def test_majority_rules_by_hand():
    d, i = hits(
        [
            [(0, 0.1), (1, 0.2), (2, 0.3)],  # A A B -> A (2/3 > 0.5)
            [(0, 0.1), (2, 0.2), (4, 0.3)],  # A B C -> 1/3 each -> ambiguous
            [(0, 0.1), (2, 0.2), (-1, np.inf)],  # A B and a missing hit -> 1/2, not > 0.5 -> ambiguous
            [(4, 0.1), (-1, np.inf), (-1, np.inf)],  # one hit only -> rejected
            [(2, 0.1), (3, 0.2), (0, 5.0)],  # B B, A beyond cut-off 1.0 -> B (2/2)
            [(0, 2.0), (1, 3.0), (2, 4.0)],  # every hit beyond cut-off -> rejected
        ]
    )
    out = transfer_labels(REF, d, i, min_hits=2, min_fraction=0.5, max_distance=1.0)
    assert out["prediction"].tolist() == ["A", "ambiguous", "ambiguous", "rejected", "B", "rejected"]
    assert out["n_hits"].tolist() == [3, 3, 2, 1, 2, 0]
    np.testing.assert_allclose(out["top_fraction"], [2 / 3, 1 / 3, 1 / 2, 1.0, 1.0, 0.0])


def test_min_fraction_and_min_hits_are_honoured():
    d, i = hits([[(0, 0.1), (1, 0.1), (2, 0.1), (4, 0.1)]])  # A A B C: A holds 0.5
    assert transfer_labels(REF, d, i, min_fraction=0.5)["prediction"][0] == "ambiguous"
    assert transfer_labels(REF, d, i, min_fraction=0.4)["prediction"][0] == "A"
    assert transfer_labels(REF, d, i, min_hits=5)["prediction"][0] == "rejected"


def test_decide_matches_a_loop_on_random_votes():
    rng = np.random.default_rng(0)
    votes = rng.integers(0, 4, size=(200, 3)).astype(float)
    n_hits = votes.sum(axis=1).astype(int)
    labels = np.array(["x", "y", "z"])
    pred, share = decide(votes, n_hits, labels, min_hits=2, min_fraction=0.5)
    for row, p, s in zip(votes, pred, share):
        total = row.sum()
        if total < 2:
            assert p == "rejected"
            continue
        best = int(np.argmax(row))
        assert s == pytest.approx(row[best] / total)
        assert p == (labels[best] if row[best] / total > 0.5 else "ambiguous")


def test_continuous_transfer_averages_significant_hits():
    values = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.2, 0.8]])
    d, i = hits([[(0, 0.1), (1, 0.2), (4, 9.0)], [(2, 0.1), (-1, np.inf), (-1, np.inf)]])
    out = transfer_continuous(values, d, i, min_hits=2, max_distance=1.0)
    np.testing.assert_allclose(out[0], [0.5, 0.5])
    assert np.isnan(out[1]).all()


def test_distance_cutoff_is_a_quantile_and_none_disables_it():
    sample = np.array([[1.0, 2.0], [3.0, 4.0], [np.inf, np.inf]])
    assert distance_cutoff(sample, 0.5) == pytest.approx(2.5)
    assert distance_cutoff(sample, None) == np.inf


class ExactIndex:
    def __init__(self, x):
        self.x = x

    def search(self, q, k):
        d = np.sqrt(((q[:, None, :] - self.x[None, :, :]) ** 2).sum(-1))
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, order, axis=1), order


def test_reference_self_distances_excludes_self():
    x = np.array([[0.0], [1.0], [3.0], [7.0]], dtype=np.float32)
    out = reference_self_distances(ExactIndex(x), x, k=2, n_sample=4)
    # points 0, 1, 3, 7: each cell's two nearest others
    np.testing.assert_allclose(out, [[1.0, 3.0], [1.0, 2.0], [2.0, 3.0], [4.0, 6.0]])


class SelfLastIndex(ExactIndex):
    """An approximate index that returns a cell's own entry last."""

    def search(self, q, k):
        d, i = super().search(q, k)
        return np.roll(d, -1, axis=1), np.roll(i, -1, axis=1)


def test_reference_self_distances_finds_self_anywhere():
    x = np.array([[0.0], [1.0], [3.0], [7.0]], dtype=np.float32)
    out = reference_self_distances(SelfLastIndex(x), x, k=2, n_sample=4)
    np.testing.assert_allclose(out, [[1.0, 3.0], [1.0, 2.0], [2.0, 3.0], [4.0, 6.0]])


def test_predict_table_maps_terms_and_fates():
    ref_obs = pd.DataFrame(
        {"cell_type": REF, "cl": ["CL:1", "CL:1", "CL:2", "CL:2", "CL:3"], "f1": [1, 1, 0, 0, 0.5], "f2": [0, 0, 1, 1, 0.5]}
    )
    qry_obs = pd.DataFrame({"cell_type": ["A", "D"], "cl": ["CL:1", "CL:9"], "f1": [1.0, 0.0], "f2": [0.0, 1.0]}, index=["q1", "q2"])
    d, i = hits([[(0, 0.1), (1, 0.2)], [(2, 9.0), (3, 9.0)]])
    table = predict_table(
        reference_obs=ref_obs,
        query_obs=qry_obs,
        distances=d,
        indices=i,
        self_distances=np.array([1.0, 1.0]),
        group=GroupSettings("cell_type", ontology_key="cl", continuous_keys=("f1", "f2")),
        settings=TransferSettings("majority", min_hits=2, min_fraction=0.5, distance_quantile=1.0),
    )
    assert table["prediction"].tolist() == ["A", "rejected"]
    assert table["pred_cl"].tolist() == ["CL:1", "rejected"]
    assert table["true_cl"].tolist() == ["CL:1", "CL:9"]
    assert table.loc[0, "pred_f1"] == 1.0 and np.isnan(table.loc[1, "pred_f1"])


def test_bad_voter_and_shapes_are_errors():
    d, i = hits([[(0, 0.1), (1, 0.2)]])
    with pytest.raises(InputError, match="unknown voter 'nope'"):
        transfer_labels(REF, d, i, voter="nope")
    with pytest.raises(InputError, match="differ in shape"):
        transfer_labels(REF, d[:, :1], i)


def test_sweep_of_a_distance_cut_off_uses_quantile_one_minus_t():
    ref_obs = pd.DataFrame({"cell_type": REF})
    qry_obs = pd.DataFrame({"cell_type": ["A", "D", "C"]}, index=["q1", "q2", "q3"])
    # self distances 1..100: quantile 0.99 -> 99.01, 0.9 -> 90.1, 0.8 -> 80.2
    self_d = np.arange(1.0, 101.0)
    d, i = hits([[(0, 50.0), (1, 60.0)], [(1, 85.0), (2, 95.0)], [(4, 95.0), (4, 99.0)]])
    table = predict_table(
        reference_obs=ref_obs, query_obs=qry_obs, distances=d, indices=i, self_distances=self_d,
        group=GroupSettings("cell_type"), sweep=[0.01, 0.1, 0.2],
        settings=TransferSettings("majority", min_hits=2, min_fraction=0.5, distance_quantile=0.95),
    )
    # 0.95 quantile = 95.05: q2 keeps both hits (labels differ -> ambiguous), q3 keeps one (rejected)
    assert table["prediction"].tolist() == ["A", "ambiguous", "rejected"]
    assert table["sweep_0.01"].tolist() == ["A", "ambiguous", "C"]  # cut-off 99.01: q3's two hits count
    assert table["sweep_0.1"].tolist() == ["A", "rejected", "rejected"]  # 90.1: q2 keeps one hit
    assert table["sweep_0.2"].tolist() == ["A", "rejected", "rejected"]  # 80.2
