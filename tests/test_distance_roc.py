"""Distance ROC (Cell BLAST Supp. Fig. 8c): same-type pairs, AUC by hand and against scikit-learn, score columns."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cellquery.errors import InputError
from cellquery.metrics import distance_roc as module
from cellquery.metrics.distance_roc import CURVE_COLUMNS, closeness_scores, distance_roc, roc, same_type_pairs
from cellquery.summary import SUMMARY_COLUMNS

RUN = dict(group="g", method="m", index="flat", transfer="conformal", seed=0, reported_as="conformal-m")
PNG = b"\x89PNG\r\n\x1a\n"


def test_same_type_pairs_by_hand():
    reference = ["A", "B", "A"]
    indices = np.array([[0, 1], [1, 2], [-1, -1], [2, 0]])
    same, present = same_type_pairs(indices, reference, ["A", "A", "B", "N"], n_hits=2)
    np.testing.assert_array_equal(same, [[True, False], [False, True], [False, False], [False, False]])
    np.testing.assert_array_equal(present, [[True, True], [True, True], [False, False], [True, True]])
    same, _ = same_type_pairs(indices, reference, ["A", "A", "B", "N"])
    assert same.shape == (4, 1) and same[:, 0].tolist() == [True, False, False, False]
    with pytest.raises(InputError, match="3 query cells"):
        same_type_pairs(indices, reference, ["A", "A", "B"])


def test_auc_by_hand_and_against_sklearn():
    # same type at distances 0.1 and 0.4, other types at 0.3 and 0.9: 3 of the 4 (same, other) pairs are
    # ordered right (0.1 < 0.3, 0.1 < 0.9, 0.4 < 0.9; not 0.4 < 0.3), so AUC = 3/4
    same = np.array([True, True, False, False])
    distance = np.array([0.1, 0.4, 0.3, 0.9])
    fpr, tpr, thresholds, auc = roc(same, -distance)
    assert auc == pytest.approx(0.75) == pytest.approx(roc_auc_score(same, -distance))
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    same, closeness = rng.random(200) < 0.4, rng.normal(size=200)
    closeness[same] += 0.8
    assert roc(same, closeness)[3] == pytest.approx(roc_auc_score(same, closeness))
    assert np.isnan(roc(np.ones(3, bool), np.arange(3.0))[3])  # one class: no AUC
    # NaN scores are dropped
    assert roc([True, False, True], [1.0, 0.0, np.nan])[3] == 1.0


def test_closeness_scores_normalised_and_own_score():
    distances = np.array([[1.0, 5.0], [2.0, 6.0], [4.0, 7.0]])
    scales = np.array([[2.0, 1.0], [1.0, 1.0], [8.0, 1.0]])
    predictions = pd.DataFrame({"score": [0.9, np.nan, 0.2]})
    scores = closeness_scores(distances, scales, predictions)
    assert set(scores) == {"euclidean", "normalised", "score"}
    np.testing.assert_allclose(scores["euclidean"][0], [[-1.0], [-2.0], [-4.0]])
    np.testing.assert_allclose(scores["normalised"][0], [[-0.5], [-2.0], [-0.5]])
    # the cell without a score ranks below every cell with one
    assert scores["score"][0][1, 0] < scores["score"][0][2, 0] < scores["score"][0][0, 0] and scores["score"][1] == 1
    assert set(closeness_scores(distances, None, None)) == {"euclidean"}
    assert closeness_scores(distances, scales, predictions, n_hits=2)["score"][0].shape == (3, 2)


def test_distance_roc_rows_and_curves():
    # 6 query cells, nearest hits: the same type for cells 0-2, another for 3-5 (e.g. negative types)
    same = np.array([[True], [True], [True], [False], [False], [False]])
    present = np.ones_like(same)
    euclidean = np.array([1.0, 2.0, 6.0, 3.0, 7.0, 8.0])  # AUC: 8 of 9 pairs right (6 > 3)
    scale = np.array([1.0, 1.0, 4.0, 1.0, 1.0, 1.0])  # normalised: 1, 2, 1.5, 3, 7, 8: all 9 right
    predictions = pd.DataFrame({"score": [0.9, 0.1, 0.8, 0.2, 0.3, 0.05]})  # 7 of 9 (0.1 < 0.2, 0.3)
    scores = closeness_scores(euclidean[:, None], scale[:, None], predictions)
    rows, curves = distance_roc(same, present, scores, run=RUN)
    assert list(rows.columns) == SUMMARY_COLUMNS and list(curves.columns) == CURVE_COLUMNS
    auc = dict(zip(rows["metric"], rows["value"]))
    assert auc == pytest.approx({"distance_auc_euclidean": 8 / 9, "distance_auc_normalised": 1.0, "distance_auc_score": 7 / 9})
    euclid = curves[curves["distance"] == "euclidean"]
    # thresholds are distances again (positive), and the curve runs from (0, 0) to (1, 1)
    assert (euclid["threshold"].iloc[1:] > 0).all() and euclid["fpr"].iloc[-1] == 1.0 and euclid["tpr"].iloc[0] == 0.0
    assert (curves["n_pairs"] == 6).all() and (curves["n_same_type"] == 3).all()
    score = curves[curves["distance"] == "score"]
    assert set(score["threshold"].iloc[1:]) <= set(predictions["score"])
    # a missing hit is not a pair
    present[5] = False
    rows, curves = distance_roc(same, present, scores, run=RUN)
    assert (curves["n_pairs"] == 5).all()
    assert dict(zip(rows["metric"], rows["value"]))["distance_auc_euclidean"] == pytest.approx(5 / 6)
    # one class only: NaN AUC and no curve points
    rows, curves = distance_roc(same[:3], present[:3], closeness_scores(euclidean[:3, None], None, None), run=RUN)
    assert np.isnan(rows["value"].iloc[0]) and curves.empty


def test_a_score_column_is_one_line(monkeypatch):
    """SCORE_COLUMNS is the hook: a column whose small values mean 'same type' enters with its sign flipped."""
    monkeypatch.setitem(module.SCORE_COLUMNS, "hit_p", ("hit_p", False))
    predictions = pd.DataFrame({"hit_p": [0.01, 0.02, 0.5, 0.03]})
    scores = closeness_scores(np.ones((4, 1)), None, predictions)
    same = np.array([[True], [True], [False], [False]])
    rows, curves = distance_roc(same, np.ones_like(same), scores, run=RUN)
    assert dict(zip(rows["metric"], rows["value"]))["distance_auc_hit_p"] == pytest.approx(roc_auc_score(same[:, 0], [-0.01, -0.02, -0.5, -0.03]))
    assert set(curves.loc[curves["distance"] == "hit_p", "threshold"].iloc[1:]) <= {0.01, 0.02, 0.5, 0.03}


def test_plot_distance_roc(tmp_path):
    from cellquery.plots.distance_roc import curve_lines, plot_distance_roc

    same = np.array([[True], [True], [False], [False]])
    parts = []
    for method, transfer, shown in (("pca", "majority", "pca"), ("pca", "conformal", "conformal-pca"), ("ingest", "native", "ingest")):
        predictions = pd.DataFrame({"score": [0.9, 0.5, 0.4, 0.1]}) if transfer == "conformal" else None
        scores = closeness_scores(np.array([[1.0], [2.0], [1.5], [3.0]]), np.ones((4, 1)), predictions)
        run = {**RUN, "method": method, "transfer": transfer, "reported_as": shown}
        parts.append(distance_roc(same, np.ones_like(same), scores, run=run)[1])
    curves = pd.concat(parts, ignore_index=True)
    lines = curve_lines(curves)
    # pca's distances once (its first run), ingest's, and conformal-pca's own score (the only kind of score: no suffix)
    assert sorted(lines.drop_duplicates(["panel", "label"])[["panel", "label"]].itertuples(index=False, name=None)) == [
        ("euclidean", "ingest"), ("euclidean", "pca"), ("normalised", "ingest"), ("normalised", "pca"),
        ("scores", "conformal-pca"),
    ]
    plot_distance_roc(curves, tmp_path / "roc.png", controls=["ingest"])
    plot_distance_roc(curves.iloc[:0], tmp_path / "empty.png")
    assert (tmp_path / "roc.png").read_bytes()[:8] == PNG and (tmp_path / "empty.png").read_bytes()[:8] == PNG
